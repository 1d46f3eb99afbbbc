"""Prometheus metrics of workers and coordinators, served on ``MAKER_METRICS_PORT`` when set.

Workers count samples, model calls (first try, after retries, failed), tokens, latency and time
spent waiting for the shared limiter; coordinators count decided steps, first-round
convergence, discarded speculative votes and finished jobs. The seed's alerts are recording
rules over these (``ops/prometheus/rules.yml``): ``maker_api_retry_success_rate`` and
``maker_vote_convergence_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from maker_worker.errors import ConfigError, ProviderError, RateLimitedError
from maker_worker.jobs import ApiErrorReport, SampleRequest, SampleResult

_MODEL = ("provider", "model")

SAMPLES = Counter("maker_samples", "Samples run by this worker, by outcome.", [*_MODEL, "outcome"])
RED_FLAGS = Counter("maker_red_flags", "Red-flagged answers, by flag type.", [*_MODEL, "flag_type"])
LLM_CALLS = Counter(
    "maker_llm_calls",
    "Model calls by result: ok (first try), retried_ok (after failed attempts), failed.",
    [*_MODEL, "result"],
)
LLM_ATTEMPT_ERRORS = Counter(
    "maker_llm_attempt_errors",
    "Failed attempts of model calls: each retried one, and the last of a failed call.",
    [*_MODEL, "rate_limited"],
)
LLM_LATENCY = Histogram(
    "maker_llm_latency_seconds",
    "Duration of a model call, retries included.",
    _MODEL,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
LLM_TOKENS = Counter("maker_llm_tokens", "Tokens reported by the provider.", [*_MODEL, "direction"])
LIMITER_WAIT = Counter(
    "maker_limiter_wait_seconds", "Time spent waiting for a shared rate-limit permit.", _MODEL
)

STEPS_DECIDED = Counter("maker_steps_decided", "Steps decided and appended to a ledger.", ["task"])
STEPS_FIRST_ROUND = Counter(
    "maker_steps_decided_first_round",
    "Steps decided by their first k samples (every vote agreed, no red flag).",
    ["task"],
)
DISCARDED_VOTES = Counter(
    "maker_discarded_votes",
    "Answers not counted as votes: asked from a speculative state that lost, or a second one at "
    "the deterministic first temperature.",
    ["task"],
)
STEP_DURATION = Histogram(
    "maker_step_duration_seconds",
    "From a step's opening to its decision.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOBS_ENDED = Counter("maker_jobs_ended", "Jobs a coordinator stopped driving, by status.", ["status"])
JOBS_DRIVEN = Gauge("maker_jobs_driven", "Jobs this coordinator is driving now.")


def serve(port: int | None) -> None:
    """Serve ``/metrics`` on ``port`` (all interfaces) in a daemon thread; None: do nothing.

    Raises:
        ConfigError: the port cannot be bound (e.g. another process serves on it).
    """
    if port is None:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on port {port} (MAKER_METRICS_PORT): {exc}") from None


def observe_call(
    request: SampleRequest,
    result: SampleResult,
    reports: list[ApiErrorReport],
    waited_s: float,
    failure: ProviderError | None,
) -> None:
    """Count one sample that called the model: the call, its tokens, latency and limiter wait.

    ``reports`` are the retried attempts; ``failure`` the error that ended a failed call.
    """
    model = (request.provider, request.model)
    LIMITER_WAIT.labels(*model).inc(waited_s)
    for report in reports:
        LLM_ATTEMPT_ERRORS.labels(*model, str(report.rate_limited).lower()).inc()
    if failure is not None:
        LLM_ATTEMPT_ERRORS.labels(*model, str(isinstance(failure, RateLimitedError)).lower()).inc()
    if result.error is not None:
        LLM_CALLS.labels(*model, "failed").inc()
        SAMPLES.labels(*model, "error").inc()
        return
    LLM_CALLS.labels(*model, "retried_ok" if reports else "ok").inc()
    LLM_LATENCY.labels(*model).observe(result.latency_ms / 1000)
    LLM_TOKENS.labels(*model, "in").inc(result.tokens_in)
    LLM_TOKENS.labels(*model, "out").inc(result.tokens_out)
    if result.red_flag is None:
        SAMPLES.labels(*model, "vote").inc()
    else:
        SAMPLES.labels(*model, "red_flag").inc()
        RED_FLAGS.labels(*model, result.red_flag).inc()


def observe_uncalled(request: SampleRequest, outcome: str) -> None:
    """Count a sample that never reached the model: 'skipped' (step decided) or 'error'."""
    SAMPLES.labels(request.provider, request.model, outcome).inc()


def observe_step(task: str, k: int, counters: Mapping[str, int], duration_s: float) -> None:
    """Count one decided step from its counters; first round means k samples, k agreeing votes."""
    STEPS_DECIDED.labels(task).inc()
    if counters["samples"] == k and counters["votes"] == k:
        STEPS_FIRST_ROUND.labels(task).inc()
    DISCARDED_VOTES.labels(task).inc(counters["discarded_votes"])
    STEP_DURATION.labels(task).observe(duration_s)
