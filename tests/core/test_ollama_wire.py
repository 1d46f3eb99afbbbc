"""Wire-format tests of OllamaProvider against httpx.MockTransport (no network, no real sleeping)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from maker_worker.config import Settings
from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import (
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitedError,
)
from maker_worker.providers import build_provider
from maker_worker.providers.ollama import OllamaProvider

BASE_URL = "http://gpu-box:11434"
PROXY_KEY = "proxy-SECRET-0123456789abcdef"
PROMPT = Prompt(system="You solve puzzles.", user="Current State: [[1], [], []]")

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Collects the requests sent and the sleeps asked for."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps_s: list[float] = []

    def provider(
        self, responses: Iterator[httpx.Response] | Handler, max_retries: int = 3, api_key: str | None = None
    ) -> OllamaProvider:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return responses(request) if callable(responses) else next(responses)

        return OllamaProvider(
            base_url=BASE_URL + "/",
            api_key=api_key,
            timeout_s=5.0,
            max_retries=max_retries,
            max_delay_ms=30_000,
            transport=httpx.MockTransport(handle),
            sleep=self.sleeps_s.append,
            clock=lambda: 1_700_000_000.0,
            rand=lambda: 0.5,
        )


def ok_body(content: object = "move = [1, 0, 2]", done_reason: str = "stop") -> dict[str, object]:
    return {
        "model": "llama3.1",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done_reason": done_reason,
        "done": True,
        "total_duration": 5_000_000,
        "prompt_eval_count": 42,
        "eval_count": 7,
    }


def ok() -> httpx.Response:
    return httpx.Response(200, json=ok_body())


def complete(provider: OllamaProvider) -> Completion:
    return provider.complete(PROMPT, model="llama3.1", temperature=0.1, max_tokens=750)


def test_good_response_is_parsed_and_request_is_well_formed() -> None:
    rec = Recorder()
    with rec.provider(iter([ok()])) as provider:
        assert complete(provider) == Completion("move = [1, 0, 2]", 42, 7, FinishReason.STOP)
    [request] = rec.requests
    assert str(request.url) == "http://gpu-box:11434/api/chat"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "model": "llama3.1",
        "messages": [{"role": "system", "content": PROMPT.system}, {"role": "user", "content": PROMPT.user}],
        "stream": False,
        "options": {"temperature": 0.1, "num_predict": 750},
    }


@pytest.mark.parametrize(
    ("done_reason", "expected"),
    [("stop", FinishReason.STOP), ("length", FinishReason.LENGTH), ("unload", FinishReason.OTHER)],
)
def test_done_reasons_are_normalised(done_reason: str, expected: FinishReason) -> None:
    response = httpx.Response(200, json=ok_body(done_reason=done_reason))
    assert complete(Recorder().provider(iter([response]))).finish_reason is expected


def test_counts_missing_for_a_cached_prompt_are_estimated() -> None:
    body = ok_body(content="x" * 41)
    del body["prompt_eval_count"], body["eval_count"]
    completion = complete(Recorder().provider(iter([httpx.Response(200, json=body)])))
    assert completion.tokens_out == 11
    assert completion.tokens_in == -(-len(PROMPT.system + PROMPT.user) // 4)


def test_model_never_pulled_says_to_run_ollama_pull_and_is_not_retried() -> None:
    rec = Recorder()
    body = {"error": "model 'llama3.1' not found, try pulling it first"}
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(404, json=body)))
    assert "ollama pull llama3.1" in str(caught.value)
    assert caught.value.status == 404 and not caught.value.retryable
    assert len(rec.requests) == 1 and rec.sleeps_s == []


def test_404_of_a_wrong_url_does_not_blame_the_model() -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(404, text="404 page not found")))
    assert "ollama pull" not in str(caught.value) and "404 page not found" in str(caught.value)
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"error": "llama runner process has terminated: signal: killed"}),
        httpx.Response(
            503, json={"error": "server busy, please try again.  maximum pending requests exceeded"}
        ),
        httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ],
)
def test_5xx_are_retried_then_unavailable(response: httpx.Response) -> None:
    rec = Recorder()
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(rec.provider(lambda _: response))
    assert caught.value.status == response.status_code
    assert len(rec.requests) == 4 and rec.sleeps_s == [0.5, 1.0, 2.0]


def test_connection_refused_is_retried_then_unavailable() -> None:
    rec = Recorder()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(ProviderUnavailableError, match="cannot reach http://gpu-box:11434/api/chat"):
        complete(rec.provider(refuse, max_retries=1))
    assert len(rec.requests) == 2


def test_429_is_retried_after_retry_after() -> None:
    rec = Recorder()
    limited = httpx.Response(429, json={"error": "too many requests"}, headers={"Retry-After": "4"})
    assert complete(rec.provider(iter([limited, ok()]))).tokens_out == 7
    assert rec.sleeps_s == [4.0]


def test_429_with_no_retries_left_is_a_rate_limited_error() -> None:
    with pytest.raises(RateLimitedError) as caught:
        complete(
            Recorder().provider(lambda _: httpx.Response(429, headers={"Retry-After": "4"}), max_retries=0)
        )
    assert caught.value.retry_after_s == 4.0


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"model": "llama3.1", "done": True}, "message.content"),
        ({"message": {"role": "assistant"}}, "message.content"),
        ({"message": "move = [1, 0, 2]"}, "message.content"),
        ("move = [1, 0, 2]", "JSON object"),
    ],
)
def test_200_without_content_is_a_request_error(body: object, missing: str) -> None:
    rec = Recorder()
    with pytest.raises(ProviderRequestError) as caught:
        complete(rec.provider(lambda _: httpx.Response(200, json=body)))
    assert missing in str(caught.value) and "Ollama" in str(caught.value)
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, json={"error": f"bad token {PROXY_KEY}"}),
        httpx.Response(404, json={"error": f"model '{PROXY_KEY}' not found"}),
        httpx.Response(503, text=PROXY_KEY),
        httpx.Response(200, json={"echo": PROXY_KEY}),
    ],
)
def test_a_proxy_token_is_sent_as_bearer_and_never_shown(response: httpx.Response) -> None:
    rec = Recorder()
    provider = rec.provider(lambda _: response, max_retries=1, api_key=PROXY_KEY)
    with pytest.raises(ProviderError) as caught:
        complete(provider)
    assert rec.requests[0].headers["authorization"] == f"Bearer {PROXY_KEY}"
    assert PROXY_KEY not in str(caught.value) and PROXY_KEY not in repr(caught.value)
    assert PROXY_KEY not in repr(provider)


def test_build_provider_uses_the_ollama_url_without_a_key() -> None:
    provider = build_provider("ollama", Settings(ollama_url="http://gpu-box:11434"))
    assert isinstance(provider, OllamaProvider) and provider.name == "ollama"
    assert repr(provider) == "OllamaProvider(name='ollama', url='http://gpu-box:11434/api/chat')"
    provider.close()
