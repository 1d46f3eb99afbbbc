#!/usr/bin/env python3
"""Memory of a long job: coordinator RSS and Redis key count at step 1,000 and at the end.

Drives a 14-disk Hanoi job (16,383 steps) through real Celery workers, Redis and the simulator
(p = 1, zero latency, k = 3). The coordinator must hold O(1) memory in the steps done, and the
number of Redis keys must not grow with them (decided steps leave only their ledger entry).
The baseline is the same run's figures at step 1,000. The last line is a JSON object with
``rss_mb_at_1000``, ``rss_mb_at_end``, ``redis_keys_at_1000``, ``redis_keys_at_end`` and ratios.

Usage: .venv/bin/python scripts/bench_memory.py [--disks 14] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from maker_worker.celery_app import CeleryDispatcher, create_app
from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator
from maker_worker.domains import get_domain
from maker_worker.embedded import Embedded
from maker_worker.events import EventLog
from maker_worker.runner import make_spec, submit
from maker_worker.store import RedisStore

MARK_STEP = 1000


def rss_mb() -> float:
    """Current resident set size of this process (not the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=14)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Embedded(Path(tmp)) as embedded:
        redis_url = embedded.start_redis()
        sim_url = embedded.start_simulator(p=1.0, red_flag_rate=0.0, latency_ms=0.0, seed=0)
        embedded.start_workers(args.workers, args.threads)
        settings = Settings(redis_url=redis_url, sim_url=sim_url, llm_provider="sim", data_dir=Path(tmp))
        store = RedisStore.from_url(redis_url)
        domain = get_domain("hanoi", disks=args.disks)
        job_id = submit(store, domain, make_spec(settings, domain, 3))

        def on_step(steps_done: int, _totals: Counter[str]) -> None:
            if steps_done == MARK_STEP:
                marks["rss_mb_at_1000"] = rss_mb()
                marks["redis_keys_at_1000"] = store.client.dbsize()

        events = EventLog(Path(tmp) / "events.jsonl")
        coordinator = Coordinator(store, CeleryDispatcher(create_app(settings, redis_url)), events)
        started_s = time.perf_counter()
        job = coordinator.run(job_id, on_step)
        wall_s = time.perf_counter() - started_s
        events.close()
        marks["rss_mb_at_end"] = rss_mb()
        marks["redis_keys_at_end"] = store.client.dbsize()
        redis_memory_mb = store.client.info("memory")["used_memory"] / 2**20
    print(f"{domain.total_steps} steps ({job.status.value}) in {wall_s:.1f} s")
    rss_1000, rss_end = marks["rss_mb_at_1000"], marks["rss_mb_at_end"]
    print(f"coordinator RSS: {rss_1000:.1f} MB at step 1,000, {rss_end:.1f} MB at the end")
    keys_1000, keys_end = marks["redis_keys_at_1000"], marks["redis_keys_at_end"]
    print(f"Redis keys: {keys_1000:.0f} at step 1,000, {keys_end:.0f} at the end")
    figures = {
        "steps": domain.total_steps,
        "wall_s": round(wall_s, 1),
        "rss_mb_at_1000": round(marks["rss_mb_at_1000"], 1),
        "rss_mb_at_end": round(marks["rss_mb_at_end"], 1),
        "rss_end_over_1000": round(marks["rss_mb_at_end"] / marks["rss_mb_at_1000"], 3),
        "redis_keys_at_1000": int(marks["redis_keys_at_1000"]),
        "redis_keys_at_end": int(marks["redis_keys_at_end"]),
        "redis_used_memory_mb_at_end": round(redis_memory_mb, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
