"""``maker calibrate``: ask the model about random steps of a task and count how often it is right.

Each sample goes through the same path as a worker's (shared limiter permit, provider call with
retries, red-flagging, strict parsing) but runs in this process on a thread pool, and is judged
against the oracle instead of being voted on. ``core.calibration`` turns the counts into an
estimate of p and a plan for k.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from maker_worker.core.calibration import CalibrationCounts
from maker_worker.core.models import Candidate, JSONValue
from maker_worker.domains.base import Domain
from maker_worker.jobs import JobSpec, SampleRequest, SampleResult
from maker_worker.service import WorkerContext, take_sample


@dataclass(frozen=True)
class Case:
    """One step of the task to ask about, with the oracle's answer."""

    step: int
    state: JSONValue
    previous_move: JSONValue | None
    truth: Candidate


def random_cases(domain: Domain, count: int, rng: random.Random) -> list[Case]:
    """``count`` steps drawn uniformly (with replacement) with their states, by walking the oracle once."""
    steps = [rng.randrange(domain.total_steps) for _ in range(count)]
    found: dict[int, Case] = {}
    state, previous_move, step = domain.initial_state(), None, 0
    for wanted in sorted(set(steps)):
        while step < wanted:
            state, previous_move = _advance(domain, state, previous_move, step)
            step += 1
        found[wanted] = Case(step, state, previous_move, _truth(domain, state, previous_move, step))
    return [found[step] for step in steps]


def _truth(domain: Domain, state: JSONValue, previous_move: JSONValue | None, step: int) -> Candidate:
    truth = domain.oracle(state, previous_move)
    if truth is None:
        raise RuntimeError(f"the {domain.name} oracle has no answer at step {step}")
    return truth


def _advance(
    domain: Domain, state: JSONValue, previous_move: JSONValue | None, step: int
) -> tuple[JSONValue, JSONValue | None]:
    truth = _truth(domain, state, previous_move, step)
    return truth.next_state, truth.move


def calibrate(
    ctx: WorkerContext,
    spec: JobSpec,
    cases: list[Case],
    threads: int,
    on_sample: Callable[[], None] | None = None,
) -> tuple[CalibrationCounts, str | None]:
    """Ask the model once per case (``threads`` at a time).

    Returns:
        The counts of right, wrong, red-flagged and failed samples, and the first failure's message.
    """
    run_id = f"calibrate-{uuid.uuid4().hex[:12]}"

    def ask(numbered: tuple[int, Case]) -> tuple[Case, SampleResult]:
        result = take_sample(_request(run_id, spec, *numbered), ctx)
        if on_sample is not None:
            on_sample()
        return numbered[1], result

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="maker-calibrate") as pool:
        judged = list(pool.map(ask, enumerate(cases)))
    return count(judged), next((result.error for _case, result in judged if result.error), None)


def _request(run_id: str, spec: JobSpec, n: int, case: Case) -> SampleRequest:
    return SampleRequest(
        job_id=run_id,
        step=case.step,
        sample_id=f"{run_id}:{case.step}:{n}",
        task=spec.task,
        state=case.state,
        previous_move=case.previous_move,
        provider=spec.provider,
        model=spec.model,
        temperature=spec.temperature,
        max_output_tokens=spec.max_output_tokens,
        red_flag_max_tokens=spec.red_flag_max_tokens,
        price_in_usd_per_mtok=spec.price_in_usd_per_mtok,
        price_out_usd_per_mtok=spec.price_out_usd_per_mtok,
    )


def count(judged: list[tuple[Case, SampleResult]]) -> CalibrationCounts:
    """Tally judged samples: a vote is right when its key equals the oracle's."""
    correct = wrong = red_flags = errors = 0
    for case, result in judged:
        if result.error is not None:
            errors += 1
        elif result.red_flag is not None:
            red_flags += 1
        elif result.vote_key == case.truth.vote_key:
            correct += 1
        else:
            wrong += 1
    return CalibrationCounts(
        correct=correct,
        wrong=wrong,
        red_flags=red_flags,
        errors=errors,
        tokens_in=sum(result.tokens_in for _case, result in judged),
        tokens_out=sum(result.tokens_out for _case, result in judged),
    )
