#!/usr/bin/env python3
"""Orchestration overhead per step: inline dispatcher vs the Celery path vs naive group().get().

All three modes drive the same Hanoi job (k = 3) against a zero-latency simulator at p = 1, in
one run on this machine, so the figures are comparable:

(a) inline: the coordinator with an in-process thread-pool dispatcher (results via Redis);
(b) celery: the coordinator with the Celery dispatcher and real worker processes (the product,
    speculation on as by default); also measured with speculation off;
(c) naive:  one Celery ``group(...).apply_async().get()`` per voting round through a result
    backend (what DESIGN.md rules out), with the same workers' sampling code;
(d) floor:  the Celery path with nothing to do: per step, k messages carrying the same sample
    requests through an app with the product's settings and worker flags, to a task that only
    pushes the sample id to a Redis list, which the driver pops. No HTTP, no voting, no ledger:
    the least any design with one Celery task per sample can cost on this machine.

For (b) and (d) it also sums the CPU time of this process and every process it started
(workers, redis, simulator): CPU ms per step divided by the core count is the least wall time
per step any overlap of the steps could reach.

The last line is a JSON object with ``inline_ms_per_step``, ``celery_ms_per_step``,
``naive_ms_per_step``, ``celery_floor_ms_per_step``, the CPU figures and the ratios.

Usage: .venv/bin/python scripts/bench_overhead.py [--disks 8] [--workers 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery, group

from maker_worker.celery_app import CeleryDispatcher, create_app
from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator, Dispatcher
from maker_worker.core.models import Candidate, JSONValue
from maker_worker.core.voting import Tally
from maker_worker.domains import get_domain
from maker_worker.embedded import Embedded
from maker_worker.events import EventLog
from maker_worker.inline import InlineDispatcher
from maker_worker.jobs import JobSpec, JobStatus, SampleRequest
from maker_worker.providers import build_provider
from maker_worker.runner import make_spec, submit
from maker_worker.service import WorkerContext, sample_once
from maker_worker.store import RedisStore

NAIVE_TASK = "bench.naive_sample"
NAIVE_QUEUE = "bench.naive"
FLOOR_TASK = "bench.floor_sample"
FLOOR_QUEUE = "bench.floor"
K = 3


def cpu_s_of_tree() -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants."""
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu_s: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu_s[pid] = (int(fields[11]) + int(fields[12])) * tick_s
    tree, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(cpu_s.get(pid, 0.0) for pid in tree)


def measured(run: Any, steps: int) -> tuple[float, float]:
    """(wall ms per step, CPU ms per step summed over all processes) of ``run()``."""
    cpu_before_s = cpu_s_of_tree()
    wall_ms = run()
    return wall_ms, (cpu_s_of_tree() - cpu_before_s) * 1000 / steps


