"""Wire-format tests of AnthropicProvider against httpx.MockTransport (no network, no real sleeping)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from maker_worker.config import Settings
from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import (
    ConfigError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    QuotaExhaustedError,
    RateLimitedError,
)
from maker_worker.providers import build_provider
from maker_worker.providers.anthropic import AnthropicProvider

API_KEY = "sk-ant-api03-SECRET-0123456789abcdef"
BASE_URL = "https://claude.example"
NOW_S = 1_700_000_000.0
PROMPT = Prompt(system="You solve puzzles.", user="Current State: [[1], [], []]")
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
CREDIT_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Collects the requests sent, the sleeps asked for and the on_retry calls."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps_s: list[float] = []
        self.retries: list[tuple[ProviderError, int, float]] = []

    def provider(
        self, responses: Iterator[httpx.Response] | Handler, max_retries: int = 3
    ) -> AnthropicProvider:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return responses(request) if callable(responses) else next(responses)

        return AnthropicProvider(
            base_url=BASE_URL,
            api_key=API_KEY,
            timeout_s=5.0,
            max_retries=max_retries,
            max_delay_ms=30_000,
            transport=httpx.MockTransport(handle),
            on_retry=lambda error, attempt, wait_s: self.retries.append((error, attempt, wait_s)),
            sleep=self.sleeps_s.append,
            clock=lambda: NOW_S,
            rand=lambda: 0.5,
        )


def ok_body(text: str = "move = [1, 0, 2]", stop_reason: str = "end_turn") -> dict[str, object]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 42, "output_tokens": 7},
    }


def ok() -> httpx.Response:
    return httpx.Response(200, json=ok_body())


def error(status: int, error_type: str, message: str, **headers: str) -> httpx.Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"}
    return httpx.Response(status, json=body, headers=headers)


def complete(provider: AnthropicProvider) -> Completion:
    return provider.complete(PROMPT, model="claude-haiku-4-5", temperature=0.1, max_tokens=750)


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_no_key(error: BaseException) -> None:
    for text in (str(error), repr(error), *map(str, error.args)):
        assert API_KEY not in text
    if error.__cause__ is not None:
        assert API_KEY not in str(error.__cause__) and API_KEY not in repr(error.__cause__)


def test_good_response_is_parsed_and_request_is_well_formed() -> None:
    rec = Recorder()
    with rec.provider(iter([ok()])) as provider:
        completion = complete(provider)
    assert completion == Completion("move = [1, 0, 2]", 42, 7, FinishReason.STOP)
    [request] = rec.requests
    assert request.method == "POST" and str(request.url) == "https://claude.example/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 750,
        "system": PROMPT.system,
        "messages": [{"role": "user", "content": PROMPT.user}],
        "temperature": 0.1,
    }


def test_text_blocks_are_concatenated_and_other_blocks_skipped() -> None:
    body = ok_body()
    body["content"] = [
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "text", "text": "move = [1, 0, 2]\n"},
        {"type": "text", "text": "next_state = [[], [], [1]]"},
    ]
    completion = complete(Recorder().provider(iter([httpx.Response(200, json=body)])))
    assert completion.text == "move = [1, 0, 2]\nnext_state = [[], [], [1]]"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("refusal", FinishReason.OTHER),
    ],
)
def test_stop_reasons_are_normalised(stop_reason: str, expected: FinishReason) -> None:
    response = httpx.Response(200, json=ok_body(stop_reason=stop_reason))
    assert complete(Recorder().provider(iter([response]))).finish_reason is expected


def test_missing_usage_is_estimated_from_text_length() -> None:
    body = ok_body(text="x" * 41)
    del body["usage"]
    assert complete(Recorder().provider(iter([httpx.Response(200, json=body)]))).tokens_out == 11


def test_529_overloaded_is_retried_with_backoff_then_unavailable() -> None:
    rec = Recorder()
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(rec.provider(lambda _: error(529, "overloaded_error", "Overloaded")))
    assert caught.value.status == 529 and caught.value.retryable
    assert "Overloaded" in str(caught.value)
    assert len(rec.requests) == 4 and rec.sleeps_s == [0.5, 1.0, 2.0]
    assert [attempt for _, attempt, _ in rec.retries] == [1, 2, 3]


def test_529_then_success_recovers() -> None:
    rec = Recorder()
    assert complete(rec.provider(iter([error(529, "overloaded_error", "Overloaded"), ok()]))).tokens_in == 42
    assert rec.sleeps_s == [0.5]


@pytest.mark.parametrize(
    "response",
    [
        error(500, "api_error", "Internal server error"),
        httpx.Response(502, text=HTML_502, headers={"content-type": "text/html"}),
        httpx.Response(503, text="upstream connect error"),
        httpx.Response(504, text=HTML_502.replace("502 Bad Gateway", "504 Gateway Time-out")),
    ],
)
def test_5xx_and_html_pages_are_retried_then_unavailable(response: httpx.Response) -> None:
    rec = Recorder()
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(rec.provider(lambda _: response, max_retries=2))
    assert caught.value.status == response.status_code
    assert len(rec.requests) == 3 and len(rec.sleeps_s) == 2


def test_429_waits_what_retry_after_says() -> None:
    rec = Recorder()
    limited = error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
        **{"retry-after": "13", "anthropic-ratelimit-requests-reset": rfc3339(NOW_S + 40)},
    )
    assert complete(rec.provider(iter([limited, ok()]))).text == "move = [1, 0, 2]"
    assert rec.sleeps_s == [13.0]
    [(failure, attempt, wait_s)] = rec.retries
    assert isinstance(failure, RateLimitedError) and failure.retry_after_s == 13.0
    assert (attempt, wait_s) == (1, 13.0)


def test_429_without_retry_after_waits_for_the_latest_reset_timestamp() -> None:
    rec = Recorder()
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": rfc3339(NOW_S + 20),
        "anthropic-ratelimit-tokens-reset": rfc3339(NOW_S + 5),
    }
    limited = error(
        429, "rate_limit_error", "Number of request tokens has exceeded your rate limit.", **headers
    )
    complete(rec.provider(iter([limited, ok()])))
    assert rec.sleeps_s == [pytest.approx(20.0)]


@pytest.mark.parametrize(
    "response",
    [
        error(400, "invalid_request_error", CREDIT_MESSAGE),
        error(402, "billing_error", "There is an issue with your billing."),
        httpx.Response(
            429,
            json={
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "You have reached your monthly spend limit.",
                    "details": {"error_code": "enforced_spend_limit_reached"},
                },
            },
        ),
    ],
)
def test_credit_balance_and_spend_limits_are_quota_errors_not_retried(response: httpx.Response) -> None:
    rec = Recorder()
    with pytest.raises(QuotaExhaustedError) as caught:
        complete(rec.provider(lambda _: response))
    assert not caught.value.retryable and caught.value.status == response.status_code
    assert len(rec.requests) == 1 and rec.sleeps_s == []


def test_other_400_is_a_request_error_quoting_the_message() -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: error(400, "invalid_request_error", "max_tokens: Field required")))
    assert "max_tokens: Field required" in str(caught.value)
    assert len(rec.requests) == 1


def test_401_is_not_retried_and_names_the_key_variable_without_the_key() -> None:
    rec = Recorder()
    response = error(401, "authentication_error", f"invalid x-api-key {API_KEY}")
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: response))
    assert caught.value.status == 401 and "ANTHROPIC_API_KEY" in str(caught.value)
    assert len(rec.requests) == 1 and rec.sleeps_s == []
    assert_no_key(caught.value)


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        (403, "permission_error", "Your API key does not have permission to use the specified resource."),
        (404, "not_found_error", "model: claude-nonexistent"),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
    ],
)
def test_other_4xx_are_not_retried(status: int, error_type: str, message: str) -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: error(status, error_type, message)))
    assert caught.value.status == status and message in str(caught.value)
    assert len(rec.requests) == 1 and rec.sleeps_s == []


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"type": "message", "role": "assistant"}, "content"),
        ({"content": "move = [1, 0, 2]"}, "content"),
        ({"content": [{"type": "text"}]}, "text string"),
        ({"content": ["move"]}, "content"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_200_without_content_is_a_request_error(body: object, missing: str) -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(200, json=body)))
    assert missing in str(caught.value) and "Messages API" in str(caught.value)
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        error(401, "authentication_error", API_KEY),
        error(403, "permission_error", API_KEY),
        error(400, "invalid_request_error", f"credit balance too low for {API_KEY}"),
        error(429, "rate_limit_error", API_KEY),
        error(529, "overloaded_error", API_KEY),
        httpx.Response(502, text=API_KEY),
        httpx.Response(200, text=API_KEY),
        httpx.Response(200, json={"echo": API_KEY}),
    ],
)
def test_api_key_absent_from_every_error_and_the_repr(response: httpx.Response) -> None:
    rec = Recorder()
    provider = rec.provider(lambda _: response, max_retries=1)
    with pytest.raises(ProviderError) as caught:
        complete(provider)
    assert_no_key(caught.value)
    for failure, _, _ in rec.retries:
        assert_no_key(failure)
    assert API_KEY not in repr(provider) and "claude.example" in repr(provider)


def test_transport_errors_are_retried_then_unavailable() -> None:
    rec = Recorder()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(ProviderUnavailableError) as caught:
        complete(rec.provider(refuse, max_retries=1))
    assert caught.value.status is None and len(rec.requests) == 2
    assert_no_key(caught.value)


def test_build_provider_needs_the_key_and_uses_the_base_url() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        build_provider("anthropic", Settings())
    settings = Settings(anthropic_api_key=SecretStr(API_KEY), anthropic_base_url="https://proxy.example/")
    provider = build_provider("anthropic", settings)
    assert isinstance(provider, AnthropicProvider) and provider.name == "anthropic"
    assert repr(provider) == "AnthropicProvider(name='anthropic', url='https://proxy.example/v1/messages')"
    provider.close()
