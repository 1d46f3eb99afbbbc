"""Fault injection with real processes: coordinators, workers and Redis die mid-run; nothing is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import redis

from maker_worker import keys
from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.embedded import free_port, redis_server_binary, stop_process, wait_until
from maker_worker.jobs import JobStatus, LedgerEntry, SampleResult
from maker_worker.runner import finish, make_spec, submit
from maker_worker.store import JobState, RedisStore

FAST_FAILOVER_ENV = {"MAKER_LEASE_S": "2", "MAKER_SAMPLE_TIMEOUT_S": "3", "MAKER_MAX_RETRIES": "1"}
JOB_TIMEOUT_S = 180.0

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Factory: start ``python -m maker_worker ARGS`` (or any argv) with extra env; stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str, env: dict[str, str], argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"process-{len(processes)}.log").open("wb")
        logs.append(log)
        command = argv or [sys.executable, "-m", "maker_worker", *args]
        full_env = {**os.environ, "MAKER_DATA_DIR": str(tmp_path), **FAST_FAILOVER_ENV, **env}
        process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_process(process)
    for log in logs:
        log.close()


def submit_hanoi(redis_url: str, disks: int, k: int, **settings: object) -> str:
    config = Settings(redis_url=redis_url, llm_provider="sim", sample_timeout_s=3, **settings)  # type: ignore[arg-type]
    domain = get_domain("hanoi", disks=disks)
    return submit(RedisStore.from_url(redis_url), domain, make_spec(config, domain, k))


def wait_for(
    store: RedisStore, job_id: str, until: Callable[[JobState], bool], timeout_s: float = JOB_TIMEOUT_S
) -> JobState:
    """Poll the job record until ``until`` holds (a deadline, not a sleep: fails loudly)."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        try:
            job = store.load_job(job_id)
            if until(job):
                return job
        except Exception:  # Redis restarting: keep polling
            pass
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach the expected state in {timeout_s} s")


def finished(job: JobState) -> bool:
    return job.status not in (JobStatus.QUEUED, JobStatus.RUNNING)


def assert_complete_ledger(store: RedisStore, job_id: str) -> None:
    job = store.load_job(job_id)
    summary = finish(store, job)
    assert (summary.status, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 0), summary
    assert [entry.step for entry in store.ledger(job_id)] == list(range(job.steps))


