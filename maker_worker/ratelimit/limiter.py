"""Requests-per-minute permits shared through Redis (GCRA on the Redis server clock)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import redis

from maker_worker import keys
from maker_worker.errors import StoreError

DEFAULT_BURST_REQUESTS = 1
"""Permits that may be taken back to back before the steady rate applies."""


class RpmLimiter:
    """Blocks until the cluster-wide requests-per-minute budget of a provider/model allows a call."""

    def __init__(
        self,
        client: redis.Redis,
        limits_rpm: Mapping[str, float],
        *,
        burst_requests: int = DEFAULT_BURST_REQUESTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        source = resources.files("maker_worker.lua").joinpath("acquire_rpm.lua").read_text()
        self._acquire = client.register_script(source)
        self._limits_rpm = dict(limits_rpm)
        self._burst_requests = burst_requests
        self._sleep = sleep

    def limit_for(self, provider: str, model: str) -> float | None:
        """The configured limit: ``provider:model`` first, then ``provider``; None for no limit."""
        return self._limits_rpm.get(f"{provider}:{model}", self._limits_rpm.get(provider))

    def try_acquire(self, provider: str, model: str) -> float:
        """Take a permit if one is free: returns 0, else the seconds to wait before asking again."""
        limit_rpm = self.limit_for(provider, model)
        if limit_rpm is None:
            return 0.0
        try:
            wait_ms: Any = self._acquire(
                keys=[keys.rate_limit_rpm(provider, model)], args=[limit_rpm, self._burst_requests]
            )
        except redis.RedisError as exc:
            raise StoreError(f"rate limiter failed: {exc}") from exc
        return int(wait_ms) / 1000

    def acquire(self, provider: str, model: str) -> float:
        """Wait for a permit; returns the seconds spent waiting."""
        waited_s = 0.0
        while (wait_s := self.try_acquire(provider, model)) > 0:
            self._sleep(wait_s)
            waited_s += wait_s
        return waited_s
