from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from maker_worker.core.backoff import backoff_delay_s, parse_retry_after, retry_wait_s

NOW_S = 1_700_000_000.0
"""A fixed clock: 2023-11-14T22:13:20Z."""


def _http_date(offset_s: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW_S + offset_s, UTC), usegmt=True)


def _rfc3339(offset_s: float) -> str:
    return datetime.fromtimestamp(NOW_S + offset_s, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After-Ms": "20"}, 0.02),
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0"}, 0.0),
        ({"RETRY-AFTER": "1.5"}, 1.5),
        ({"Retry-After": _http_date(30)}, 30.0),
        ({"Retry-After": _http_date(-30)}, 0.0),
        ({"x-ratelimit-reset-requests": "1s"}, 1.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "1m9.696s"}, 69.696),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-reset-tokens": "1h2m3s"}, 3723.0),
        ({"x-ratelimit-reset-tokens": "7"}, 7.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"X-RateLimit-Reset-Requests": "2s", "x-ratelimit-reset-tokens": "20ms"}, 2.0),
        ({"anthropic-ratelimit-requests-reset": _rfc3339(12)}, 12.0),
        ({"anthropic-ratelimit-tokens-reset": _rfc3339(5)}, 5.0),
        ({"anthropic-ratelimit-input-tokens-reset": _rfc3339(40)}, 40.0),
        ({"Anthropic-RateLimit-Output-Tokens-Reset": _rfc3339(8)}, 8.0),
        (
            {
                "anthropic-ratelimit-requests-reset": _rfc3339(3),
                "anthropic-ratelimit-tokens-reset": _rfc3339(9),
            },
            9.0,
        ),
        ({"anthropic-ratelimit-requests-reset": _rfc3339(-5)}, 0.0),
        ({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:30"}, 10.0),
    ],
)
def test_parse_retry_after_header_forms(headers: dict[str, str], expected_s: float | None) -> None:
    result = parse_retry_after(headers, NOW_S)
    if expected_s is None:
        assert result is None
    else:
        assert result == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({"retry-after-ms": "250", "Retry-After": "9", "x-ratelimit-reset-requests": "6m0s"}, 0.25),
        ({"Retry-After": "9", "x-ratelimit-reset-requests": "6m0s"}, 9.0),
        ({"retry-after-ms": "junk", "Retry-After": "3"}, 3.0),
        ({"Retry-After": "junk", "x-ratelimit-reset-tokens": "4s"}, 4.0),
        ({"x-ratelimit-reset-requests": "junk", "anthropic-ratelimit-tokens-reset": _rfc3339(6)}, 6.0),
    ],
)
def test_parse_retry_after_preference_order(headers: dict[str, str], expected_s: float) -> None:
    assert parse_retry_after(headers, NOW_S) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "-1",
        "nan",
        "inf",
        "1e400",
        "6m0",
        "s",
        "1x",
        "Mon, 99 Foo 2023 99:99:99 GMT",
        "2023-13-45T",
    ],
)
@pytest.mark.parametrize(
    "name",
    ["retry-after-ms", "Retry-After", "x-ratelimit-reset-requests", "anthropic-ratelimit-tokens-reset"],
)
def test_parse_retry_after_ignores_garbage(name: str, value: str) -> None:
    assert parse_retry_after({name: value}, NOW_S) is None


@pytest.mark.parametrize(
    ("attempt", "expected_ceiling_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_backoff_grows_exponentially_up_to_the_cap(attempt: int, expected_ceiling_s: float) -> None:
    delay_s = backoff_delay_s(attempt, base_s=1.0, max_delay_s=30.0, jitter=0.999999)
    assert delay_s == pytest.approx(expected_ceiling_s, rel=1e-5)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.75, 0.999999])
@pytest.mark.parametrize("attempt", [1, 3, 8])
def test_full_jitter_stays_within_zero_and_the_ceiling(attempt: int, jitter: float) -> None:
    ceiling_s = min(10.0, 0.5 * 2 ** (attempt - 1))
    delay_s = backoff_delay_s(attempt, base_s=0.5, max_delay_s=10.0, jitter=jitter)
    assert 0.0 <= delay_s <= ceiling_s
    assert delay_s == pytest.approx(jitter * ceiling_s)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0, "base_s": 1.0, "max_delay_s": 1.0, "jitter": 0.5},
        {"attempt": 1, "base_s": -1.0, "max_delay_s": 1.0, "jitter": 0.5},
        {"attempt": 1, "base_s": 1.0, "max_delay_s": -1.0, "jitter": 0.5},
        {"attempt": 1, "base_s": 1.0, "max_delay_s": 1.0, "jitter": 1.5},
        {"attempt": 1, "base_s": 1.0, "max_delay_s": 1.0, "jitter": -0.1},
    ],
)
def test_backoff_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff_delay_s(int(kwargs["attempt"]), **{k: v for k, v in kwargs.items() if k != "attempt"})


@pytest.mark.parametrize(
    ("server_wait_s", "max_delay_s"), [(2.0, 30.0), (360.0, 30.0), (120.0, 0.5), (0.0, 5.0)]
)
@pytest.mark.parametrize("jitter", [0.0, 0.999])
def test_server_wait_is_never_cut_short_by_the_cap(
    server_wait_s: float, max_delay_s: float, jitter: float
) -> None:
    wait_s = retry_wait_s(5, server_wait_s=server_wait_s, base_s=1.0, max_delay_s=max_delay_s, jitter=jitter)
    assert wait_s >= server_wait_s
    assert wait_s == server_wait_s


def test_retry_wait_without_server_wait_is_the_backoff() -> None:
    wait_s = retry_wait_s(3, server_wait_s=None, base_s=1.0, max_delay_s=30.0, jitter=0.5)
    assert wait_s == backoff_delay_s(3, base_s=1.0, max_delay_s=30.0, jitter=0.5) == 2.0
