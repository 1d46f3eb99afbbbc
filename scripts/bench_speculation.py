#!/usr/bin/env python3
"""Speculative pipelining in the latency-bound regime: wall time per step and samples per step.

One run, one embedded Redis, one simulator whose calls take ``--latency-ms``, and a share
``--slow-rate`` of them ``--slow-ms`` longer (a tail, as real LLM APIs have), real Celery workers.
The same Hanoi job is driven alternately without speculation (the baseline) and with it,
``--rounds`` times each, so drift on this noisy machine hits both alike.

Without speculation a step lasts until its slowest needed sample is back; with it, the next
step starts from the leader as soon as one answer is in, and is re-asked if another answer wins
(the discarded answers are the extra cost).

The last line is a JSON object with ``baseline_ms_per_step``, ``speculative_ms_per_step``,
``speedup`` and the samples per step of both.

Usage: .venv/bin/python scripts/bench_speculation.py [--disks 7] [--p 0.95] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from maker_worker.celery_app import CeleryDispatcher, create_app
from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator
from maker_worker.domains import get_domain
from maker_worker.embedded import Embedded, free_port
from maker_worker.events import EventLog
from maker_worker.runner import finish, make_spec, submit
from maker_worker.store import RedisStore

K = 3


def start_simulator(embedded: Embedded, args: argparse.Namespace) -> str:
    port = free_port()
    command = [sys.executable, "-m", "maker_worker", "sim-server", "--port", str(port), "--p", str(args.p)]
    command += ["--red-flag-rate", str(args.red_flag_rate), "--latency-ms", str(args.latency_ms)]
    command += ["--slow-rate", str(args.slow_rate), "--slow-ms", str(args.slow_ms), "--seed", "0"]
    embedded.spawn("simulator", command)
    url = f"http://127.0.0.1:{port}/v1"
    embedded.env["MAKER_SIM_URL"] = url
    return url


def run_job(
    settings: Settings, redis_url: str, disks: int, speculate: bool, events_dir: Path
) -> dict[str, float]:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=disks)
    job_id = submit(store, domain, make_spec(settings, domain, K))
    log = EventLog(events_dir / f"{job_id}.jsonl")
    app = create_app(settings, redis_url)
    started_s = time.perf_counter()
    job = Coordinator(store, CeleryDispatcher(app), log, speculate=speculate).run(job_id)
    elapsed_s = time.perf_counter() - started_s
    log.close()
    app.close()
    summary = finish(store, job)
    if summary.status.value != "succeeded":
        raise SystemExit(f"job {job_id} ended {summary.status.value}: {summary.reason}")
    return {
        "ms_per_step": elapsed_s * 1000 / domain.total_steps,
        "samples_per_step": summary.samples / domain.total_steps,
        "errors_vs_oracle": float(summary.errors_vs_oracle or 0),
    }


def mean(runs: list[dict[str, float]], key: str) -> float:
    return sum(run[key] for run in runs) / len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=7)
    parser.add_argument("--p", type=float, default=0.95)
    parser.add_argument("--red-flag-rate", type=float, default=0.05)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--slow-rate", type=float, default=0.3)
    parser.add_argument("--slow-ms", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp, Embedded(Path(tmp)) as embedded:
        redis_url = embedded.start_redis()
        sim_url = start_simulator(embedded, args)
        settings = Settings(redis_url=redis_url, sim_url=sim_url, llm_provider="sim", data_dir=Path(tmp))
        embedded.start_workers(args.workers, args.threads)
        time.sleep(3)  # workers and simulator up (the first job would wait for them anyway)
        for _ in range(args.rounds):
            for speculate in (False, True):
                runs[speculate].append(run_job(settings, redis_url, args.disks, speculate, Path(tmp)))
    base, spec = runs[False], runs[True]
    base_ms, spec_ms = mean(base, "ms_per_step"), mean(spec, "ms_per_step")
    base_samples, spec_samples = mean(base, "samples_per_step"), mean(spec, "samples_per_step")
    print(
        f"{2**args.disks - 1} steps, k={K}, p={args.p}, latency {args.latency_ms:.0f} ms "
        f"(+{args.slow_ms:.0f} ms for {args.slow_rate:.0%}), "
        f"{args.workers} workers x {args.threads} threads, {args.rounds} runs each"
    )
    print(f"without speculation  {base_ms:7.2f} ms/step  {base_samples:5.2f} samples/step")
    print(f"with speculation     {spec_ms:7.2f} ms/step  {spec_samples:5.2f} samples/step")
    print(f"speedup {base_ms / spec_ms:.2f}x for {spec_samples / base_samples - 1:+.1%} samples")
    figures = {
        "steps": 2**args.disks - 1,
        "k": K,
        "p": args.p,
        "latency_ms": args.latency_ms,
        "slow_rate": args.slow_rate,
        "slow_ms": args.slow_ms,
        "baseline_ms_per_step": round(base_ms, 3),
        "speculative_ms_per_step": round(spec_ms, 3),
        "speedup": round(base_ms / spec_ms, 3),
        "baseline_samples_per_step": round(base_samples, 3),
        "speculative_samples_per_step": round(spec_samples, 3),
        "extra_samples_ratio": round(spec_samples / base_samples - 1, 4),
        "errors_vs_oracle": int(sum(run["errors_vs_oracle"] for run in base + spec)),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
