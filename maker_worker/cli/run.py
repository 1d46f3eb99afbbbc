"""Commands that create and drive jobs, and the long-running services."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from maker_worker import metrics
from maker_worker.cli.app import (
    EXIT_JOB_NOT_SUCCEEDED,
    ConfigOption,
    JobArgument,
    JsonOption,
    app,
    exit_for,
    report,
    stderr,
)
from maker_worker.cli.progress import StepProgress
from maker_worker.config import Settings, load_settings
from maker_worker.domains import get_domain
from maker_worker.domains.base import Domain
from maker_worker.errors import ConfigError
from maker_worker.jobs import JobSpec, JobStatus, JobSummary
from maker_worker.providers import check_embedded_provider
from maker_worker.runner import (
    SimOptions,
    drive,
    finish,
    make_spec,
    requeue,
    resolve_k,
    serve_coordinator,
    services,
    submit,
)
from maker_worker.store import RedisStore

SMOKE_TEST_MAX_STEPS = 1023
"""``maker test`` is a smoke test: up to hanoi-10disk."""

TaskArgument = Annotated[str, typer.Argument(help="hanoi (with --disks) or hanoi-Ndisk")]
DisksOption = Annotated[int | None, typer.Option(help="Hanoi disks (steps = 2^N - 1).")]
KOption = Annotated[int | None, typer.Option("--k", min=1, help="Vote margin k.")]
TargetOption = Annotated[float | None, typer.Option(help="Target full-task success; k = k_min.")]
PEstimateOption = Annotated[float | None, typer.Option(help="Per-sample success estimate for k_min.")]
ProviderOption = Annotated[str | None, typer.Option(help="sim, openai, anthropic or ollama.")]
ModelOption = Annotated[str | None, typer.Option(help="Model name.")]
CapOption = Annotated[int | None, typer.Option(min=1, help="Pause a step that needs more samples.")]
BudgetOption = Annotated[float | None, typer.Option(help="Pause before a sample would cross this spend.")]
WorkersOption = Annotated[int, typer.Option(min=0, help="Embedded mode: local worker processes.")]
SimPOption = Annotated[float, typer.Option(min=0.0, max=1.0, help="Simulator: P(correct answer).")]
SimRedFlagOption = Annotated[float, typer.Option(min=0.0, max=1.0, help="Simulator: red-flag answer rate.")]
SimLatencyOption = Annotated[float, typer.Option(min=0.0, help="Simulator: added latency per call.")]
SimSeedOption = Annotated[int, typer.Option(help="Simulator: random seed.")]


@app.command()
def run(
    task: TaskArgument,
    disks: DisksOption = None,
    k: KOption = None,
    target: TargetOption = None,
    p_estimate: PEstimateOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    workers: WorkersOption = 2,
    sim_p: SimPOption = 0.95,
    sim_red_flag_rate: SimRedFlagOption = 0.0,
    sim_latency_ms: SimLatencyOption = 0.0,
    sim_seed: SimSeedOption = 0,
    max_samples_per_step: CapOption = None,
    budget_usd: BudgetOption = None,
    json_output: JsonOption = False,
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
    summary = run_in_foreground(settings, domain, spec, workers, sim, budget_usd)
    report(summary, json_output)
    exit_for(summary)


@app.command("test")
def smoke_test(
    task: Annotated[str, typer.Argument(help="A small task with an oracle.")] = "hanoi-3disk",
    k: KOption = 3,
    provider: ProviderOption = None,
    model: ModelOption = None,
    workers: WorkersOption = 2,
    sim_p: SimPOption = 0.95,
    sim_seed: SimSeedOption = 0,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Smoke test: solve a small task end to end (embedded, or through the shared Redis and its
    workers) and check every step against the oracle; PASS exits 0, FAIL exits 1."""
    settings = load_settings(config, llm_provider=provider, model=model)
    domain = get_domain(task)
    if domain.total_steps > SMOKE_TEST_MAX_STEPS:
        raise ConfigError(
            f"{domain.name} has {domain.total_steps} steps; maker test takes at most "
            f"{SMOKE_TEST_MAX_STEPS} (use maker run for long jobs)"
        )
    check_embedded_provider(settings.llm_provider, settings)
    spec = make_spec(settings, domain, k or 3)
    summary = run_in_foreground(settings, domain, spec, workers, SimOptions(sim_p, seed=sim_seed), None)
    passed = summary.status is JobStatus.SUCCEEDED and summary.errors_vs_oracle == 0
    stderr.print(
        f"{'PASS' if passed else 'FAIL'} {summary.task} on {summary.provider} ({summary.model}): "
        f"{summary.steps_done}/{summary.steps} steps, errors vs oracle {summary.errors_vs_oracle}"
    )
    report(summary, json_output)
    if not passed:
        raise typer.Exit(EXIT_JOB_NOT_SUCCEEDED)


def run_in_foreground(
    settings: Settings,
    domain: Domain,
    spec: JobSpec,
    workers: int,
    sim: SimOptions,
    budget_usd: float | None,
) -> JobSummary:
    """Submit a job and drive it here, on the configured Redis or an embedded one (``services``)."""
    metrics.serve(settings.metrics_port)
    embedded_sim = sim if settings.llm_provider == "sim" else None
    with services(settings, workers=workers, sim=embedded_sim) as redis_url:
        store = RedisStore.from_url(redis_url)
        job_id = submit(store, domain, spec, budget_usd)
        return drive_in_foreground(settings, redis_url, store, job_id)


