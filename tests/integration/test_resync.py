"""A Redis error in the middle of a step: the coordinator reopens it without reusing sample ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator
from maker_worker.domains import get_domain
from maker_worker.errors import StoreUnavailableError
from maker_worker.events import EventLog
from maker_worker.jobs import JobStatus, SampleRequest
from maker_worker.runner import finish, make_spec, submit
from maker_worker.service import WorkerContext, run_sample
from maker_worker.store import RedisStore


class FlakyDispatcher:
    """Runs samples on threads; the third dispatch publishes, then reports Redis as gone."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(8)
        self.outcomes: list[Future[str]] = []
        self.calls = 0

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        self.calls += 1
        self.outcomes += [self.pool.submit(run_sample, request, self.ctx) for request in requests]
        if self.calls == 3:
            raise StoreUnavailableError("injected: Redis went away after publishing")


def test_a_reopened_step_gets_fresh_sample_ids(
    redis_url: str, tmp_path: Path, sim_server: Callable[..., str]
) -> None:
    settings = Settings(
        redis_url=redis_url, sim_url=sim_server(p=0.8, seed=11), llm_provider="sim", data_dir=tmp_path
    )
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=3)
    job_id = submit(store, domain, make_spec(settings, domain, 3))
    dispatcher = FlakyDispatcher(WorkerContext.from_settings(settings, redis_url))
    events = EventLog(tmp_path / "events.jsonl")
    job = Coordinator(store, dispatcher, events).run(job_id)
    events.close()
    dispatcher.pool.shutdown(wait=True)
    dispatcher.ctx.close()
    assert "duplicate" not in [future.result() for future in dispatcher.outcomes]
    summary = finish(store, job)
    store.client.close()
    assert (summary.status, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 0)
