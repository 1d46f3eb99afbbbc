"""Submit jobs and drive them: the engine behind ``maker run``, ``maker coordinator`` and the API.

Scripts can use it directly::

    store = RedisStore.from_url(url)
    job_id = submit(store, settings, get_domain("hanoi", disks=20), k=3, budget_usd=4000)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from maker_worker.celery_app import CeleryDispatcher, create_app
from maker_worker.config import DEFAULT_MODELS, Settings
from maker_worker.coordinator import Coordinator, StepCallback
from maker_worker.core.pricing import prices_for
from maker_worker.core.scaling import k_min
from maker_worker.domains import get_domain
from maker_worker.domains.base import Domain
from maker_worker.embedded import Embedded
from maker_worker.errors import (
    ConfigError,
    JobCorruptError,
    JobError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
)
from maker_worker.events import EventLog
from maker_worker.jobs import FINISHED_STATUSES, Fallback, JobSpec, JobStatus, JobSummary
from maker_worker.lease import Lease, owner_token
from maker_worker.store import JobState, RedisStore
from maker_worker.summary import build_summary, oracle_errors

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
"""How often an idle ``maker coordinator`` looks for claimable jobs."""


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


def _fallback(entry: str, settings: Settings) -> Fallback:
    provider, _, model = entry.partition(":")
    model = model or DEFAULT_MODELS[provider]
    price_in, price_out = prices_for(model, settings.prices_usd_per_mtok)
    return Fallback(
        provider=provider, model=model, price_in_usd_per_mtok=price_in, price_out_usd_per_mtok=price_out
    )


def make_spec(settings: Settings, domain: Domain, k: int) -> JobSpec:
    price_in, price_out = prices_for(settings.resolved_model, settings.prices_usd_per_mtok)
    return JobSpec(
        fallbacks=[_fallback(entry, settings) for entry in settings.fallback_providers],
        task=domain.name,
        k=k,
        provider=settings.llm_provider,
        model=settings.resolved_model,
        max_samples_per_step=settings.max_samples_per_step,
        red_flag_max_tokens=settings.red_flag_max_tokens,
        max_output_tokens=settings.max_output_tokens,
        sample_timeout_s=settings.resolved_sample_timeout_s,
        price_in_usd_per_mtok=price_in,
        price_out_usd_per_mtok=price_out,
    )


def submit(store: RedisStore, domain: Domain, spec: JobSpec, budget_usd: float | None = None) -> str:
    """Store a queued job; a coordinator (``maker run`` or ``maker coordinator``) drives it."""
    if budget_usd is not None and budget_usd <= 0:
        raise ConfigError(f"--budget-usd must be positive, got {budget_usd}")
    return store.create_job(
        spec, steps=domain.total_steps, state=domain.initial_state(), budget_usd=budget_usd
    )


@contextmanager
def services(settings: Settings, *, workers: int, sim: SimOptions | None) -> Iterator[str]:
    """Yield a Redis URL: the configured one, or an embedded Redis with local workers (and simulator)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    if workers < 1 and sim is not None:
        raise ConfigError("--workers must be at least 1 without MAKER_REDIS_URL (nothing else would sample)")
    with Embedded(settings.data_dir) as embedded:
        url = embedded.start_redis()
        if sim is not None and settings.llm_provider == "sim":
            embedded.start_simulator(sim.p, sim.red_flag_rate, sim.latency_ms, sim.seed)
        if workers > 0:
            embedded.start_workers(workers, settings.worker_threads, settings.metrics_port)
        yield url


@contextmanager
def local_services(settings: Settings, sim: SimOptions | None) -> Iterator[Settings]:
    """``settings`` pointed at a Redis and, for the simulator, a sim server, started here if needed.

    For commands that call the model in this process (``maker calibrate``): no workers start.
    Without ``MAKER_REDIS_URL`` both are embedded, as for ``maker run``; with it, a simulator is
    started only when ``MAKER_SIM_URL`` is not set.
    """
    with Embedded(settings.data_dir) as embedded:
        update: dict[str, str] = {}
        if not settings.redis_url:
            update["redis_url"] = embedded.start_redis()
        if (
            sim is not None
            and settings.llm_provider == "sim"
            and not (settings.redis_url and settings.sim_url)
        ):
            update["sim_url"] = embedded.start_simulator(sim.p, sim.red_flag_rate, sim.latency_ms, sim.seed)
        yield settings.model_copy(update=update)


