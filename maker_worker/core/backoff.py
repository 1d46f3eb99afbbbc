"""Retry timing: exponential backoff with full jitter, and the waits servers ask for.

Pure functions: time and randomness are arguments, nothing here sleeps or reads a clock.
A server's requested wait always wins over the computed backoff and is never shortened by
the backoff cap (retrying early only earns another 429).

Header forms understood by :func:`parse_retry_after`, in order of preference:

1. ``retry-after-ms``: milliseconds (OpenAI, Azure).
2. ``Retry-After``: seconds, or an HTTP date (RFC 9110).
3. Reset headers, the largest of those present:
   OpenAI ``x-ratelimit-reset-requests`` / ``x-ratelimit-reset-tokens`` as durations such as
   ``1s``, ``6m0s``, ``1m9.696s``, ``20ms``; Anthropic ``anthropic-ratelimit-requests-reset``,
   ``-tokens-reset``, ``-input-tokens-reset``, ``-output-tokens-reset`` as RFC 3339 timestamps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_MAX_EXPONENT = 60
"""Beyond 2**60 the cap has long taken over; stops float overflow for huge attempt numbers."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

_OPENAI_RESETS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_ANTHROPIC_RESETS = (
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)


def backoff_delay_s(attempt: int, *, base_s: float, max_delay_s: float, jitter: float) -> float:
    """Exponential backoff with full jitter.

    Args:
        attempt: 1 for the wait after the first failure, 2 after the second, and so on.
        base_s: the ceiling of the first wait.
        max_delay_s: the cap on the ceiling.
        jitter: a random number in [0, 1) scaling the ceiling (full jitter).

    Returns:
        ``jitter * min(max_delay_s, base_s * 2 ** (attempt - 1))``.

    Raises:
        ValueError: ``attempt`` below 1, negative times, or ``jitter`` outside [0, 1].
    """
    if attempt < 1 or base_s < 0 or max_delay_s < 0 or not 0.0 <= jitter <= 1.0:
        raise ValueError(f"bad backoff arguments: {attempt=}, {base_s=}, {max_delay_s=}, {jitter=}")
    ceiling_s = min(max_delay_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return jitter * ceiling_s


def retry_wait_s(
    attempt: int, *, server_wait_s: float | None, base_s: float, max_delay_s: float, jitter: float
) -> float:
    """How long to wait before retry number ``attempt``.

    Args:
        attempt: 1-based number of the failed attempt.
        server_wait_s: the wait the server asked for (see :func:`parse_retry_after`), or None.
        base_s: backoff base, see :func:`backoff_delay_s`.
        max_delay_s: backoff cap; it never shortens a server's requested wait.
        jitter: a random number in [0, 1).

    Returns:
        The server's wait when given (at least 0), else the jittered backoff.
    """
    if server_wait_s is not None:
        return max(server_wait_s, 0.0)
    return backoff_delay_s(attempt, base_s=base_s, max_delay_s=max_delay_s, jitter=jitter)


def parse_retry_after(headers: Mapping[str, str], now_s: float) -> float | None:
    """The wait in seconds a response's headers ask for, or None when they ask for none.

    Call it for 429 responses: OpenAI sends its reset headers on every response, where they
    describe the quota window rather than a requested wait. Garbage values are ignored.

    Args:
        headers: response headers; names are matched case-insensitively.
        now_s: the current time in epoch seconds, for absolute dates.

    Returns:
        Seconds to wait (0 for a date already past), or None.
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    wait_ms = _parse_seconds(lowered.get("retry-after-ms"))
    if wait_ms is not None:
        return wait_ms / 1000.0
    retry_after = _parse_retry_after_value(lowered.get("retry-after"), now_s)
    if retry_after is not None:
        return retry_after
    resets = [_parse_duration(lowered.get(name)) for name in _OPENAI_RESETS]
    resets += [_parse_timestamp_wait(lowered.get(name), now_s) for name in _ANTHROPIC_RESETS]
    present = [wait_s for wait_s in resets if wait_s is not None]
    return max(present) if present else None


def _finite_non_negative(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def _parse_seconds(value: str | None) -> float | None:
    """A plain non-negative number, e.g. ``2`` or ``1.5``."""
    if value is None:
        return None
    try:
        return _finite_non_negative(float(value))
    except ValueError:
        return None


def _parse_retry_after_value(value: str | None, now_s: float) -> float | None:
    """``Retry-After`` as delta-seconds or as an HTTP date."""
    seconds = _parse_seconds(value)
    if seconds is not None or value is None:
        return seconds
    return _wait_until(value, now_s, parsedate_to_datetime)


def _parse_duration(value: str | None) -> float | None:
    """A Go-style duration such as ``6m0s`` or ``20ms``; a bare number means seconds."""
    if value is None:
        return None
    if not _DURATION.fullmatch(value):
        return _parse_seconds(value)
    total_s = sum(float(number) * _UNIT_S[unit] for number, unit in _DURATION_PART.findall(value))
    return _finite_non_negative(total_s)


def _parse_timestamp_wait(value: str | None, now_s: float) -> float | None:
    """An RFC 3339 timestamp, as seconds from ``now_s`` (0 when already past)."""
    if value is None:
        return None
    return _wait_until(value, now_s, datetime.fromisoformat)


def _wait_until(value: str, now_s: float, parse: Callable[[str], datetime]) -> float | None:
    try:
        moment = parse(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _finite_non_negative(max(moment.timestamp() - now_s, 0.0))
