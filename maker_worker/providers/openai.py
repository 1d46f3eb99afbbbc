"""Adaptor for any OpenAI-compatible chat-completions server.

Works with OpenAI, vLLM, llama.cpp's server, Ollama's ``/v1`` and the maker simulator: the
``base_url`` includes the ``/v1`` part, like ``OPENAI_BASE_URL``. Transient failures (429,
5xx, timeouts, connection errors) are retried inside :meth:`OpenAIProvider.complete` with
tenacity, honouring the server's requested wait; every httpx and HTTP-status failure is
translated to the ``ProviderError`` tree in :func:`_translated_errors` and :func:`_status_error`.
The API key is only ever placed in the client's default headers and is masked in any server
text quoted in an error.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from maker_worker.core.backoff import parse_retry_after, retry_wait_s
from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import (
    ConfigError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    QuotaExhaustedError,
    RateLimitedError,
)

MAX_RESPONSE_BYTES = 1_000_000
"""Larger response bodies are rejected: a step answer is a few hundred bytes."""

BACKOFF_BASE_S = 1.0
"""First backoff ceiling; later ones double (1 s, 2 s, 4 s, ...) up to ``max_delay_ms``."""

_POOL = httpx.Limits(max_connections=64, max_keepalive_connections=64)
_UNAVAILABLE_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
_QUOTED_CHARS = 300

OnRetry = Callable[[ProviderError, int, float], None]
"""Called before each retry sleep with the error, the failed attempt number (1-based) and the wait."""


class OpenAIProvider:
    """A ``Provider`` speaking the OpenAI chat-completions wire format over one shared client.

    Thread-safe: one keep-alive connection pool serves all threads of a worker process.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        max_delay_ms: int,
        name: str = "openai",
        transport: httpx.BaseTransport | None = None,
        on_retry: OnRetry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = _checked_key(api_key, name)
        self._max_retries = max_retries
        self._max_delay_s = max_delay_ms / 1000.0
        self._on_retry = on_retry
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s), limits=_POOL, transport=transport
        )

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r}, url={_public_url(self._url)!r})"

    def __enter__(self) -> OpenAIProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete(self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int) -> Completion:
        """Return the model's completion of ``prompt``, retrying transient failures.

        Raises:
            ProviderError: a subclass saying what failed, after the retries are used up.
        """
        payload = _request_body(prompt, model=model, temperature=temperature, max_tokens=max_tokens)
        body = self._retrying()(self._post, payload)
        return _completion_from_body(body, prompt, provider=self.name)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait_s,
            retry=retry_if_exception(lambda exc: isinstance(exc, ProviderError) and exc.retryable),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    def _wait_s(self, retry_state: RetryCallState) -> float:
        return retry_wait_s(
            retry_state.attempt_number,
            server_wait_s=_failure(retry_state).retry_after_s,
            base_s=BACKOFF_BASE_S,
            max_delay_s=self._max_delay_s,
            jitter=self._rand(),
        )

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        if self._on_retry is not None and retry_state.next_action is not None:
            self._on_retry(_failure(retry_state), retry_state.attempt_number, retry_state.next_action.sleep)

    def _post(self, payload: dict[str, Any]) -> Any:
        """One HTTP attempt: the decoded JSON body of a 2xx response."""
        with _translated_errors(self.name, self._url):
            with self._client.stream("POST", self._url, json=payload) as response:
                raw = self._scrubbed(_read_bounded(response, provider=self.name))
        if not response.is_success:
            now_s = self._clock()
            raise _status_error(response.status_code, response.headers, raw, self.name, self._url, now_s)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _malformed(self.name, f"body is not JSON: {_quote(raw)}") from exc

    def _scrubbed(self, raw: bytes) -> bytes:
        """``raw`` with the API key masked: error bodies are quoted and servers may echo the key."""
        return raw.replace(self._api_key.encode(), b"***") if self._api_key else raw


def _checked_key(api_key: str | None, provider: str) -> str | None:
    """The key without surrounding whitespace; None when empty.

    Raises:
        ConfigError: the key holds characters no HTTP header can carry (the key is not shown).
    """
    key = (api_key or "").strip()
    if key and not (key.isascii() and key.isprintable() and " " not in key):
        raise ConfigError(
            f"{provider}: the API key contains spaces or non-ASCII characters; check its variable"
        )
    return key or None


def _failure(retry_state: RetryCallState) -> ProviderError:
    """The ProviderError the attempt in ``retry_state`` failed with (only those are retried)."""
    assert retry_state.outcome is not None
    error = retry_state.outcome.exception()
    assert isinstance(error, ProviderError)
    return error


