"""Cluster-wide provider limits shared through Redis: requests/min, tokens/min and cool-downs.

Every worker on every host asks the same Redis keys (Lua on the Redis server clock) before a
call, so the limits hold for the whole fleet. Tokens are reserved from an estimate before the
call and corrected from the reported usage after it. A 429 or 529 with a wait makes every
worker hold off (``cool_down``); each returns with its own random jitter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import redis

from maker_worker import keys
from maker_worker.errors import StoreUnavailableError

COOL_DOWN_JITTER = 0.2
"""Workers leave a cool-down spread over up to 20 % of its length (and at least 0..0.25 s)."""


def _script(client: redis.Redis, name: str) -> Any:
    return client.register_script(resources.files("maker_worker.lua").joinpath(f"{name}.lua").read_text())


class Limiter:
    """Blocks until the shared limits of a provider/model allow one more call."""

    def __init__(
        self,
        client: redis.Redis,
        rpm_limits: Mapping[str, float],
        tpm_limits: Mapping[str, float] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._acquire = _script(client, "acquire_permit")
        self._settle = _script(client, "settle_tokens")
        self._cool = _script(client, "cool_down")
        self._rpm = dict(rpm_limits)
        self._tpm = dict(tpm_limits or {})
        self._sleep = sleep
        self._rand = rand

    @staticmethod
    def _lookup(limits: Mapping[str, float], provider: str, model: str) -> float:
        """``provider:model`` first, then ``provider``; 0 for no limit."""
        return limits.get(f"{provider}:{model}", limits.get(provider, 0.0))

    def _keys(self, provider: str, model: str) -> list[str]:
        return [keys.rate_limit(provider, model, part) for part in ("rpm", "tpm", "cool")]

    def try_acquire(self, provider: str, model: str, tokens: int) -> float:
        """Take a permit if the limits allow: returns 0, else the seconds to wait first."""
        args = [self._lookup(self._rpm, provider, model), self._lookup(self._tpm, provider, model), tokens]
        try:
            wait_ms = int(self._acquire(keys=self._keys(provider, model), args=args))
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"rate limiter unavailable: {exc}") from exc
        return wait_ms / 1000

    def acquire(self, provider: str, model: str, tokens: int = 0) -> float:
        """Wait for a permit (reserving ``tokens``); returns the seconds spent waiting."""
        waited_s = 0.0
        while (wait_s := self.try_acquire(provider, model, tokens)) > 0:
            wait_s += self._rand() * max(0.25, wait_s * COOL_DOWN_JITTER) if wait_s >= 1 else 0.0
            self._sleep(wait_s)
            waited_s += wait_s
        return waited_s

    def settle(self, provider: str, model: str, reserved_tokens: int, used_tokens: int) -> None:
        """Correct the token reservation of a finished call to what it really used."""
        tpm = self._lookup(self._tpm, provider, model)
        if tpm and used_tokens != reserved_tokens:
            key = keys.rate_limit(provider, model, "tpm")
            self._settle(keys=[key], args=[tpm, used_tokens - reserved_tokens])

    def cool_down(self, provider: str, model: str, wait_s: float) -> None:
        """Hold every worker off this provider/model for ``wait_s`` (a server asked us to wait)."""
        if wait_s > 0:
            self._cool(keys=[keys.rate_limit(provider, model, "cool")], args=[round(wait_s * 1000)])
