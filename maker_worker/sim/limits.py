"""The simulator's own rate limits: requests and tokens per minute over a sliding 60 s window.

A request is admitted while fewer than ``rpm_limit`` requests and fewer than ``tpm_limit``
tokens were counted in the last :data:`WINDOW_S` seconds. An admitted request counts once, with
its prompt tokens; its completion tokens are counted when generated (:meth:`WindowLimiter.charge`).
Refused requests count nothing. The clock is an argument, so tests move time by hand.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Quota:
    """One limit at one moment, as rate-limit headers report it.

    Attributes:
        limit: the configured limit per window.
        remaining: what is left now (never negative).
        reset_s: seconds until the window is empty again (fully replenished).
    """

    limit: float
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class LimitStatus:
    """Both limits at one moment; a limit that is not configured is None."""

    requests: Quota | None
    tokens: Quota | None


@dataclass(frozen=True)
class Verdict:
    """The answer to one request's admission.

    Attributes:
        exceeded: None when admitted, else ``requests`` or ``tokens`` (the limit that refused).
        retry_after_s: seconds until the refusing limit has room again (0 when admitted).
        status: the limits after the decision, for the response headers.
    """

    exceeded: str | None
    retry_after_s: float
    status: LimitStatus


class _Window:
    """Weighted events of the last ``WINDOW_S`` seconds (not thread-safe; the limiter locks)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def expire(self, now_s: float) -> None:
        while self._events and now_s - self._events[0][0] >= WINDOW_S:
            self._total -= self._events.popleft()[1]

    def has_room(self) -> bool:
        return self._total < self.limit

    def add(self, now_s: float, weight: int) -> None:
        self._events.append((now_s, weight))
        self._total += weight

    def wait_for_room_s(self, now_s: float) -> float:
        """Seconds until enough of the oldest events expire to bring the total under the limit."""
        remaining = self._total
        for at_s, weight in self._events:
            remaining -= weight
            if remaining < self.limit:
                return max(at_s + WINDOW_S - now_s, 0.0)
        return 0.0

    def quota(self, now_s: float) -> Quota:
        reset_s = self._events[-1][0] + WINDOW_S - now_s if self._events else 0.0
        return Quota(self.limit, max(math.floor(self.limit - self._total), 0), max(reset_s, 0.0))


class WindowLimiter:
    """Sliding-window RPM and TPM limits, shared by the server's request threads.

    Args:
        rpm_limit: requests per window, or None for no request limit.
        tpm_limit: tokens per window, or None for no token limit.
        clock: monotonic seconds.
    """

    def __init__(self, rpm_limit: float | None, tpm_limit: float | None, clock: Callable[[], float]) -> None:
        self._requests = _Window(rpm_limit) if rpm_limit is not None else None
        self._tokens = _Window(tpm_limit) if tpm_limit is not None else None
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured."""
        return self._requests is not None or self._tokens is not None

    def admit(self, prompt_tokens: int) -> Verdict:
        """Admit a request of ``prompt_tokens`` or refuse it, counting it only when admitted."""
        with self._lock:
            now_s = self._expired()
            for name, window in (("requests", self._requests), ("tokens", self._tokens)):
                if window is not None and not window.has_room():
                    return Verdict(name, window.wait_for_room_s(now_s), self._status(now_s))
            if self._requests is not None:
                self._requests.add(now_s, 1)
            if self._tokens is not None:
                self._tokens.add(now_s, prompt_tokens)
            return Verdict(None, 0.0, self._status(now_s))

    def charge(self, tokens: int) -> None:
        """Count ``tokens`` more (a generated completion) against the token limit."""
        with self._lock:
            now_s = self._expired()
            if self._tokens is not None:
                self._tokens.add(now_s, tokens)

    def status(self) -> LimitStatus:
        """The limits now."""
        with self._lock:
            return self._status(self._expired())

    def _expired(self) -> float:
        now_s = self._clock()
        for window in (self._requests, self._tokens):
            if window is not None:
                window.expire(now_s)
        return now_s

    def _status(self, now_s: float) -> LimitStatus:
        return LimitStatus(
            requests=self._requests.quota(now_s) if self._requests is not None else None,
            tokens=self._tokens.quota(now_s) if self._tokens is not None else None,
        )