def drive(
    settings: Settings,
    redis_url: str,
    job_id: str,
    on_step: StepCallback | None = None,
    owner: str | None = None,
) -> tuple[JobState, str]:
    """Take the job's lease and drive it in this process; returns the final record and event path.

    Raises:
        JobError: another coordinator holds the job, or it is finished.
    """
    store = RedisStore.from_url(redis_url)
    lease = Lease(store, job_id, owner=owner or owner_token(), lease_s=settings.lease_s)
    if not lease.acquire():
        raise JobError(f"job {job_id} is being driven by another coordinator (its lease is held)")
    events_path = settings.resolved_events_path(job_id)
    events = EventLog(events_path, publish=partial(store.publish_events, job_id))
    app = create_app(settings, redis_url)
    coordinator = Coordinator(
        store,
        CeleryDispatcher(app),
        events,
        lease=lease,
        speculate=settings.speculate,
        fallback_after_s=settings.fallback_after_s,
    )
    try:
        return coordinator.run(job_id, on_step), str(events_path)
    finally:
        events.close()
        _release_quietly(lease)
        app.close()  # a long-running `maker coordinator` drives many jobs: free each one's pools
        store.client.close()


def _release_quietly(lease: Lease) -> None:
    try:
        lease.release()
    except StoreUnavailableError:
        log.warning("could not release the lease on job %s; it lapses by itself", lease.job_id)


def finish(store: RedisStore, job: JobState, events_path: str | None = None) -> JobSummary:
    """Replay the ledger against the oracle; a finished job with oracle errors is marked failed."""
    errors = oracle_errors(get_domain(job.spec.task), store.ledger(job.job_id))
    if job.status is JobStatus.SUCCEEDED and errors:
        succeeded = frozenset({JobStatus.SUCCEEDED})
        store.set_status(job.job_id, JobStatus.FAILED, "errors_vs_oracle", only_from=succeeded)
        job = store.load_job(job.job_id)
    return build_summary(job, errors, events_path)


def serve_coordinator(
    settings: Settings, redis_url: str, *, once: bool = False, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Claim and drive queued jobs forever (``maker coordinator``); with ``once``, stop when idle."""
    store = RedisStore.from_url(redis_url)
    owner = owner_token()
    while True:
        try:
            drove = any(
                _try_drive(settings, redis_url, store, job_id, owner) for job_id in store.active_job_ids()
            )
        except StoreError as exc:  # Redis down or failing: a long-running service waits it out
            log.warning("%s; retrying", exc)
            drove = False
        if once and not drove:
            return
        if not drove:
            sleep(IDLE_POLL_S)


def _try_drive(settings: Settings, redis_url: str, store: RedisStore, job_id: str, owner: str) -> bool:
    try:
        job, events_path = drive(settings, redis_url, job_id, owner=owner)
    except LeaseLostError as exc:
        log.warning("%s", exc)
        return True
    except (JobCorruptError, StoreError) as exc:
        if isinstance(exc, StoreUnavailableError):
            raise  # not the job's fault: the service loop waits for Redis
        log.error("job %s cannot be driven: %s; pausing it", job_id, exc)
        store.set_status(job_id, JobStatus.PAUSED, f"coordinator_error: {exc}")
        return True
    except JobError:
        return False  # held by another coordinator, or finished: not ours now
    summary = finish(store, job, events_path)
    log.warning(
        "job %s %s after %d steps (%s)", job_id, summary.status.value, summary.steps_done, summary.reason
    )
    return True


def requeue(
    store: RedisStore, job_id: str, max_samples_per_step: int | None, budget_usd: float | None
) -> None:
    """Apply new caps and queue a paused job again; finished jobs are refused."""
    job = store.load_job(job_id)
    if job.status in FINISHED_STATUSES:
        raise JobError(f"job {job_id} is already {job.status.value}; only paused or running jobs resume")
    if budget_usd is not None and budget_usd <= job.spent_usd:
        raise ConfigError(f"the budget ${budget_usd} is not above the ${job.spent_usd:.4f} already spent")
    if max_samples_per_step is not None and max_samples_per_step < 1:
        raise ConfigError(f"the sample cap per step must be at least 1, got {max_samples_per_step}")
    spec = job.spec
    if max_samples_per_step is not None:
        spec = spec.model_copy(update={"max_samples_per_step": max_samples_per_step})
    store.update_limits(job_id, spec, budget_usd if budget_usd is not None else job.budget_usd)
    if job.status is JobStatus.PAUSED:
        status = store.set_status(job_id, JobStatus.QUEUED, only_from=frozenset({JobStatus.PAUSED}))
        if status in FINISHED_STATUSES:
            raise JobError(f"job {job_id} became {status.value} meanwhile; it cannot resume")


def cancel(store: RedisStore, job_id: str) -> JobState:
    """Stop a job for good (its ledger is kept; its coordinator stops within a second).

    Raises:
        JobError: no such job, or it is finished already (a finished status is final).
    """
    store.load_job(job_id)
    status = store.set_status(job_id, JobStatus.CANCELLED, "cancelled by operator")
    if status is not JobStatus.CANCELLED:
        raise JobError(f"job {job_id} is already {status.value}")
    return store.load_job(job_id)
