"""The ``maker`` command line. Bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.exceptions import TyperException

from maker_worker import __version__
from maker_worker.config import Settings, load_settings
from maker_worker.coordinator import StepCallback
from maker_worker.core.scaling import expected_cost, expected_votes_per_step, k_min, p_full
from maker_worker.domains import get_domain
from maker_worker.errors import ConfigError, MakerError
from maker_worker.jobs import JobStatus, JobSummary
from maker_worker.providers import check_embedded_provider
from maker_worker.runner import SimOptions, drive, finish, make_spec, resolve_k, services, submit
from maker_worker.store import RedisStore

EXIT_BAD_INPUT = 2
EXIT_JOB_NOT_SUCCEEDED = 1

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="MAKER long-horizon LLM tasks on Celery + Redis."
)
stderr = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML config file (else $MAKER_CONFIG).")]


def _version(value: bool) -> None:
    if value:
        print(f"maker_worker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """MAKER: maximal decomposition, first-to-ahead-by-k voting and red-flagging."""


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="hanoi (with --disks) or hanoi-Ndisk")],
    disks: Annotated[int | None, typer.Option(help="Hanoi disks (steps = 2^N - 1).")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help="Vote margin k.")] = None,
    target: Annotated[float | None, typer.Option(help="Target full-task success; k = k_min.")] = None,
    p_estimate: Annotated[float | None, typer.Option(help="Per-sample success estimate for k_min.")] = None,
    provider: Annotated[str | None, typer.Option(help="sim, openai, anthropic or ollama.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Embedded mode: local worker processes.")] = 2,
    sim_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Simulator: P(correct answer).")] = 0.95,
    sim_red_flag_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Simulator: red-flag rate.")
    ] = 0.0,
    sim_latency_ms: Annotated[float, typer.Option(min=0.0, help="Simulator: latency per call.")] = 0.0,
    sim_seed: Annotated[int, typer.Option(help="Simulator: random seed.")] = 0,
    max_samples_per_step: Annotated[int | None, typer.Option(min=1, help="Pause a step past this.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON summary as the last line.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Submit a job and drive it in the foreground until it finishes or pauses."""
    settings = load_settings(
        config, llm_provider=provider, model=model, max_samples_per_step=max_samples_per_step
    )
    domain = get_domain(task, disks=disks)
    check_embedded_provider(settings.llm_provider, settings)
    spec = make_spec(settings, domain, resolve_k(k, target, p_estimate, domain.total_steps))
    sim = SimOptions(sim_p, sim_red_flag_rate, sim_latency_ms, sim_seed)
    with services(settings, workers=workers, sim=sim) as redis_url:
        store = RedisStore.from_url(redis_url)
        job_id = submit(store, domain, spec)
        stderr.print(
            f"job {job_id}: {domain.name}, {domain.total_steps} steps, k={spec.k}, {_where(settings)}"
        )
        stderr.print(f"events: {settings.resolved_events_path(job_id)}")
        with _progress(domain.total_steps) as on_step:
            job, events_path = drive(settings, redis_url, job_id, on_step)
        summary = finish(store, job, domain, events_path)
    _report(summary, json_output)


def _where(settings: Settings) -> str:
    name = f"provider {settings.llm_provider} ({settings.resolved_model})"
    if settings.llm_provider == "sim":
        name += " [LLM simulator: a test tool, not a real model]"
    return name


class _progress:
    """A rich progress bar on stderr; the context value is the coordinator's step callback."""

    def __init__(self, steps: int) -> None:
        self.bar = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("samples {task.fields[samples]}  red flags {task.fields[red_flags]}"),
            TimeRemainingColumn(),
            console=stderr,
        )
        self.task_id = self.bar.add_task("steps", total=steps, rate="", samples=0, red_flags=0)

    def __enter__(self) -> StepCallback:
        self.bar.start()
        return self.update

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()

    def update(self, steps_done: int, totals: Counter[str]) -> None:
        speed = self.bar.tasks[0].speed
        rate = f"{speed:7.1f} steps/s" if speed else ""
        self.bar.update(
            self.task_id,
            completed=steps_done,
            rate=rate,
            samples=totals["samples"],
            red_flags=totals["red_flags"],
        )


