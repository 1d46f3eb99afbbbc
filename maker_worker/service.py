"""The work of one sample, free of Celery: check, permit, call, red-flag, parse, report."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from maker_worker.config import Settings
from maker_worker.core.models import RedFlag
from maker_worker.core.redflags import length_red_flag
from maker_worker.domains import get_domain
from maker_worker.domains.base import Domain
from maker_worker.errors import ConfigError, ProviderError, RateLimitedError
from maker_worker.events import utc_timestamp
from maker_worker.jobs import ApiErrorReport, SampleRequest, SampleResult
from maker_worker.providers import build_provider
from maker_worker.providers.base import Provider
from maker_worker.ratelimit.limiter import RpmLimiter
from maker_worker.store import RedisStore


@lru_cache(maxsize=64)
def domain_for(task: str) -> Domain:
    return get_domain(task)


@dataclass
class WorkerContext:
    """What a worker process shares across its threads: Redis, the limiter, provider clients."""

    settings: Settings
    store: RedisStore
    limiter: RpmLimiter
    _providers: dict[str, Provider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reports: threading.local = field(default_factory=threading.local)

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> WorkerContext:
        store = RedisStore.from_url(redis_url)
        return cls(settings, store, RpmLimiter(store.client, settings.rpm_limits))

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = build_provider(name, self.settings, on_retry=self._record_retry)
            return self._providers[name]

    def take_reports(self) -> list[ApiErrorReport]:
        """The failed attempts this thread saw since the last call."""
        reports: list[ApiErrorReport] = getattr(self._reports, "items", [])
        self._reports.items = []
        return reports

    def _record_retry(self, error: ProviderError, attempt: int, wait_s: float) -> None:
        report = ApiErrorReport(
            timestamp=utc_timestamp(),
            status=error.status,
            attempt=attempt,
            retry_after=error.retry_after_s,
            error=str(error),
            rate_limited=isinstance(error, RateLimitedError),
        )
        self._reports.items = [*getattr(self._reports, "items", []), report]

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()


def run_sample(request: SampleRequest, ctx: WorkerContext) -> str:
    """Run one sample and record its result: returns 'skipped', 'recorded', 'duplicate' or 'late'."""
    if request.check_step_open and not ctx.store.step_is_open(request.job_id, request.step):
        return "skipped"
    try:
        provider = ctx.provider(request.provider)
    except ConfigError as exc:
        result = SampleResult(
            sample_id=request.sample_id, error=f"worker configuration: {exc}", error_retryable=False
        )
        return ctx.store.record_result(request.job_id, request.step, result)
    ctx.limiter.acquire(request.provider, request.model)
    ctx.take_reports()
    result = sample_once(request, provider)
    result = result.model_copy(update={"api_errors": ctx.take_reports()})
    return ctx.store.record_result(request.job_id, request.step, result)


def sample_once(request: SampleRequest, provider: Provider) -> SampleResult:
    """Call the model once and judge the answer: a vote key, a red flag or an error."""
    domain = domain_for(request.task)
    prompt = domain.build_prompt(request.state, request.previous_move)
    report = SampleResult(
        sample_id=request.sample_id,
        temperature=request.temperature,
        provider=request.provider,
        model=request.model,
    )
    started_s = time.perf_counter()
    try:
        completion = provider.complete(
            prompt, model=request.model, temperature=request.temperature, max_tokens=request.max_output_tokens
        )
    except ProviderError as exc:
        error = f"{type(exc).__name__}: {exc}"
        return report.model_copy(
            update={"error": error, "error_retryable": exc.retryable, "finished_at": utc_timestamp()}
        )
    latency_ms = (time.perf_counter() - started_s) * 1000
    red_flag = length_red_flag(completion, request.red_flag_max_tokens)
    candidate = None if red_flag else domain.parse(completion.text)
    if red_flag is None and candidate is None:
        red_flag = RedFlag.BAD_FORMAT
    return report.model_copy(
        update={
            "vote_key": None if candidate is None else candidate.vote_key,
            "red_flag": None if red_flag is None else red_flag.value,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "latency_ms": latency_ms,
            "finished_at": utc_timestamp(),
        }
    )