def drive_in_foreground(settings: Settings, redis_url: str, store: RedisStore, job_id: str) -> JobSummary:
    job = store.load_job(job_id)
    name = f"{job.spec.provider} ({job.spec.model})"
    if job.spec.provider == "sim":
        name += " [LLM simulator: a test tool, not a real model]"
    stderr.print(f"job {job_id}: {job.spec.task}, {job.steps} steps, k={job.spec.k}, provider {name}")
    stderr.print(f"events: {settings.resolved_events_path(job_id)}")
    with StepProgress(job.steps, stderr, done=job.steps_done) as progress:
        job, events_path = drive(settings, redis_url, job_id, progress.update)
    return finish(store, job, events_path)


@app.command("submit")
def submit_job(
    task: TaskArgument,
    disks: DisksOption = None,
    k: KOption = None,
    target: TargetOption = None,
    p_estimate: PEstimateOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    max_samples_per_step: CapOption = None,
    budget_usd: BudgetOption = None,
    config: ConfigOption = None,
) -> None:
    """Store a job in the shared Redis for `maker coordinator` to drive; prints its id."""
    settings = load_settings(
        config, llm_provider=provider, model=model, max_samples_per_step=max_samples_per_step
    )
    if not settings.redis_url:
        raise ConfigError(
            "maker submit needs MAKER_REDIS_URL (a shared Redis); `maker run` drives a local job"
        )
    domain = get_domain(task, disks=disks)
    spec = make_spec(settings, domain, resolve_k(k, target, p_estimate, domain.total_steps))
    print(submit(RedisStore.from_url(settings.redis_url), domain, spec, budget_usd))


@app.command()
def resume(
    job_id: JobArgument,
    max_samples_per_step: CapOption = None,
    budget_usd: BudgetOption = None,
    detach: Annotated[
        bool, typer.Option(help="Requeue for `maker coordinator` instead of driving it here.")
    ] = False,
    workers: WorkersOption = 2,
    sim_p: SimPOption = 0.95,
    sim_red_flag_rate: SimRedFlagOption = 0.0,
    sim_latency_ms: SimLatencyOption = 0.0,
    sim_seed: SimSeedOption = 0,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Continue a paused (or orphaned) job at its first undecided step, optionally with new caps."""
    settings = load_settings(config)
    sim = SimOptions(sim_p, sim_red_flag_rate, sim_latency_ms, sim_seed)
    with services(settings, workers=0 if detach else workers, sim=None if detach else sim) as redis_url:
        store = RedisStore.from_url(redis_url)
        requeue(store, job_id, max_samples_per_step, budget_usd)
        if detach:
            stderr.print(f"job {job_id} queued for a coordinator")
            return
        summary = drive_in_foreground(settings, redis_url, store, job_id)
    report(summary, json_output)
    exit_for(summary)


@app.command()
def coordinator(
    once: Annotated[bool, typer.Option(help="Exit when no job is left to claim.")] = False,
    config: ConfigOption = None,
) -> None:
    """Claim queued jobs from the shared Redis (with a renewed lease) and drive them."""
    settings = load_settings(config)
    if not settings.redis_url:
        raise ConfigError("maker coordinator needs MAKER_REDIS_URL (the Redis that jobs are submitted to)")
    logging.getLogger("maker_worker").setLevel(logging.INFO)
    metrics.serve(settings.metrics_port)
    serve_coordinator(settings, settings.redis_url, once=once)


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option(min=1, help="Threads per worker process.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    supervised: Annotated[bool, typer.Option(help="Restart the worker whenever it dies.")] = True,
    config: ConfigOption = None,
) -> None:
    """Run a Celery worker that samples for every job in the configured Redis.

    By default a small supervisor restarts the worker if it dies (e.g. kombu gives up on a
    Redis restart), so a broker outage never needs an operator.
    """
    from maker_worker.celery_app import SAMPLE_QUEUE, create_app
    from maker_worker.service import WorkerContext
    from maker_worker.supervise import supervise
    from maker_worker.tasks import register_tasks

    settings = load_settings(config, worker_threads=threads)
    if not settings.redis_url:
        raise ConfigError("maker worker needs MAKER_REDIS_URL (the Redis that coordinators use)")
    if supervised:
        raise typer.Exit(supervise([sys.executable, "-m", "maker_worker", *sys.argv[1:], "--no-supervised"]))
    metrics.serve(settings.metrics_port)  # in the worker itself, not its supervisor
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
    rpm_limit: Annotated[
        float | None, typer.Option(min=1, help="Answer 429 past this many requests/min.")
    ] = None,
    tpm_limit: Annotated[
        float | None, typer.Option(min=1, help="Answer 429 past this many tokens/min.")
    ] = None,
    error_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Rate of injected 5xx/529.")] = 0.0,
    slow_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Rate of slow answers.")] = 0.0,
    slow_ms: Annotated[float, typer.Option(min=0.0, help="Delay of a slow answer.")] = 2000.0,
) -> None:
    """Run the LLM simulator, a test and planning tool speaking the OpenAI, Anthropic and Ollama formats."""
    from maker_worker.sim.server import SimConfig, serve

    config = SimConfig(
        p=p,
        red_flag_rate=red_flag_rate,
        latency_ms=latency_ms,
        seed=seed,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        error_rate=error_rate,
        slow_rate=slow_rate,
        slow_ms=slow_ms,
    )
    serve(config, host, port)
