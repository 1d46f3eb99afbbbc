"""The work of one sample, free of Celery: check, budget, permit, call, red-flag, parse, report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from maker_worker import metrics
from maker_worker.config import Settings
from maker_worker.core.models import Completion, RedFlag
from maker_worker.core.redflags import length_red_flag
from maker_worker.domains import get_domain
from maker_worker.domains.base import Domain
from maker_worker.errors import (
    ConfigError,
    ProviderError,
    ProviderRequestError,
    QuotaExhaustedError,
    RateLimitedError,
    StoreError,
    StoreUnavailableError,
)
from maker_worker.events import utc_timestamp
from maker_worker.jobs import ApiErrorReport, ErrorKind, SampleRequest, SampleResult
from maker_worker.providers import build_provider
from maker_worker.providers.base import Provider
from maker_worker.ratelimit.limiter import Limiter
from maker_worker.store import RedisStore

log = logging.getLogger(__name__)

RECORD_RETRY_S = 120.0
"""How long a worker keeps trying to record a finished sample while Redis is unreachable."""


@lru_cache(maxsize=64)
def domain_for(task: str) -> Domain:
    return get_domain(task)


@dataclass
class WorkerContext:
    """What a worker process shares across its threads: Redis, the limiter, provider clients."""

    settings: Settings
    store: RedisStore
    limiter: Limiter
    _providers: dict[str, Provider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reports: threading.local = field(default_factory=threading.local)

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> WorkerContext:
        store = RedisStore.from_url(redis_url)
        return cls(settings, store, Limiter(store.client, settings.rpm_limits, settings.tpm_limits))

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

    def calling(self, request: SampleRequest) -> None:
        """Note which provider/model this thread is calling, for the retry hook."""
        self._reports.target = (request.provider, request.model)

    def _record_retry(self, error: ProviderError, attempt: int, wait_s: float) -> None:
        target: tuple[str, str] | None = getattr(self._reports, "target", None)
        if error.retry_after_s and target is not None:
            try:
                self.limiter.cool_down(target[0], target[1], error.retry_after_s)
            except redis.RedisError as exc:  # the retry itself still waits; only sharing failed
                log.warning("could not share a cool-down: %s", exc)
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
        self.store.client.close()


def run_sample(request: SampleRequest, ctx: WorkerContext) -> str:
    """Run one sample and record its result: returns 'skipped', 'recorded', 'duplicate' or 'late'."""
    if request.check_step_open and not ctx.store.step_is_open(request.job_id, request.step):
        metrics.observe_uncalled(request, "skipped")
        return "skipped"
    return record(ctx, request, take_sample(request, ctx))


def take_sample(request: SampleRequest, ctx: WorkerContext) -> SampleResult:
    """Reserve budget and a limiter permit, call the model, judge the answer, settle the reservations."""
    try:
        provider = ctx.provider(request.provider)
    except ConfigError as exc:
        metrics.observe_uncalled(request, "error")
        return failed(request, ErrorKind.WORKER_CONFIG, f"worker configuration: {exc}")
    reserved_usd = estimated_cost_usd(request) if request.budget_limited else 0.0
    if request.budget_limited and not ctx.store.reserve_budget(request.job_id, reserved_usd):
        metrics.observe_uncalled(request, "error")
        return failed(request, ErrorKind.BUDGET_EXHAUSTED, "the next sample would cross the job's budget")
    reserved_tokens = estimated_tokens(request)
    try:
        waited_s = ctx.limiter.acquire(request.provider, request.model, reserved_tokens)
    except StoreUnavailableError:
        _settle_quietly(ctx, request, reserved_tokens, reserved_tokens, -reserved_usd)
        raise
    ctx.take_reports()
    ctx.calling(request)
    failures: list[ProviderError] = []
    result = sample_once(request, provider, on_failure=failures.append)
    used_tokens = result.tokens_in + result.tokens_out if result.error is None else reserved_tokens
    spent_usd = _cost_usd(request, result.tokens_in, result.tokens_out)
    _settle_quietly(ctx, request, reserved_tokens, used_tokens, spent_usd - reserved_usd)
    reports = ctx.take_reports()
    metrics.observe_call(request, result, reports, waited_s, failures[0] if failures else None)
    return result.model_copy(update={"api_errors": reports})


def _settle_quietly(
    ctx: WorkerContext,
    request: SampleRequest,
    reserved_tokens: int,
    used_tokens: int,
    budget_delta_usd: float,
) -> None:
    """Correct the token and budget reservations; a Redis error here must not lose the paid sample."""
    try:
        ctx.limiter.settle(request.provider, request.model, reserved_tokens, used_tokens)
        if request.budget_limited and budget_delta_usd:
            ctx.store.settle_budget(request.job_id, budget_delta_usd)
    except (StoreError, redis.RedisError) as exc:
        log.warning("could not correct the reservations of sample %s: %s", request.sample_id, exc)


def record(ctx: WorkerContext, request: SampleRequest, result: SampleResult) -> str:
    """Record ``result``, waiting out a Redis restart rather than losing a paid-for sample."""
    retrying = Retrying(
        retry=retry_if_exception_type(StoreUnavailableError),
        wait=wait_exponential(multiplier=0.1, max=5),
        stop=stop_after_delay(RECORD_RETRY_S),
        reraise=True,
    )
    return retrying(ctx.store.record_result, request.job_id, request.step, result)


def _cost_usd(request: SampleRequest, tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * request.price_in_usd_per_mtok + tokens_out * request.price_out_usd_per_mtok) / 1e6


def _prompt_tokens(request: SampleRequest) -> int:
    """A generous prompt-size estimate: one token per 3 characters (real text averages ~4)."""
    prompt = domain_for(request.task).build_prompt(request.state, request.previous_move)
    return (len(prompt.system) + len(prompt.user)) // 3


def estimated_tokens(request: SampleRequest) -> int:
    """Tokens a call may use at most (as providers count it against TPM): prompt plus max output."""
    return _prompt_tokens(request) + request.max_output_tokens


def estimated_cost_usd(request: SampleRequest) -> float:
    """An upper bound on a call's cost: the prompt and a full-length answer."""
    return _cost_usd(request, _prompt_tokens(request), request.max_output_tokens)


