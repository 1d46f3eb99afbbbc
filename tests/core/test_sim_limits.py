"""The simulator's sliding-window limiter and header formatting, on a hand-moved clock."""

from __future__ import annotations

import pytest

from maker_worker.core.backoff import parse_retry_after
from maker_worker.errors import ConfigError
from maker_worker.sim import SimConfig
from maker_worker.sim.formats import go_duration
from maker_worker.sim.limits import Quota, WindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_rpm_refuses_the_request_over_the_limit_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    limiter = WindowLimiter(rpm_limit=3, tpm_limit=None, clock=clock)
    for at_s in (0.0, 1.0, 2.0):
        clock.now_s = at_s
        assert limiter.admit(prompt_tokens=10).exceeded is None
    clock.now_s = 3.0
    refused = limiter.admit(prompt_tokens=10)
    assert refused.exceeded == "requests" and refused.retry_after_s == 57.0
    assert refused.status.requests == Quota(limit=3, remaining=0, reset_s=59.0)
    assert refused.status.tokens is None
    clock.now_s = 60.0
    admitted = limiter.admit(prompt_tokens=10)
    assert admitted.exceeded is None and admitted.retry_after_s == 0.0
    assert admitted.status.requests == Quota(limit=3, remaining=0, reset_s=60.0)  # 1, 2 and 60 remain
    clock.now_s = 61.0
    assert limiter.status().requests == Quota(limit=3, remaining=1, reset_s=59.0)


def test_tpm_counts_prompt_tokens_at_admission_and_completions_when_charged() -> None:
    clock = Clock()
    limiter = WindowLimiter(rpm_limit=None, tpm_limit=100, clock=clock)
    assert limiter.admit(prompt_tokens=60).exceeded is None
    clock.now_s = 10.0
    limiter.charge(30)
    assert limiter.status().tokens == Quota(limit=100, remaining=10, reset_s=60.0)
    assert limiter.admit(prompt_tokens=20).exceeded is None  # admitted while under the limit
    refused = limiter.admit(prompt_tokens=1)
    assert refused.exceeded == "tokens"
    assert refused.retry_after_s == 50.0  # 110 - 60 is under 100 once the t=0 prompt leaves at t=60
    assert refused.status.tokens == Quota(limit=100, remaining=0, reset_s=60.0)


def test_without_limits_everything_is_admitted() -> None:
    limiter = WindowLimiter(rpm_limit=None, tpm_limit=None, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.admit(prompt_tokens=10**6).exceeded is None for _ in range(1000))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.02, "20ms"), (1.2, "1.2s"), (59.5, "59.5s"), (360.0, "6m0s"), (69.696, "1m9.696s")],
)
def test_go_durations_read_back_through_the_client_parser(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_retry_after({"x-ratelimit-reset-requests": text}, now_s=0.0) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 1.5},
        {"slow_rate": -0.1},
        {"slow_ms": -1.0},
        {"rpm_limit": 0.0},
        {"tpm_limit": -5.0},
        {"rpm_limit": float("inf")},
    ],
)
def test_sim_config_rejects_bad_new_fields(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)  # type: ignore[arg-type]
