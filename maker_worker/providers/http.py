"""What every HTTP provider adaptor shares: the client, the retry loop and the error boundary.

:class:`HttpProvider` owns one keep-alive ``httpx.Client`` (pool and timeouts), reads response
bodies up to :data:`MAX_RESPONSE_BYTES`, translates transport failures into
``ProviderUnavailableError`` and retries retryable ``ProviderError``\\ s with tenacity, waiting
what the server asked for (:func:`~maker_worker.core.backoff.parse_retry_after`) or a jittered
exponential backoff (:func:`~maker_worker.core.backoff.retry_wait_s`). Sleep, clock and
randomness are injectable so tests never wait.

An adaptor subclasses it and supplies only what is specific to its service: the URL path and
headers, the request body, the parsing of a success body, and the one function that classifies
its error responses (:meth:`HttpProvider._status_error`, helped by :class:`ErrorResponse`).

The API key only ever sits in the client's default headers; every response body is scrubbed
of it before anything quotes it, and reprs show the public URL only.
"""

from __future__ import annotations

import json
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from maker_worker.core.backoff import parse_retry_after, retry_wait_s
from maker_worker.core.models import Completion, Prompt
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

UNAVAILABLE_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
"""Statuses meaning the server (or a proxy in front of it) failed or is overloaded: retryable."""

_POOL = httpx.Limits(max_connections=64, max_keepalive_connections=64)
_QUOTED_CHARS = 300
_RETRY_AFTER_HEADERS = ("retry-after", "retry-after-ms")

OnRetry = Callable[[ProviderError, int, float], None]
"""Called before each retry sleep with the error, the failed attempt number (1-based) and the wait."""


