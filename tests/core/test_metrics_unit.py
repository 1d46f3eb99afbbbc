"""Worker metrics count every failed attempt: the retried ones and the one that ended the call."""

from __future__ import annotations

from prometheus_client import REGISTRY

from maker_worker import metrics
from maker_worker.errors import RateLimitedError
from maker_worker.jobs import ApiErrorReport, SampleRequest, SampleResult

REQUEST = SampleRequest(
    job_id="j",
    step=0,
    sample_id="j:0:1.1.0",
    task="hanoi-3disk",
    state=[[3, 2, 1], [], []],
    previous_move=None,
    provider="unit",
    model="m",
    temperature=0.1,
    max_output_tokens=10,
    red_flag_max_tokens=10,
)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"provider": "unit", "model": "m", **labels}) or 0.0


def test_a_call_ended_by_a_429_counts_its_last_attempt_as_rate_limited() -> None:
    retried = ApiErrorReport(
        timestamp="t", status=503, attempt=1, retry_after=None, error="503", rate_limited=False
    )
    failed = SampleResult(
        sample_id="j:0:1.1.0", error="RateLimitedError: 429", error_kind="provider_unavailable"
    )
    before = {flag: value("maker_llm_attempt_errors_total", rate_limited=flag) for flag in ("true", "false")}
    calls_before = value("maker_llm_calls_total", result="failed")
    metrics.observe_call(
        REQUEST, failed, [retried], 0.0, RateLimitedError("429", provider="unit", status=429)
    )
    assert value("maker_llm_attempt_errors_total", rate_limited="true") == before["true"] + 1
    assert value("maker_llm_attempt_errors_total", rate_limited="false") == before["false"] + 1
    assert value("maker_llm_calls_total", result="failed") == calls_before + 1


def test_a_call_that_succeeds_after_a_retry_is_retried_ok() -> None:
    retried = ApiErrorReport(
        timestamp="t", status=503, attempt=1, retry_after=None, error="503", rate_limited=False
    )
    answered = SampleResult(sample_id="j:0:1.1.1", vote_key="k", tokens_in=7, tokens_out=3, latency_ms=20.0)
    before = (
        value("maker_llm_calls_total", result="retried_ok"),
        value("maker_llm_tokens_total", direction="in"),
    )
    metrics.observe_call(REQUEST, answered, [retried], 0.5, None)
    assert value("maker_llm_calls_total", result="retried_ok") == before[0] + 1
    assert value("maker_llm_tokens_total", direction="in") == before[1] + 7
