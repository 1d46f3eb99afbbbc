"""Status changes that race each other on a real Redis: a finished status is never undone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator
from maker_worker.domains import get_domain
from maker_worker.errors import JobError
from maker_worker.events import EventLog
from maker_worker.jobs import JobStatus, SampleRequest
from maker_worker.runner import make_spec, submit
from maker_worker.store import JobState, RedisStore


def submit_job(redis_url: str) -> tuple[RedisStore, str]:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=3)
    spec = make_spec(Settings(redis_url=redis_url, llm_provider="sim"), domain, 1)
    return store, submit(store, domain, spec)


class CancelAfterFirstRead(RedisStore):
    """A store whose first ``load_job`` is followed at once by a ``maker cancel`` from elsewhere."""

    def load_job(self, job_id: str) -> JobState:
        job = super().load_job(job_id)
        if not getattr(self, "cancelled", False):
            self.cancelled = True
            RedisStore(self.client).set_status(job_id, JobStatus.CANCELLED, "cancelled by operator")
        return job


class NoDispatch:
    def __init__(self) -> None:
        self.requests: list[SampleRequest] = []

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        self.requests.extend(requests)


def test_a_cancel_between_read_and_start_is_kept(redis_url: str, tmp_path: Path) -> None:
    store, job_id = submit_job(redis_url)
    racing = CancelAfterFirstRead(store.client)
    dispatcher = NoDispatch()
    events = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(JobError, match="cancelled; not started"):
        Coordinator(racing, dispatcher, events).run(job_id)
    events.close()
    job = store.load_job(job_id)
    assert (job.status, job.reason, job.epoch) == (JobStatus.CANCELLED, "cancelled by operator", "0")
    assert dispatcher.requests == []
    assert job_id not in store.active_job_ids()


@pytest.mark.parametrize("finished", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
@pytest.mark.parametrize("late", [JobStatus.PAUSED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLED])
def test_a_finished_status_is_final(redis_url: str, finished: JobStatus, late: JobStatus) -> None:
    store, job_id = submit_job(redis_url)
    store.set_status(job_id, finished, "first")
    outcome = late if late is finished else finished
    assert store.set_status(job_id, late, "late", wall_s=12.5) is outcome
    job = store.load_job(job_id)
    assert (job.status, job.reason, job.wall_s) == (finished, "first", 12.5)
    assert job_id not in store.active_job_ids()


def test_only_a_succeeded_job_can_be_failed_by_the_oracle_check(redis_url: str) -> None:
    succeeded = frozenset({JobStatus.SUCCEEDED})
    store, job_id = submit_job(redis_url)
    assert (
        store.set_status(job_id, JobStatus.FAILED, "errors_vs_oracle", only_from=succeeded)
        is JobStatus.QUEUED
    )
    store.set_status(job_id, JobStatus.SUCCEEDED)
    assert (
        store.set_status(job_id, JobStatus.FAILED, "errors_vs_oracle", only_from=succeeded)
        is JobStatus.FAILED
    )
    assert store.load_job(job_id).reason == "errors_vs_oracle"


def test_unfinished_moves_keep_the_active_set(redis_url: str) -> None:
    store, job_id = submit_job(redis_url)
    assert job_id in store.active_job_ids()
    assert store.set_status(job_id, JobStatus.PAUSED, "budget_exhausted") is JobStatus.PAUSED
    assert job_id not in store.active_job_ids()
    assert store.set_status(job_id, JobStatus.QUEUED) is JobStatus.QUEUED
    assert job_id in store.active_job_ids()
    assert store.begin_epoch(job_id) == "1"
    assert store.load_job(job_id).status is JobStatus.RUNNING