@dataclass(frozen=True)
class ErrorResponse:
    """A non-2xx response, as an adaptor's error classifier sees it.

    Attributes:
        provider: the adaptor's name, first word of every message.
        status: the HTTP status.
        headers: the response headers.
        body: the response body, with the API key masked.
        url: the request URL without credentials or query.
        request: the JSON body that was sent (for context such as the model name).
        now_s: the current epoch time, for absolute dates in headers.
    """

    provider: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    request: Mapping[str, Any]
    now_s: float

    def excerpt(self) -> str:
        """A short, single-line quote of the body for a message."""
        return quote(self.body)

    def json_body(self) -> Any:
        """The decoded body, or None when it is not JSON (an HTML page from a proxy, say)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def rate_limited(self) -> RateLimitedError:
        """A retryable 429 waiting what any retry-after or reset header asks for."""
        wait_s = parse_retry_after(self.headers, self.now_s)
        message = f"{self.provider}: rate limited (HTTP {self.status}): {self.excerpt()}"
        return RateLimitedError(message, provider=self.provider, status=self.status, retry_after_s=wait_s)

    def unavailable(self) -> ProviderUnavailableError:
        """A retryable outage; only an explicit retry-after is a wait (reset headers describe quotas)."""
        explicit = {
            name: value for name, value in self.headers.items() if name.lower() in _RETRY_AFTER_HEADERS
        }
        wait_s = parse_retry_after(explicit, self.now_s)
        message = f"{self.provider}: server unavailable (HTTP {self.status}): {self.excerpt()}"
        return ProviderUnavailableError(
            message, provider=self.provider, status=self.status, retry_after_s=wait_s
        )

    def quota_exhausted(self) -> QuotaExhaustedError:
        """Billing or quota used up: not retried."""
        message = f"{self.provider}: quota or billing limit exhausted (HTTP {self.status}): {self.excerpt()}"
        return QuotaExhaustedError(message, provider=self.provider, status=self.status)

    def rejected(self, reason: str = "request rejected", detail: str | None = None) -> ProviderRequestError:
        """A non-retryable rejection; ``detail`` replaces the quoted body when given."""
        text = self.excerpt() if detail is None else detail
        message = f"{self.provider}: {reason} (HTTP {self.status}): {text}"
        return ProviderRequestError(message, provider=self.provider, status=self.status)

    def by_status(self) -> ProviderError:
        """The usual reading of the status alone: 429, outage, or rejection."""
        if self.status == 429:
            return self.rate_limited()
        if self.status in UNAVAILABLE_STATUSES:
            return self.unavailable()
        return self.rejected()


class HttpProvider(ABC):
    """Base of the adaptors that POST one JSON request per completion over a shared httpx client.

    Thread-safe: one keep-alive connection pool serves all threads of a worker process.

    Args:
        base_url: the service's base URL; :attr:`path` is appended.
        api_key: the secret, or None for servers without authentication.
        timeout_s: connect, read, write and pool timeout of each attempt.
        max_retries: retries after the first attempt (0: one attempt only).
        max_delay_ms: cap of the computed backoff (a server's requested wait is never shortened).
        name: the provider name in messages and events; defaults to :attr:`default_name`.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        on_retry: see :data:`OnRetry`.
        sleep: waits the given seconds between attempts.
        clock: epoch seconds, for HTTP dates in retry headers.
        rand: numbers in [0, 1) for the backoff jitter.

    Raises:
        ConfigError: the API key holds characters no HTTP header can carry.
    """

    default_name: ClassVar[str]
    path: ClassVar[str]
    """Appended to ``base_url``, e.g. ``/chat/completions``."""
    api: ClassVar[str]
    """The API's name in messages about malformed bodies, e.g. ``chat-completions``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float,
        max_retries: int,
        max_delay_ms: int,
        name: str | None = None,
        transport: httpx.BaseTransport | None = None,
        on_retry: OnRetry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = name or self.default_name
        self._url = base_url.rstrip("/") + self.path
        self._api_key = checked_key(api_key, self.name)
        self._max_retries = max_retries
        self._max_delay_s = max_delay_ms / 1000.0
        self._on_retry = on_retry
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._client = httpx.Client(
            headers=self._headers(self._api_key),
            timeout=httpx.Timeout(timeout_s),
            limits=_POOL,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={public_url(self._url)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete(self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int) -> Completion:
        """Return the model's completion of ``prompt``, retrying transient failures.

        Raises:
            ProviderError: a subclass saying what failed, after the retries are used up.
        """
        payload = self._request_body(prompt, model=model, temperature=temperature, max_tokens=max_tokens)
        body = self._retrying()(self._post, payload)
        return self._completion(body, prompt)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # --- what each adaptor supplies -----------------------------------------------------------

    def _headers(self, api_key: str | None) -> dict[str, str]:
        """The default headers of every request: a bearer token, none without an API key (local
        servers, the simulator)."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @abstractmethod
    def _request_body(
        self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int
    ) -> dict[str, Any]:
        """The JSON body asking for one completion."""

    @abstractmethod
    def _completion(self, body: Any, prompt: Prompt) -> Completion:
        """Normalise a decoded 2xx body; raise :meth:`_malformed` errors for missing fields."""

    @abstractmethod
    def _status_error(self, response: ErrorResponse) -> ProviderError:
        """The one place mapping this service's non-2xx responses to the ``ProviderError`` tree."""

    # --- shared machinery -----------------------------------------------------------------------

    def _malformed(self, what: str) -> ProviderRequestError:
        message = f"{self.name}: malformed {self.api} response: {what}"
        return ProviderRequestError(message, provider=self.name, status=200)

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
            error = ErrorResponse(
                self.name,
                response.status_code,
                response.headers,
                raw,
                public_url(self._url),
                payload,
                self._clock(),
            )
            raise self._status_error(error)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._malformed(f"body is not JSON: {quote(raw)}") from exc

    def _scrubbed(self, raw: bytes) -> bytes:
        """``raw`` with the API key masked: error bodies are quoted and servers may echo the key."""
        return raw.replace(self._api_key.encode(), b"***") if self._api_key else raw


def checked_key(api_key: str | None, provider: str) -> str | None:
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


def token_count(usage: Mapping[str, Any], key: str, text: str) -> int:
    """The server's token count ``usage[key]``, or an estimate of 4 characters per token."""
    count = usage.get(key)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return math.ceil(len(text) / 4)


def quote(raw: bytes) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_QUOTED_CHARS] + ("..." if len(text) > _QUOTED_CHARS else "") if text else "(empty body)"


def public_url(url: str) -> str:
    """``url`` without user info or query (where credentials could hide)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None))


def _failure(retry_state: RetryCallState) -> ProviderError:
    """The ProviderError the attempt in ``retry_state`` failed with (only those are retried)."""
    assert retry_state.outcome is not None
    error = retry_state.outcome.exception()
    assert isinstance(error, ProviderError)
    return error


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


@contextmanager
def _translated_errors(provider: str, url: str) -> Iterator[None]:
    """Translate httpx transport failures into ``ProviderUnavailableError``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        message = f"{provider}: request to {public_url(url)} timed out ({type(exc).__name__})"
        raise ProviderUnavailableError(message, provider=provider) from exc
    except httpx.TransportError as exc:
        message = f"{provider}: cannot reach {public_url(url)} ({type(exc).__name__}: {exc})"
        raise ProviderUnavailableError(message, provider=provider) from exc


def chat_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The prompt as the system and user messages of a chat API (OpenAI and Ollama formats)."""
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]