def test_the_same_sample_result_is_counted_once(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    job_id = submit_hanoi(redis_url, disks=3, k=2)
    store.begin_epoch(job_id)
    result = SampleResult(sample_id=f"{job_id}:0:1.0", vote_key="[[1,0,2],[[3,2],[],[1]]]")
    assert store.record_result(job_id, 0, result) == "recorded"
    assert store.record_result(job_id, 0, result) == "duplicate"
    found = store.read_results(job_id, {0: "0-0", 1: "0-0"}, None)
    assert [r.sample_id for r in found[0][0]] == [result.sample_id] and 1 not in found
    store.client.hset(f"maker:job:{job_id}", "steps_done", 1)
    late = result.model_copy(update={"sample_id": f"{job_id}:0:1.1", "tokens_in": 120, "tokens_out": 40})
    assert store.record_result(job_id, 0, late) == "late"
    counters = store.load_job(job_id).counters
    assert (counters["samples"], counters["late_samples"], counters["tokens_in"], counters["tokens_out"]) == (
        1,
        1,
        120,
        40,
    )


def test_killed_coordinator_is_replaced_and_the_job_finishes_exactly_once(
    redis_url: str, sim_server: Callable[..., str], workers: Callable[..., object], spawn: Spawn
) -> None:
    workers(2, sim_url=sim_server(p=0.9, latency_ms=5, seed=4))
    store = RedisStore.from_url(redis_url)
    job_id = submit_hanoi(redis_url, disks=7, k=2)
    first = spawn("coordinator", env={"MAKER_REDIS_URL": redis_url})
    kill_at = random.Random(job_id).randint(5, 60)
    wait_for(store, job_id, lambda job: job.steps_done >= kill_at)
    first.send_signal(signal.SIGKILL)
    first.wait()
    spawn("coordinator", env={"MAKER_REDIS_URL": redis_url})
    wait_for(store, job_id, finished)
    assert_complete_ledger(store, job_id)
    assert int(store.load_job(job_id).epoch) == 2


def test_killed_worker_loses_no_step(
    redis_url: str,
    sim_server: Callable[..., str],
    workers: Callable[..., list[subprocess.Popen[bytes]]],
    spawn: Spawn,
) -> None:
    started = workers(2, sim_url=sim_server(p=0.9, latency_ms=5, seed=5))
    store = RedisStore.from_url(redis_url)
    job_id = submit_hanoi(redis_url, disks=7, k=2)
    spawn("coordinator", env={"MAKER_REDIS_URL": redis_url})
    wait_for(store, job_id, lambda job: job.steps_done >= 20)
    started[0].send_signal(signal.SIGKILL)
    wait_for(store, job_id, finished)
    assert_complete_ledger(store, job_id)


def start_redis(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    process = subprocess.Popen([*args, "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), "redis-server", process, 10.0)
    client.close()
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_restart_mid_run_loses_no_decided_step(
    tmp_path: Path, sim_server: Callable[..., str], workers: Callable[..., object], spawn: Spawn
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(tmp_path, port)
    try:
        workers(2, sim_url=sim_server(p=0.9, latency_ms=5, seed=6), url=url)
        store = RedisStore.from_url(url)
        job_id = submit_hanoi(url, disks=7, k=2)
        spawn("coordinator", env={"MAKER_REDIS_URL": url})
        before = wait_for(store, job_id, lambda job: job.steps_done >= 30).steps_done
        stop_process(server)  # SIGTERM: Redis flushes its append-only file and exits
        server = start_redis(tmp_path, port)
        assert store.load_job(job_id).steps_done >= before
        wait_for(store, job_id, finished)
        assert_complete_ledger(store, job_id)
    finally:
        stop_process(server)


def test_budget_pauses_the_job_and_resume_with_more_finishes_it(
    redis_url: str, sim_server: Callable[..., str], workers: Callable[..., object], spawn: Spawn
) -> None:
    prices = {"sim-hanoi": (100.0, 100.0)}  # USD per million tokens: a sample costs a few cents
    workers(2, sim_url=sim_server(p=0.95, seed=7))
    store = RedisStore.from_url(redis_url)
    config = Settings(redis_url=redis_url, llm_provider="sim", prices_usd_per_mtok=prices)
    domain = get_domain("hanoi", disks=5)
    job_id = submit(store, domain, make_spec(config, domain, 2), budget_usd=0.5)
    done = maker("resume", job_id, "--budget-usd", "0.5", env={"MAKER_REDIS_URL": redis_url})
    assert done.returncode == 1, done.stderr
    job = store.load_job(job_id)
    assert (job.status, job.reason) == (
        JobStatus.PAUSED,
        "budget_exhausted: the next sample would cross the job's budget",
    )
    assert 0 < job.spent_usd <= 0.5
    assert 0 < job.steps_done < job.steps
    assert job.counters["api_errors"] == 0  # a sample refused by the budget is no API error
    done = maker("resume", job_id, "--budget-usd", "100", "--json", env={"MAKER_REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert_complete_ledger(store, job_id)


def test_contentious_step_pauses_and_resumes_with_a_higher_cap(
    redis_url: str, sim_server: Callable[..., str], workers: Callable[..., object]
) -> None:
    workers(2, sim_url=sim_server(p=0.7, seed=8))
    store = RedisStore.from_url(redis_url)
    job_id = submit_hanoi(redis_url, disks=5, k=2, max_samples_per_step=3)
    done = maker("resume", job_id, env={"MAKER_REDIS_URL": redis_url})
    job = store.load_job(job_id)
    assert (done.returncode, job.status, job.reason) == (1, JobStatus.PAUSED, "contentious_step")
    decided = job.steps_done
    done = maker("resume", job_id, "--max-samples-per-step", "200", env={"MAKER_REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert store.load_job(job_id).steps_done == 31 > decided
    assert_complete_ledger(store, job_id)


def maker(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **FAST_FAILOVER_ENV, **env}
    return subprocess.run(
        [sys.executable, "-m", "maker_worker", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=JOB_TIMEOUT_S,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "nosuchjob"], "no job with id 'nosuchjob'"),
        (["resume", "nosuchjob"], "no job with id 'nosuchjob'"),
        (["cancel", "nosuchjob"], "no job with id 'nosuchjob'"),
        (["export", "nosuchjob"], "no job with id 'nosuchjob'"),
    ],
)
def test_unknown_job_is_a_clear_error(redis_url: str, args: list[str], expected: str) -> None:
    done = maker(*args, env={"MAKER_REDIS_URL": redis_url})
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"maker: error: {expected}; `maker list` shows the known jobs",
    )


def test_finished_and_corrupt_jobs_are_refused_and_left_unchanged(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    finished_id = submit_hanoi(redis_url, disks=3, k=1)
    store.set_status(finished_id, JobStatus.SUCCEEDED)
    done = maker("resume", finished_id, env={"MAKER_REDIS_URL": redis_url})
    assert done.returncode == 2 and "already succeeded" in done.stderr
    assert store.load_job(finished_id).status is JobStatus.SUCCEEDED
    corrupt_id = submit_hanoi(redis_url, disks=3, k=1)
    store.client.hset(f"maker:job:{corrupt_id}", "spec", "{not json")
    for command in ("status", "resume", "cancel"):
        done = maker(command, corrupt_id, env={"MAKER_REDIS_URL": redis_url})
        assert done.returncode == 2 and "corrupt record" in done.stderr and "Traceback" not in done.stderr
    assert store.client.hget(f"maker:job:{corrupt_id}", "spec") == "{not json"


def test_results_recorded_after_the_last_read_are_counted_as_late(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    job_id = submit_hanoi(redis_url, disks=3, k=1)
    epoch = store.begin_epoch(job_id)
    vote_key = "[[1,0,2],[[3,2],[],[1]]]"
    for n, tokens in enumerate([(100, 10), (200, 20)]):
        result = SampleResult(
            sample_id=f"{job_id}:0:1.0.{n}", vote_key=vote_key, tokens_in=tokens[0], tokens_out=tokens[1]
        )
        assert store.record_result(job_id, 0, result) == "recorded"
    (first_id, _fields), _second = store.client.xrange(keys.step_results(job_id, 0))
    entry = LedgerEntry(
        step=0,
        move=[1, 0, 2],
        next_state=[[3, 2], [], [1]],
        votes=1,
        winner_votes=1,
        runner_up_votes=0,
        samples=1,
        red_flags=0,
    )
    counters = {"samples": 1, "votes": 1, "tokens_in": 100, "tokens_out": 10}
    assert store.decide_step(job_id, epoch, entry, counters, read_up_to=first_id) == 1
    job = store.load_job(job_id)
    assert (job.counters["samples"], job.counters["late_samples"]) == (2, 1)
    assert (job.counters["tokens_in"], job.counters["tokens_out"]) == (300, 30)
