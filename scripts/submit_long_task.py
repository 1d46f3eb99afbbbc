#!/usr/bin/env python3
"""Worked example: submit a long job from a script, then follow it until it stops.

Needs a shared Redis with workers and a coordinator running against it::

    export MAKER_REDIS_URL=redis://localhost:6379/0
    maker worker &            # on every worker host
    maker coordinator &       # one or more; they share jobs through leases
    python scripts/submit_long_task.py --disks 20 --provider openai --model gpt-4.1-mini \
        --target 0.95 --p-estimate 0.9978 --budget-usd 4000

The job survives a crash of any one part; re-running this script with ``--watch JOB_ID``
follows an existing job instead of submitting a new one.
"""

from __future__ import annotations

import argparse
import sys
import time

from maker_worker.config import load_settings
from maker_worker.domains import get_domain
from maker_worker.jobs import ACTIVE_STATUSES, JobStatus
from maker_worker.runner import make_spec, resolve_k, submit
from maker_worker.store import RedisStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--provider", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--p-estimate", type=float, default=None)
    parser.add_argument("--budget-usd", type=float, default=None)
    parser.add_argument("--watch", metavar="JOB_ID", help="follow this job instead of submitting one")
    args = parser.parse_args()
    settings = load_settings(llm_provider=args.provider, model=args.model)
    if not settings.redis_url:
        sys.exit("set MAKER_REDIS_URL to the shared Redis that workers and coordinators use")
    store = RedisStore.from_url(settings.redis_url)
    job_id = args.watch
    if job_id is None:
        domain = get_domain("hanoi", disks=args.disks)
        k = resolve_k(args.k, args.target, args.p_estimate, domain.total_steps)
        job_id = submit(store, domain, make_spec(settings, domain, k), budget_usd=args.budget_usd)
        print(f"submitted job {job_id}: {domain.name}, {domain.total_steps} steps, k={k}")
    job = store.load_job(job_id)
    while job.status in ACTIVE_STATUSES:
        cost_usd = job.spec.cost_usd(job.counters["tokens_in"], job.counters["tokens_out"])
        print(f"{job.steps_done}/{job.steps} steps, {job.counters['samples']} samples, ${cost_usd:.2f}")
        time.sleep(10)
        job = store.load_job(job_id)
    print(f"job {job_id} {job.status.value}" + (f" ({job.reason})" if job.reason else ""))
    return 0 if job.status is JobStatus.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
