"""Hanoi jobs driven by the coordinator through real Celery workers, Redis and the HTTP simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from maker_worker.config import Settings
from maker_worker.core.scaling import k_min
from maker_worker.domains import get_domain
from maker_worker.jobs import JobStatus, JobSummary
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore


def run_job(redis_url: str, tmp_path: Path, *, disks: int, k: int) -> JobSummary:
    settings = Settings(redis_url=redis_url, llm_provider="sim", data_dir=tmp_path, max_retries=2)
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=disks)
    job_id = submit(store, domain, make_spec(settings, domain, k))
    job, events_path = drive(settings, redis_url, job_id)
    return finish(store, job, events_path)


def read_events(summary: JobSummary) -> list[dict[str, object]]:
    assert summary.events_path is not None
    return [json.loads(line) for line in Path(summary.events_path).read_text().splitlines()]


def test_low_p_job_is_solved_with_zero_errors(
    redis_url: str, tmp_path: Path, sim_server: Callable[..., str], workers: Callable[..., None]
) -> None:
    workers(2, sim_url=sim_server(p=0.75, seed=1))
    k = k_min(0.75, 63, 0.95)
    summary = run_job(redis_url, tmp_path, disks=6, k=k)
    assert (summary.status, summary.steps_done, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 63, 0)
    assert summary.votes >= 63 * k
    decided = [event for event in read_events(summary) if event["event"] == "VoteDecided"]
    assert [event["step"] for event in decided] == list(range(63))
    assert all(event["winner_votes"] - event["runner_up_votes"] == k for event in decided)  # type: ignore[operator]


def test_k_too_small_for_p_shows_errors_against_the_oracle(
    redis_url: str, tmp_path: Path, sim_server: Callable[..., str], workers: Callable[..., None]
) -> None:
    workers(2, sim_url=sim_server(p=0.75, seed=2))
    summary = run_job(redis_url, tmp_path, disks=6, k=1)
    assert summary.errors_vs_oracle is not None and summary.errors_vs_oracle > 0
    assert (summary.status, summary.reason) == (JobStatus.FAILED, "errors_vs_oracle")


def test_red_flagged_samples_are_discarded_and_replaced(
    redis_url: str, tmp_path: Path, sim_server: Callable[..., str], workers: Callable[..., None]
) -> None:
    workers(2, sim_url=sim_server(p=0.95, red_flag_rate=0.3, seed=3))
    summary = run_job(redis_url, tmp_path, disks=5, k=2)
    assert (summary.status, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 0)
    assert summary.red_flags > 0
    assert set(summary.red_flags_by_type) <= {"too_long", "truncated", "bad_format"}
    assert (
        summary.votes + summary.red_flags + summary.discarded_votes + summary.late_samples == summary.samples
    )
    flagged = [event for event in read_events(summary) if event["event"] == "RedFlagTriggered"]
    assert len(flagged) >= summary.red_flags


@pytest.mark.parametrize("field", ["job_id", "max_samples_in_a_step", "tokens_in", "cost_usd", "wall_s"])
def test_summary_has_the_contract_fields(field: str) -> None:
    assert field in JobSummary.model_fields
