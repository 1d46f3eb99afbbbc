#!/usr/bin/env python3
"""Cluster-wide rate limiting: 4 worker processes x 16 threads against a simulator enforcing 600 RPM.

Two cases in one run, each with a fresh simulator (its own 600 requests/min sliding window):

matched: the shared limiter set to 600 RPM -> no 429s, throughput near 600 RPM;
overset: the limiter set to 1,200 RPM -> the simulator answers 429 with Retry-After, the
         workers share a cool-down, and the job still finishes with zero errors.

The last line is a JSON object with ``matched_utilisation`` (achieved RPM / 600),
``matched_429s``, ``overset_429s`` and ``overset_errors_vs_oracle``.

Usage: .venv/bin/python scripts/bench_ratelimit.py [--workers 4] [--threads 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.embedded import Embedded, free_port, stop_process, wait_until
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

SIM_RPM = 600
CASES = {"matched": (600, 7), "overset": (1200, 8)}
"""case -> (limiter RPM, Hanoi disks)."""


def start_simulator(embedded: Embedded, port: int, case: str) -> Any:
    args = [sys.executable, "-m", "maker_worker", "sim-server", "--port", str(port), "--p", "0.99"]
    process = embedded.spawn(f"simulator-{case}", [*args, "--rpm-limit", str(SIM_RPM)])
    wait_until(lambda: _answers(port), "the simulator", process, 20)
    return process


def _answers(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run_case(settings: Settings, redis_url: str, case: str, disks: int) -> dict[str, Any]:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=disks)
    spec = make_spec(settings.model_copy(update={"model": case}), domain, 3)
    job_id = submit(store, domain, spec)
    job, events_path = drive(settings, redis_url, job_id)
    summary = finish(store, job, events_path)
    events = [json.loads(line) for line in Path(events_path).read_text().splitlines()]
    rate_limited = sum(event["event"] == "RateLimited" for event in events)
    calls = summary.samples + summary.api_errors
    rpm = summary.samples / summary.wall_s * 60
    print(
        f"{case}: limiter {CASES[case][0]} RPM, {summary.steps} steps {summary.status.value}, "
        f"{summary.samples} samples in {summary.wall_s:.1f} s = {rpm:.0f} RPM, {rate_limited} x 429, "
        f"{calls} calls, errors vs oracle {summary.errors_vs_oracle}"
    )
    return {
        "rpm": rpm,
        "429s": rate_limited,
        "errors_vs_oracle": summary.errors_vs_oracle,
        "wall_s": summary.wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    limits = {f"sim:{case}": rpm for case, (rpm, _) in CASES.items()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp, Embedded(Path(tmp)) as embedded:
        redis_url = embedded.start_redis()
        embedded.env |= {
            "MAKER_SIM_URL": f"http://127.0.0.1:{port}/v1",
            "MAKER_RPM_LIMITS": json.dumps(limits),
        }
        embedded.start_workers(args.workers, args.threads)
        settings = Settings(redis_url=redis_url, llm_provider="sim", data_dir=Path(tmp))
        for case, (_, disks) in CASES.items():
            simulator = start_simulator(embedded, port, case)
            results[case] = run_case(settings, redis_url, case, disks)
            stop_process(simulator)
    figures = {
        "sim_rpm_limit": SIM_RPM,
        "matched_rpm": round(results["matched"]["rpm"], 1),
        "matched_utilisation": round(results["matched"]["rpm"] / SIM_RPM, 3),
        "matched_429s": results["matched"]["429s"],
        "overset_rpm": round(results["overset"]["rpm"], 1),
        "overset_429s": results["overset"]["429s"],
        "overset_errors_vs_oracle": results["overset"]["errors_vs_oracle"],
        "overset_wall_s": results["overset"]["wall_s"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