def _request_body(prompt: Prompt, *, model: str, temperature: float, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ],
        "temperature": temperature,
        "max_tokens": max_tokens,
    }


def _read_bounded(response: httpx.Response, *, provider: str) -> bytes:
    """Read the body, refusing more than ``MAX_RESPONSE_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ProviderRequestError(
                f"{provider}: response body larger than {MAX_RESPONSE_BYTES} bytes; is base_url right?",
                provider=provider,
                status=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


# --- error mapping: the one place where httpx and HTTP statuses become ProviderErrors ---------


@contextmanager
def _translated_errors(provider: str, url: str) -> Iterator[None]:
    """Translate httpx transport failures into ``ProviderUnavailableError``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        message = f"{provider}: request to {_public_url(url)} timed out ({type(exc).__name__})"
        raise ProviderUnavailableError(message, provider=provider) from exc
    except httpx.TransportError as exc:
        message = f"{provider}: cannot reach {_public_url(url)} ({type(exc).__name__}: {exc})"
        raise ProviderUnavailableError(message, provider=provider) from exc


def _status_error(
    status: int, headers: Mapping[str, str], raw: bytes, provider: str, url: str, now_s: float
) -> ProviderError:
    """The error for a non-2xx response."""
    if status == 402 or (status == 429 and _QUOTA_CODES & _error_codes(raw)):
        message = f"{provider}: quota or billing limit exhausted (HTTP {status}): {_quote(raw)}"
        return QuotaExhaustedError(message, provider=provider, status=status)
    if status == 429:
        wait_s = parse_retry_after(headers, now_s)
        message = f"{provider}: rate limited (HTTP 429): {_quote(raw)}"
        return RateLimitedError(message, provider=provider, status=status, retry_after_s=wait_s)
    if status in _UNAVAILABLE_STATUSES:
        wait_s = parse_retry_after(_retry_after_only(headers), now_s)
        message = f"{provider}: server unavailable (HTTP {status}): {_quote(raw)}"
        return ProviderUnavailableError(message, provider=provider, status=status, retry_after_s=wait_s)
    if status == 401:
        message = (
            f"{provider}: authentication failed (HTTP 401) at {_public_url(url)}: "
            "check the API key variable (OPENAI_API_KEY for OpenAI)"
        )
        return ProviderRequestError(message, provider=provider, status=status)
    message = f"{provider}: request rejected (HTTP {status}): {_quote(raw)}"
    return ProviderRequestError(message, provider=provider, status=status)


def _error_codes(raw: bytes) -> set[str]:
    """The ``code`` and ``type`` of an OpenAI-style ``{"error": {...}}`` body, if any."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return set()
    if not isinstance(error, dict):
        return set()
    return {value for value in (error.get("code"), error.get("type")) if isinstance(value, str)}


def _retry_after_only(headers: Mapping[str, str]) -> dict[str, str]:
    """Only the explicit retry-after headers (reset headers describe quotas, not outages)."""
    return {
        name: value for name, value in headers.items() if name.lower() in ("retry-after", "retry-after-ms")
    }


def _quote(raw: bytes) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_QUOTED_CHARS] + ("..." if len(text) > _QUOTED_CHARS else "") if text else "(empty body)"


def _public_url(url: str) -> str:
    """``url`` without user info or query (where credentials could hide)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None))


# --- response parsing -----------------------------------------------------------------------


def _completion_from_body(body: Any, prompt: Prompt, *, provider: str) -> Completion:
    """Normalise a chat-completions body; a missing field is a ``ProviderRequestError``."""
    if not isinstance(body, dict):
        raise _malformed(provider, "body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed(provider, "no choices[0]")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise _malformed(provider, "no choices[0].message.content string")
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=text,
        tokens_in=_tokens(usage, "prompt_tokens", prompt.system + prompt.user),
        tokens_out=_tokens(usage, "completion_tokens", text),
        finish_reason=_FINISH_REASONS.get(str(choices[0].get("finish_reason")), FinishReason.OTHER),
    )


def _tokens(usage: dict[str, Any], key: str, text: str) -> int:
    """The server's token count, or an estimate of 4 characters per token when it sends none."""
    count = usage.get(key)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return math.ceil(len(text) / 4)


def _malformed(provider: str, what: str) -> ProviderRequestError:
    message = f"{provider}: malformed chat-completions response: {what}"
    return ProviderRequestError(message, provider=provider, status=200)
