"""The shared limiter against a real Redis: exact under races, tokens corrected, cool-downs shared."""

from __future__ import annotations

import math
import multiprocessing
import time

import redis

from maker_worker.ratelimit.limiter import Limiter

RACE_PROCESSES = 6
RACE_SECONDS = 3.0
RACE_RPM = 1200.0


def _race(redis_url: str, start_s: float, grants: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = Limiter(redis.Redis.from_url(redis_url), {"sim": RACE_RPM})
    time.sleep(max(0.0, start_s - time.time()))  # every process starts racing at the same instant
    deadline_s = start_s + RACE_SECONDS
    granted = 0
    while time.time() < deadline_s:
        if limiter.try_acquire("sim", "race", 0) == 0:
            granted += 1
    grants.put(granted)


def test_racing_processes_never_get_more_than_the_limit(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    grants: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    started_s = time.time() + 1.0  # let every process start before the race
    deadline_s = started_s + RACE_SECONDS
    processes = [
        context.Process(target=_race, args=(redis_url, deadline_s, grants)) for _ in range(RACE_PROCESSES)
    ]
    for process in processes:
        process.start()
    counts = [grants.get(timeout=30) for _ in processes]
    for process in processes:
        process.join()
    allowed = math.floor(RACE_SECONDS * RACE_RPM / 60) + 1  # GCRA: one at the start, then one per interval
    total = sum(counts)
    assert total <= allowed, (total, allowed)
    assert total >= 0.8 * RACE_SECONDS * RACE_RPM / 60, counts  # and it does grant at the rate
    assert sum(count > 0 for count in counts) >= 2  # shared between processes


def test_token_reservations_wait_and_are_corrected_by_real_usage(redis_url: str) -> None:
    limiter = Limiter(redis.Redis.from_url(redis_url), {}, {"sim": 6000.0})  # 100 tokens/s
    assert limiter.try_acquire("sim", "tok", 1000) == 0
    wait_s = limiter.try_acquire("sim", "tok", 1000)
    assert 8.5 < wait_s <= 9.0  # 1,000 tokens are 10 s of budget; 1 s of burst is allowed
    limiter.settle("sim", "tok", reserved_tokens=1000, used_tokens=100)
    assert limiter.try_acquire("sim", "tok", 1000) == 0  # the refund made room at once


def test_a_cool_down_holds_off_every_worker(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first, second = Limiter(client, {}), Limiter(client, {})
    first.cool_down("sim", "cool", 2.0)
    wait_s = second.try_acquire("sim", "cool", 0)
    assert 1.5 < wait_s <= 2.0
    first.cool_down("sim", "cool", 0.5)  # a shorter wait never shortens the cool-down
    assert second.try_acquire("sim", "cool", 0) > 1.0
    assert second.try_acquire("sim", "other-model", 0) == 0