def _report(summary: JobSummary, json_output: bool) -> None:
    stderr.print(
        f"{summary.status.value}: {summary.steps_done}/{summary.steps} steps, {summary.samples} samples, "
        f"{summary.red_flags} red flags, errors vs oracle {summary.errors_vs_oracle}, {summary.wall_s:.1f} s"
        + (f" ({summary.reason})" if summary.reason else "")
    )
    if json_output:
        print(summary.model_dump_json(), flush=True)
    if summary.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_NOT_SUCCEEDED)


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option(min=1, help="Threads per worker process.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    config: ConfigOption = None,
) -> None:
    """Run a Celery worker that samples for every job in the configured Redis."""
    from maker_worker.celery_app import SAMPLE_QUEUE, create_app
    from maker_worker.service import WorkerContext
    from maker_worker.tasks import register_tasks

    settings = load_settings(config, worker_threads=threads)
    if not settings.redis_url:
        raise ConfigError("maker worker needs MAKER_REDIS_URL (the Redis that coordinators use)")
    celery = create_app(settings, settings.redis_url)
    ctx = WorkerContext.from_settings(settings, settings.redis_url)
    register_tasks(celery, ctx)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per LLM call is noise
    argv = ["worker", "--pool=threads", f"--concurrency={settings.worker_threads}", "-Q", SAMPLE_QUEUE]
    argv += [f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    argv += ["-E"] if settings.task_events else []
    argv += ["--hostname", hostname] if hostname else []
    try:
        celery.worker_main(argv)
    finally:
        ctx.close()


@app.command("sim-server")
def sim_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8765,
    p: Annotated[float, typer.Option(min=0.0, max=1.0, help="P(correct answer).")] = 0.95,
    red_flag_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Rate of red-flag answers.")] = 0.0,
    latency_ms: Annotated[float, typer.Option(min=0.0, help="Added latency per call.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Run the LLM simulator, a test and planning tool speaking the providers' HTTP formats."""
    from maker_worker.sim.server import SimConfig, serve

    serve(SimConfig(p=p, red_flag_rate=red_flag_rate, latency_ms=latency_ms, seed=seed), host, port)


@app.command()
def estimate(
    p: Annotated[float, typer.Option(help="Per-sample success probability (> 0.5).")],
    disks: Annotated[int | None, typer.Option(help="Hanoi disks (steps = 2^N - 1).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Number of steps.")] = None,
    target: Annotated[float, typer.Option(help="Target full-task success.")] = 0.95,
    cost_per_sample_usd: Annotated[float, typer.Option(min=0.0, help="Cost of one sample.")] = 0.0,
    valid_share: Annotated[float, typer.Option(help="Share of samples not red-flagged.")] = 1.0,
) -> None:
    """Scaling-law plan: k_min, success probability, expected votes and cost."""
    if (disks is None) == (steps is None):
        raise ConfigError("give exactly one of --disks or --steps")
    total_steps = steps if steps is not None else 2 ** (disks or 0) - 1
    try:
        k = k_min(p, total_steps, target)
        plan = {
            "steps": total_steps,
            "p": p,
            "target": target,
            "k_min": k,
            "p_full": p_full(p, k, total_steps),
            "expected_votes_per_step": expected_votes_per_step(p, k),
            "expected_cost_usd": expected_cost(cost_per_sample_usd, total_steps, k, p, valid_share),
        }
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    import json

    print(json.dumps(plan))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps bad input and MakerErrors to one line and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="maker", standalone_mode=False)
    except TyperException as exc:  # click usage errors: bad option values, unknown options
        _fail(exc.format_message() + _hint(exc))
    except MakerError as exc:
        _fail(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        print("maker: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _hint(exc: TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    return f" (see `{ctx.command_path} --help`)" if ctx is not None else ""


def _fail(message: str) -> None:
    print(f"maker: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
