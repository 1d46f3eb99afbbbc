"""Wire-format tests of OpenAIProvider against httpx.MockTransport (no network, no real sleeping)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import (
    ConfigError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    QuotaExhaustedError,
    RateLimitedError,
)
from maker_worker.providers.http import MAX_RESPONSE_BYTES
from maker_worker.providers.openai import OpenAIProvider

API_KEY = "sk-test-SECRET-0123456789abcdef"
BASE_URL = "https://llm.example/v1"
NOW_S = 1_700_000_000.0
PROMPT = Prompt(system="You solve puzzles.", user="Current State: [[1], [], []]")

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Collects the requests sent, the sleeps asked for and the on_retry calls."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps_s: list[float] = []
        self.retries: list[tuple[ProviderError, int, float]] = []

    def provider(self, responses: Iterator[httpx.Response] | Handler, max_retries: int = 3) -> OpenAIProvider:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return responses(request) if callable(responses) else next(responses)

        return OpenAIProvider(
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


def ok_body(content: object = "move = [1, 0, 2]", finish_reason: str = "stop") -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


def ok() -> httpx.Response:
    return httpx.Response(200, json=ok_body())


def complete(provider: OpenAIProvider) -> Completion:
    return provider.complete(PROMPT, model="gpt-4.1-mini", temperature=0.1, max_tokens=750)


def assert_no_key(error: BaseException) -> None:
    for text in (str(error), repr(error), *map(str, error.args)):
        assert API_KEY not in text
    if error.__cause__ is not None:
        assert API_KEY not in str(error.__cause__) and API_KEY not in repr(error.__cause__)


def test_good_response_is_parsed_and_request_is_well_formed() -> None:
    rec = Recorder()
    with rec.provider(iter([ok()])) as provider:
        completion = provider.complete(PROMPT, model="gpt-4.1-mini", temperature=0.1, max_tokens=750)
    assert completion.text == "move = [1, 0, 2]"
    assert (completion.tokens_in, completion.tokens_out) == (42, 7)
    assert completion.finish_reason is FinishReason.STOP
    [request] = rec.requests
    assert str(request.url) == "https://llm.example/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert json.loads(request.content) == {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "system", "content": PROMPT.system}, {"role": "user", "content": PROMPT.user}],
        "temperature": 0.1,
        "max_tokens": 750,
    }
    assert rec.sleeps_s == []


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [("stop", FinishReason.STOP), ("length", FinishReason.LENGTH), ("content_filter", FinishReason.OTHER)],
)
def test_finish_reasons_are_normalised(finish_reason: str, expected: FinishReason) -> None:
    response = httpx.Response(200, json=ok_body(finish_reason=finish_reason))
    assert complete(Recorder().provider(iter([response]))).finish_reason is expected


def test_no_authorization_header_without_a_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok()

    provider = OpenAIProvider(
        base_url="http://127.0.0.1:1/v1/",
        api_key=None,
        timeout_s=1.0,
        max_retries=0,
        max_delay_ms=1,
        transport=httpx.MockTransport(handle),
    )
    complete(provider)
    assert "authorization" not in seen[0].headers
    assert str(seen[0].url) == "http://127.0.0.1:1/v1/chat/completions"


def test_missing_usage_is_estimated_from_text_length() -> None:
    body = ok_body(content="x" * 41)
    del body["usage"]
    completion = complete(Recorder().provider(iter([httpx.Response(200, json=body)])))
    assert completion.tokens_out == 11


def test_429_insufficient_quota_is_not_retried() -> None:
    rec = Recorder()
    body = {
        "error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": None}
    }
    provider = rec.provider(lambda _: httpx.Response(429, json=body, headers={"Retry-After": "1"}))
    with pytest.raises(QuotaExhaustedError) as caught:
        complete(provider)
    assert caught.value.status == 429 and not caught.value.retryable
    assert len(rec.requests) == 1 and rec.sleeps_s == []


def test_429_with_retry_after_is_retried_after_that_wait() -> None:
    rec = Recorder()
    limited = httpx.Response(
        429, json={"error": {"code": "rate_limit_exceeded"}}, headers={"Retry-After": "2"}
    )
    completion = complete(rec.provider(iter([limited, ok()])))
    assert completion.text == "move = [1, 0, 2]"
    assert rec.sleeps_s == [2.0]
    [(error, attempt, wait_s)] = rec.retries
    assert isinstance(error, RateLimitedError) and error.retry_after_s == 2.0
    assert (attempt, wait_s) == (1, 2.0)


@pytest.mark.parametrize(
    ("headers", "expected_wait_s"),
    [
        ({"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "1s"}, 360.0),
        ({"x-ratelimit-reset-requests": "1m9.696s", "x-ratelimit-reset-tokens": "20ms"}, 69.696),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW_S + 30, UTC), usegmt=True)}, 30.0),
        ({"retry-after-ms": "1500"}, 1.5),
    ],
)
def test_429_server_waits_are_honoured_beyond_the_cap(
    headers: dict[str, str], expected_wait_s: float
) -> None:
    rec = Recorder()
    complete(rec.provider(iter([httpx.Response(429, json={}, headers=headers), ok()])))
    assert rec.sleeps_s == [pytest.approx(expected_wait_s)]


def test_429_without_headers_uses_jittered_exponential_backoff() -> None:
    rec = Recorder()
    complete(rec.provider(iter([httpx.Response(429), httpx.Response(429), httpx.Response(429), ok()])))
    assert rec.sleeps_s == [0.5, 1.0, 2.0]
    assert [attempt for _, attempt, _ in rec.retries] == [1, 2, 3]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_5xx_with_html_is_retried_then_gives_up(status: int) -> None:
    rec = Recorder()
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    provider = rec.provider(
        lambda _: httpx.Response(status, text=html, headers={"content-type": "text/html"})
    )
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(provider)
    assert caught.value.status == status
    assert len(rec.requests) == 4 and len(rec.sleeps_s) == 3
    assert "Bad Gateway" in str(caught.value)


def test_503_honours_retry_after() -> None:
    rec = Recorder()
    complete(rec.provider(iter([httpx.Response(503, headers={"Retry-After": "7"}), ok()])))
    assert rec.sleeps_s == [7.0]


def test_401_is_not_retried_and_names_the_key_variable_without_the_key() -> None:
    rec = Recorder()
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}", "code": "invalid_api_key"}}
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(401, json=body)))
    assert len(rec.requests) == 1 and rec.sleeps_s == []
    assert "API key" in str(caught.value) and "OPENAI_API_KEY" in str(caught.value)
    assert_no_key(caught.value)


def test_other_4xx_is_not_retried_and_echoed_key_is_masked() -> None:
    rec = Recorder()
    body = {"error": {"message": f"model not found for key {API_KEY}", "type": "invalid_request_error"}}
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(404, json=body)))
    assert len(rec.requests) == 1 and caught.value.status == 404
    assert "model not found" in str(caught.value)
    assert_no_key(caught.value)


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"choices": [{"message": {"role": "assistant"}}]}, "content"),
        ({"choices": [{"message": {"content": None}}]}, "content"),
        ({"choices": []}, "choices[0]"),
        ({"object": "chat.completion"}, "choices[0]"),
        ({"choices": [{"text": "legacy completion"}]}, "content"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_200_without_content_is_a_request_error(body: object, missing: str) -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(200, json=body)))
    assert missing in str(caught.value)
    assert len(rec.requests) == 1


def test_non_json_200_is_a_request_error() -> None:
    with pytest.raises(ProviderRequestError, match="not JSON"):
        complete(Recorder().provider(lambda _: httpx.Response(200, text="<html>captive portal</html>")))


def test_oversized_body_is_rejected() -> None:
    huge = httpx.Response(200, content=b"x" * (MAX_RESPONSE_BYTES + 1))
    with pytest.raises(ProviderRequestError, match="larger than"):
        complete(Recorder().provider(iter([huge])))


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("timed out"), httpx.ConnectTimeout("timed out"), httpx.ConnectError("refused")],
)
def test_timeouts_and_connection_errors_are_retried_then_unavailable(exc: httpx.TransportError) -> None:
    rec = Recorder()

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(ProviderUnavailableError) as caught:
        complete(rec.provider(fail, max_retries=2))
    assert len(rec.requests) == 3 and len(rec.sleeps_s) == 2
    assert caught.value.status is None
    assert_no_key(caught.value)


def test_timeout_then_success_recovers() -> None:
    rec = Recorder()
    outcomes: list[httpx.Response | None] = [None, ok()]

    def flaky(request: httpx.Request) -> httpx.Response:
        response = outcomes.pop(0)
        if response is None:
            raise httpx.ReadTimeout("timed out", request=request)
        return response

    assert complete(rec.provider(flaky)).text == "move = [1, 0, 2]"
    assert len(rec.sleeps_s) == 1


def test_max_retries_zero_makes_one_attempt() -> None:
    rec = Recorder()
    with pytest.raises(RateLimitedError):
        complete(rec.provider(lambda _: httpx.Response(429), max_retries=0))
    assert len(rec.requests) == 1 and rec.sleeps_s == []


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, json={"error": {"message": API_KEY}}),
        httpx.Response(403, text=f"forbidden {API_KEY}"),
        httpx.Response(429, json={"error": {"type": "insufficient_quota", "message": API_KEY}}),
        httpx.Response(429, text=API_KEY),
        httpx.Response(502, text=API_KEY),
        httpx.Response(200, text=API_KEY),
        httpx.Response(200, json={"echo": API_KEY}),
    ],
)
def test_api_key_absent_from_every_error(response: httpx.Response) -> None:
    rec = Recorder()
    provider = rec.provider(lambda _: response, max_retries=1)
    with pytest.raises(ProviderError) as caught:
        complete(provider)
    assert_no_key(caught.value)
    for error, _, _ in rec.retries:
        assert_no_key(error)
    assert API_KEY not in repr(provider)


@pytest.mark.parametrize("bad_key", ["sk-with space", "sk-\nnewline", "sk-ünicode"])
def test_unusable_api_key_is_a_config_error_that_hides_the_key(bad_key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OpenAIProvider(base_url=BASE_URL, api_key=bad_key, timeout_s=1, max_retries=0, max_delay_ms=1)
    assert bad_key not in str(caught.value)
