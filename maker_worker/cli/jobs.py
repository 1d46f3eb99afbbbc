"""Commands that inspect and control stored jobs, and the scaling-law planner."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from maker_worker.cli.app import (
    ConfigOption,
    JobArgument,
    JsonOption,
    app,
    exit_for,
    open_store,
    report,
    stderr,
)
from maker_worker.cli.progress import StepProgress
from maker_worker.config import load_settings
from maker_worker.core.scaling import plan
from maker_worker.errors import ConfigError, JobError
from maker_worker.jobs import ACTIVE_STATUSES
from maker_worker.runner import cancel as cancel_job
from maker_worker.store import JobState
from maker_worker.summary import summarize

WATCH_POLL_S = 0.5


@app.command()
def status(job_id: JobArgument, json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Show a job's progress and counters (exit 0 only if it succeeded)."""
    settings = load_settings(config)
    with open_store(settings) as store:
        summary = summarize(store, store.load_job(job_id), settings)
    report(summary, json_output)
    exit_for(summary)


@app.command()
def watch(job_id: JobArgument, config: ConfigOption = None) -> None:
    """Follow a job's progress live from Redis, from any machine, until it stops."""
    settings = load_settings(config)
    with open_store(settings) as store:
        job = store.load_job(job_id)
        with StepProgress(job.steps, stderr, done=job.steps_done) as progress:
            while job.status in ACTIVE_STATUSES:
                time.sleep(WATCH_POLL_S)
                job = store.load_job(job_id)
                progress.update(job.steps_done, job.counters)
        summary = summarize(store, job, settings)
    report(summary, json_output=False)
    exit_for(summary)


@app.command("list")
def list_jobs(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """List every job in Redis, oldest first."""
    with open_store(load_settings(config)) as store:
        for job_id in store.job_ids():
            try:
                job = store.load_job(job_id)
            except JobError as exc:
                print(f"{job_id}  (unreadable: {exc})")
                continue
            created = datetime.fromtimestamp(job.created_at_s, UTC).isoformat(timespec="seconds")
            print(_list_json(job, created) if json_output else _list_line(job, created))


def _list_json(job: JobState, created: str) -> str:
    fields = {"job_id": job.job_id, "task": job.spec.task, "status": job.status.value, "reason": job.reason}
    return json.dumps(fields | {"steps_done": job.steps_done, "steps": job.steps, "created": created})


def _list_line(job: JobState, created: str) -> str:
    reason = f" ({job.reason})" if job.reason else ""
    progress = f"{job.steps_done:>8}/{job.steps:<8}"
    return f"{job.job_id}  {created}  {job.spec.task:<14} {progress} {job.status.value}{reason}"


@app.command()
def cancel(job_id: JobArgument, config: ConfigOption = None) -> None:
    """Stop a job for good; its ledger is kept (its coordinator stops within a second)."""
    with open_store(load_settings(config)) as store:
        job = cancel_job(store, job_id)
    stderr.print(f"job {job_id} cancelled after {job.steps_done}/{job.steps} steps")


@app.command()
def export(
    job_id: JobArgument,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write the job's ledger (one decided step per line, in order) as JSON lines."""
    with open_store(load_settings(config)) as store:
        store.load_job(job_id)
        lines = (entry.model_dump_json() + "\n" for entry in store.ledger(job_id))
        if output is None:
            for line in lines:
                print(line, end="")
        else:
            with output.open("w", encoding="utf-8") as handle:
                handle.writelines(lines)


@app.command()
def estimate(
    p: Annotated[float, typer.Option(help="Per-sample success probability (> 0.5).")],
    disks: Annotated[int | None, typer.Option(min=1, max=64, help="Hanoi disks (steps = 2^N - 1).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Number of steps.")] = None,
    target: Annotated[float, typer.Option(help="Target full-task success.")] = 0.95,
    cost_per_sample_usd: Annotated[float, typer.Option(min=0.0, help="Cost of one sample.")] = 0.0,
    valid_share: Annotated[float, typer.Option(help="Share of samples not red-flagged.")] = 1.0,
) -> None:
    """Scaling-law plan: k_min, success probability, expected votes and cost (JSON)."""
    if (disks is None) == (steps is None):
        raise ConfigError("give exactly one of --disks or --steps")
    total_steps = steps if steps is not None else 2 ** (disks or 0) - 1
    try:
        figures = plan(p, total_steps, target, cost_per_sample_usd, valid_share)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(json.dumps(figures))
