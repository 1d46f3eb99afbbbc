"""The typer app, shared options and helpers of the ``maker`` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from maker_worker import __version__
from maker_worker.config import Settings
from maker_worker.jobs import JobStatus, JobSummary
from maker_worker.runner import services
from maker_worker.store import RedisStore

EXIT_BAD_INPUT = 2
EXIT_JOB_NOT_SUCCEEDED = 1

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="MAKER long-horizon LLM tasks on Celery + Redis."
)
stderr = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML config file (else $MAKER_CONFIG).")]
JobArgument = Annotated[str, typer.Argument(help="Job id (see `maker list`).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the JSON summary as the last line.")]


def _version(value: bool) -> None:
    if value:
        print(f"maker_worker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """MAKER: maximal decomposition, first-to-ahead-by-k voting and red-flagging."""


@contextmanager
def open_store(settings: Settings) -> Iterator[RedisStore]:
    """The configured Redis, or the embedded one (started for the command, then stopped)."""
    with services(settings, workers=0, sim=None) as redis_url:
        yield RedisStore.from_url(redis_url)


def report(summary: JobSummary, json_output: bool) -> None:
    """One human line on stderr; the JSON summary as the last stdout line with ``--json``."""
    counts = f"{summary.samples} samples, {summary.red_flags} red flags"
    stderr.print(
        f"job {summary.job_id} {summary.status.value}: {summary.steps_done}/{summary.steps} steps, {counts}, "
        f"errors vs oracle {summary.errors_vs_oracle}, ${summary.cost_usd:.4f}, {summary.wall_s:.1f} s"
        + (f" ({summary.reason})" if summary.reason else "")
    )
    if json_output:
        print(summary.model_dump_json(), flush=True)


def exit_for(summary: JobSummary) -> None:
    """Exit 0 only when the job succeeded."""
    if summary.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_NOT_SUCCEEDED)