def naive_app(redis_url: str) -> Celery:
    app = Celery("bench_naive", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    app.conf.update(
        task_default_queue=NAIVE_QUEUE, worker_prefetch_multiplier=1, worker_hijack_root_logger=False
    )
    return app


def naive_worker_main(redis_url: str, sim_url: str, threads: int) -> None:
    """A worker for mode (c): runs the product's sampling code and returns the result."""
    settings = Settings(redis_url=redis_url, sim_url=sim_url)
    provider = build_provider("sim", settings)
    app = naive_app(redis_url)

    @app.task(name=NAIVE_TASK)  # type: ignore[untyped-decorator]
    def naive_sample(request: dict[str, Any]) -> dict[str, Any]:
        return sample_once(SampleRequest.model_validate(request), provider).model_dump(mode="json")

    app.worker_main(
        ["worker", "--pool=threads", f"--concurrency={threads}", "-Q", NAIVE_QUEUE, "--loglevel=WARNING"]
    )


def bench_request(
    job_id: str, spec: JobSpec, step: int, n: int, state: JSONValue, previous_move: JSONValue | None
) -> SampleRequest:
    """Sample ``n`` of ``step`` for modes (c) and (d), which run outside the coordinator."""
    return SampleRequest(
        job_id=job_id,
        step=step,
        sample_id=f"{job_id}:{step}:{n}",
        task=spec.task,
        state=state,
        previous_move=previous_move,
        provider="sim",
        model=spec.model,
        temperature=0.0 if n == 0 else 0.1,
        max_output_tokens=spec.max_output_tokens,
        red_flag_max_tokens=spec.red_flag_max_tokens,
    )


def floor_worker_main(redis_url: str, threads: int) -> None:
    """A worker for mode (d): the product's Celery settings and flags, a task that does nothing."""
    app = create_app(Settings(redis_url=redis_url), redis_url)
    client = redis.Redis.from_url(redis_url)

    @app.task(name=FLOOR_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def floor_sample(request: dict[str, Any]) -> None:
        client.rpush(f"bench:floor:{request['step']}", request["sample_id"])

    argv = ["worker", "--pool=threads", f"--concurrency={threads}", "-Q", FLOOR_QUEUE]
    app.worker_main([*argv, "--loglevel=WARNING", "--without-gossip", "--without-mingle"])


def run_floor(settings: Settings, redis_url: str, disks: int) -> float:
    """k messages per step published as the product does, k replies popped: ms per step."""
    app = create_app(settings, redis_url)
    client = redis.Redis.from_url(redis_url)
    domain = get_domain("hanoi", disks=disks)
    spec = make_spec(settings, domain, K)
    state = domain.initial_state()
    started_s = time.perf_counter()
    for step in range(domain.total_steps):
        requests = [bench_request("floor", spec, step, n, state, None) for n in range(K)]
        with app.producer_or_acquire() as producer, producer.batch():
            for request in requests:
                app.send_task(
                    FLOOR_TASK,
                    args=[request.model_dump(mode="json")],
                    argsrepr=f"[{request.sample_id}]",
                    kwargsrepr="{}",
                    queue=FLOOR_QUEUE,
                    exchange="",
                    routing_key=FLOOR_QUEUE,
                    producer=producer,
                    ignore_result=True,
                )
        for _ in range(K):
            if client.blpop([f"bench:floor:{step}"], timeout=60) is None:
                raise SystemExit(f"floor step {step}: no reply within 60 s")
    return (time.perf_counter() - started_s) * 1000 / domain.total_steps


def run_coordinated(
    settings: Settings,
    redis_url: str,
    dispatcher: Dispatcher,
    disks: int,
    events: Path,
    speculate: bool = True,
) -> float:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=disks)
    job_id = submit(store, domain, make_spec(settings, domain, K))
    log = EventLog(events / f"{job_id}.jsonl")
    coordinator = Coordinator(store, dispatcher, log, speculate=speculate)
    started_s = time.perf_counter()
    job = coordinator.run(job_id)
    elapsed_s = time.perf_counter() - started_s
    log.close()
    if job.status is not JobStatus.SUCCEEDED:
        raise SystemExit(f"job {job_id} ended {job.status}: {job.reason}")
    return elapsed_s * 1000 / domain.total_steps


def run_naive(settings: Settings, redis_url: str, disks: int) -> float:
    app = naive_app(redis_url)
    domain = get_domain("hanoi", disks=disks)
    spec = make_spec(settings, domain, K)
    state, previous_move = domain.initial_state(), None
    started_s = time.perf_counter()
    for step in range(domain.total_steps):
        tally, n = Tally(K), 0
        while (decision := tally.decision()) is None:
            count = tally.votes_still_needed()
            requests = []
            for _ in range(count):
                request = bench_request("naive", spec, step, n, state, previous_move)
                requests.append(request.model_dump(mode="json"))
                n += 1
            results = (
                group(app.signature(NAIVE_TASK, args=[r]) for r in requests).apply_async().get(timeout=60)
            )
            for result in results:
                if result["vote_key"] is not None:
                    tally.add(result["sample_id"], result["vote_key"])
        winner = Candidate.from_vote_key(decision.winner)
        state, previous_move = winner.next_state, winner.move
    return (time.perf_counter() - started_s) * 1000 / domain.total_steps


def wait_for_workers(app: Celery, count: int) -> None:
    deadline_s = time.monotonic() + 60
    while time.monotonic() < deadline_s:
        if len(app.control.ping(timeout=0.5)) >= count:
            return
    raise SystemExit("workers did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--naive-worker", nargs=2, metavar=("REDIS_URL", "SIM_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--floor-worker", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker:
        redis_url, sim_url = args.naive_worker
        naive_worker_main(redis_url, sim_url, threads=args.threads)
        return
    if args.floor_worker:
        floor_worker_main(args.floor_worker, threads=args.threads)
        return
    steps, cores = 2**args.disks - 1, os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp, Embedded(Path(tmp)) as embedded:
        redis_url = embedded.start_redis()
        sim_url = embedded.start_simulator(p=1.0, red_flag_rate=0.0, latency_ms=0.0, seed=0)
        settings = Settings(redis_url=redis_url, sim_url=sim_url, llm_provider="sim", data_dir=Path(tmp))
        ctx = WorkerContext.from_settings(settings, redis_url)
        inline = InlineDispatcher(ctx, threads=args.threads)
        inline_ms = run_coordinated(settings, redis_url, inline, args.disks, Path(tmp))
        inline.close()

        embedded.start_workers(args.workers, args.threads)
        app = create_app(settings, redis_url)
        wait_for_workers(app, args.workers)
        dispatcher = CeleryDispatcher(app)
        plain_ms = run_coordinated(settings, redis_url, dispatcher, args.disks, Path(tmp), speculate=False)
        celery_ms, celery_cpu_ms = measured(
            lambda: run_coordinated(settings, redis_url, dispatcher, args.disks, Path(tmp)), steps
        )
        embedded.stop_workers()

        for index in range(args.workers):
            floor_args = ["--threads", str(args.threads), "--floor-worker", redis_url]
            embedded.spawn(f"floor-{index}", [sys.executable, __file__, *floor_args])
        wait_for_workers(app, args.workers)
        floor_ms, floor_cpu_ms = measured(lambda: run_floor(settings, redis_url, args.disks), steps)

        for index in range(args.workers):
            embedded.spawn(
                f"naive-{index}",
                [
                    sys.executable,
                    __file__,
                    "--threads",
                    str(args.threads),
                    "--naive-worker",
                    redis_url,
                    sim_url,
                ],
            )
        naive = naive_app(redis_url)
        wait_for_workers(naive, 2 * args.workers)
        naive_ms = run_naive(settings, redis_url, args.disks)

    print(
        f"{steps} steps, k={K}, p=1, zero-latency simulator, {args.workers} workers x {args.threads} threads"
    )
    print(f"(a) inline dispatcher     {inline_ms:7.2f} ms/step")
    print(f"(b) celery (the product)  {celery_ms:7.2f} ms/step   (without speculation {plain_ms:.2f})")
    print(
        f"(c) naive group().get()   {naive_ms:7.2f} ms/step   ({naive_ms / celery_ms:.1f}x the celery path)"
    )
    print(
        f"(d) celery floor (no-op)  {floor_ms:7.2f} ms/step   "
        f"(the celery path is {celery_ms / floor_ms:.2f}x this)"
    )
    print(
        f"CPU over all processes: (b) {celery_cpu_ms:.2f} ms/step, (d) {floor_cpu_ms:.2f} ms/step; on "
        f"{cores} cores no overlap of steps gets (d) below {floor_cpu_ms / cores:.2f} ms/step"
    )
    figures = {
        "steps": steps,
        "k": K,
        "inline_ms_per_step": round(inline_ms, 3),
        "celery_ms_per_step": round(celery_ms, 3),
        "celery_no_speculation_ms_per_step": round(plain_ms, 3),
        "naive_ms_per_step": round(naive_ms, 3),
        "celery_floor_ms_per_step": round(floor_ms, 3),
        "celery_over_floor": round(celery_ms / floor_ms, 3),
        "celery_cpu_ms_per_step": round(celery_cpu_ms, 3),
        "celery_floor_cpu_ms_per_step": round(floor_cpu_ms, 3),
        "cores": cores,
        "celery_floor_least_ms_per_step": round(floor_cpu_ms / cores, 3),
        "naive_over_celery": round(naive_ms / celery_ms, 3),
        "celery_over_inline": round(celery_ms / inline_ms, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
