"""``maker calibrate``: estimate the model's per-step success p on a task and plan k from it."""

from __future__ import annotations

import json
import random
from typing import Annotated

import typer

from maker_worker.calibrate import calibrate, random_cases
from maker_worker.cli.app import EXIT_JOB_NOT_SUCCEEDED, ConfigOption, JsonOption, app, stderr
from maker_worker.cli.run import (
    ModelOption,
    ProviderOption,
    SimLatencyOption,
    SimPOption,
    SimRedFlagOption,
    SimSeedOption,
)
from maker_worker.config import load_settings
from maker_worker.core.calibration import CalibrationCounts, Plan, plan
from maker_worker.domains import get_domain
from maker_worker.errors import ConfigError, ProviderError
from maker_worker.providers import check_embedded_provider
from maker_worker.runner import SimOptions, local_services, make_spec
from maker_worker.service import WorkerContext


@app.command("calibrate")
def calibrate_command(
    task: Annotated[str, typer.Option(help="Task to ask about, e.g. hanoi-3disk.")] = "hanoi-3disk",
    samples: Annotated[int, typer.Option(min=1, max=100_000, help="Samples, one per random step.")] = 100,
    for_task: Annotated[
        str | None, typer.Option(help="Plan k for this task (default: --task), e.g. hanoi-20disk.")
    ] = None,
    target: Annotated[float, typer.Option(help="Target full-task success for k.")] = 0.95,
    provider: ProviderOption = None,
    model: ModelOption = None,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Samples in flight at once.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for drawing the steps.")] = 0,
    sim_p: SimPOption = 0.95,
    sim_red_flag_rate: SimRedFlagOption = 0.0,
    sim_latency_ms: SimLatencyOption = 0.0,
    sim_seed: SimSeedOption = 0,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the model about random steps, compare with the oracle, and recommend k (exit 1 if none)."""
    if not 0.0 < target < 1.0:
        raise ConfigError(f"--target must be in (0, 1), got {target}")
    settings = load_settings(config, llm_provider=provider, model=model)
    domain = get_domain(task)
    steps = get_domain(for_task).total_steps if for_task else domain.total_steps
    check_embedded_provider(settings.llm_provider, settings)
    spec = make_spec(settings, domain, k=1)
    cases = random_cases(domain, samples, random.Random(seed))
    sim = SimOptions(sim_p, sim_red_flag_rate, sim_latency_ms, sim_seed)
    with local_services(settings, sim) as local:
        ctx = WorkerContext.from_settings(local, local.redis_url or "")
        try:
            counts, first_error = calibrate(ctx, spec, cases, threads)
        finally:
            ctx.close()
    if counts.votes == 0:
        message = f"no sample gave an answer to judge ({counts.errors} failed): {first_error}"
        raise ProviderError(message, provider=spec.provider)
    cost_per_sample_usd = (
        counts.tokens_in * spec.price_in_usd_per_mtok + counts.tokens_out * spec.price_out_usd_per_mtok
    ) / (1e6 * samples)
    result = plan(counts, steps, target, cost_per_sample_usd)
    _report(domain.name, for_task or domain.name, counts, result, first_error)
    if json_output:
        print(
            json.dumps(
                _summary(domain.name, for_task or domain.name, spec.provider, spec.model, counts, result)
            )
        )
    if result.k_conservative is None:
        raise typer.Exit(EXIT_JOB_NOT_SUCCEEDED)


def _report(
    task: str, for_task: str, counts: CalibrationCounts, result: Plan, first_error: str | None
) -> None:
    stderr.print(
        f"{task}: {counts.correct} right, {counts.wrong} wrong, {counts.red_flags} red-flagged, "
        f"{counts.errors} failed; p = {result.p:.4f} (95 % interval {result.p_low:.4f}-{result.p_high:.4f}), "
        f"red-flag rate {result.red_flag_rate:.3f}"
    )
    if first_error:
        stderr.print(f"first failure: {first_error}")
    if result.k_conservative is None:
        stderr.print(
            f"no k can be planned for {for_task}: p's lower bound {result.p_low:.4f} is not above 0.5 "
            "(use a stronger model, a clearer prompt, or more samples if p is close)"
        )
        return
    stderr.print(
        f"for {for_task} ({result.steps} steps) at target {result.target}: use k = {result.k_conservative} "
        f"(k_min at the point estimate: {result.k_min}); expected {result.expected_samples_per_step:.2f} "
        f"samples per step, ${result.expected_cost_usd:.4f} in all"
    )


def _summary(
    task: str, for_task: str, provider: str, model: str, counts: CalibrationCounts, result: Plan
) -> dict[str, object]:
    return {
        "task": task,
        "for_task": for_task,
        "provider": provider,
        "model": model,
        "samples": counts.answered + counts.errors,
        "correct": counts.correct,
        "wrong": counts.wrong,
        "red_flags": counts.red_flags,
        "errors": counts.errors,
        "p_estimate": round(result.p, 6),
        "p_low": round(result.p_low, 6),
        "p_high": round(result.p_high, 6),
        "red_flag_rate": round(result.red_flag_rate, 6),
        "steps": result.steps,
        "target": result.target,
        "k_min": result.k_min,
        "k_recommended": result.k_conservative,
        "p_full_at_k": result.p_full_at_conservative_k,
        "expected_samples_per_step": result.expected_samples_per_step,
        "expected_cost_usd": result.expected_cost_usd,
        "tokens_in": counts.tokens_in,
        "tokens_out": counts.tokens_out,
    }
