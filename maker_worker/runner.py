"""Submit a job and drive it to the end: the engine behind ``maker run``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from maker_worker.celery_app import CeleryDispatcher, create_app
from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator, StepCallback
from maker_worker.core.scaling import k_min
from maker_worker.domains.base import Domain
from maker_worker.embedded import Embedded
from maker_worker.errors import ConfigError
from maker_worker.events import EventLog
from maker_worker.jobs import JobSpec, JobStatus, JobSummary
from maker_worker.store import JobState, RedisStore
from maker_worker.summary import build_summary, oracle_errors


@dataclass(frozen=True)
class SimOptions:
    """How the embedded simulator (a test tool) answers."""

    p: float = 0.95
    red_flag_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int = 0


def resolve_k(k: int | None, target: float | None, p_estimate: float | None, steps: int) -> int:
    """``k`` as given, else ``k_min`` for ``target`` at ``p_estimate``, else 3 (the paper's run)."""
    if k is not None:
        if target is not None:
            raise ConfigError("give either --k or --target with --p-estimate, not both")
        return k
    if target is None and p_estimate is None:
        return 3
    if target is None or p_estimate is None:
        raise ConfigError("--target and --p-estimate go together (k is computed as k_min from both)")
    try:
        return k_min(p_estimate, steps, target)
    except ValueError as exc:
        raise ConfigError(f"cannot compute k_min: {exc}") from None


def make_spec(settings: Settings, domain: Domain, k: int) -> JobSpec:
    return JobSpec(
        task=domain.name,
        k=k,
        provider=settings.llm_provider,
        model=settings.resolved_model,
        max_samples_per_step=settings.max_samples_per_step,
        red_flag_max_tokens=settings.red_flag_max_tokens,
        max_output_tokens=settings.max_output_tokens,
        sample_timeout_s=settings.sample_timeout_s,
    )


@contextmanager
def services(settings: Settings, *, workers: int, sim: SimOptions | None) -> Iterator[str]:
    """Yield a Redis URL: the configured one, or an embedded Redis with local workers (and simulator)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    if workers < 1:
        raise ConfigError("--workers must be at least 1 without MAKER_REDIS_URL (nothing else would sample)")
    with Embedded(settings.data_dir) as embedded:
        url = embedded.start_redis()
        if sim is not None and settings.llm_provider == "sim":
            embedded.start_simulator(sim.p, sim.red_flag_rate, sim.latency_ms, sim.seed)
        embedded.start_workers(workers, settings.worker_threads)
        yield url


def submit(store: RedisStore, domain: Domain, spec: JobSpec) -> str:
    return store.create_job(spec, steps=domain.total_steps, state=domain.initial_state())


def drive(
    settings: Settings, redis_url: str, job_id: str, on_step: StepCallback | None = None
) -> tuple[JobState, str]:
    """Run the job's coordinator in this process through Celery; returns the final record and event path."""
    store = RedisStore.from_url(redis_url)
    events_path = settings.resolved_events_path(job_id)
    events = EventLog(events_path, publish=partial(store.publish_events, job_id))
    dispatcher = CeleryDispatcher(create_app(settings, redis_url))
    coordinator = Coordinator(store, dispatcher, events, sample_timeout_s=settings.sample_timeout_s)
    try:
        return coordinator.run(job_id, on_step), str(events_path)
    finally:
        events.close()


def finish(store: RedisStore, job: JobState, domain: Domain, events_path: str | None) -> JobSummary:
    """Replay the ledger against the oracle; a finished job with oracle errors is marked failed."""
    errors = oracle_errors(domain, store.ledger(job.job_id))
    if job.status is JobStatus.SUCCEEDED and errors:
        store.set_status(job.job_id, JobStatus.FAILED, "errors_vs_oracle", wall_s=job.wall_s)
        job = store.load_job(job.job_id)
    return build_summary(job, errors, events_path)