def failed(request: SampleRequest, kind: ErrorKind, error: str) -> SampleResult:
    """A result that carries no answer, only why."""
    return SampleResult(
        sample_id=request.sample_id,
        error=error,
        error_kind=kind,
        temperature=request.temperature,
        provider=request.provider,
        model=request.model,
        finished_at=utc_timestamp(),
        basis=request.basis,
    )


def _error_kind(error: ProviderError) -> ErrorKind:
    if isinstance(error, QuotaExhaustedError):
        return ErrorKind.QUOTA_EXHAUSTED
    if isinstance(error, ProviderRequestError):
        return ErrorKind.PROVIDER_REJECTED
    return ErrorKind.PROVIDER_UNAVAILABLE


def sample_once(
    request: SampleRequest, provider: Provider, on_failure: Callable[[ProviderError], None] | None = None
) -> SampleResult:
    """Call the model once and judge the answer: a vote key, a red flag or an error (which
    ``on_failure`` also gets)."""
    prompt = domain_for(request.task).build_prompt(request.state, request.previous_move)
    started_s = time.perf_counter()
    try:
        completion = provider.complete(
            prompt, model=request.model, temperature=request.temperature, max_tokens=request.max_output_tokens
        )
    except ProviderError as exc:
        if on_failure is not None:
            on_failure(exc)
        return failed(request, _error_kind(exc), f"{type(exc).__name__}: {exc}")
    return judge(request, completion, latency_ms=(time.perf_counter() - started_s) * 1000)


def judge(request: SampleRequest, completion: Completion, *, latency_ms: float) -> SampleResult:
    """Red-flag or parse a completion into a vote (never repairing it)."""
    red_flag = length_red_flag(completion, request.red_flag_max_tokens)
    candidate = None if red_flag else domain_for(request.task).parse(completion.text)
    if red_flag is None and candidate is None:
        red_flag = RedFlag.BAD_FORMAT
    return SampleResult(
        sample_id=request.sample_id,
        vote_key=None if candidate is None else candidate.vote_key,
        red_flag=None if red_flag is None else red_flag.value,
        tokens_in=completion.tokens_in,
        tokens_out=completion.tokens_out,
        latency_ms=latency_ms,
        temperature=request.temperature,
        provider=request.provider,
        model=request.model,
        finished_at=utc_timestamp(),
        basis=request.basis,
    )
