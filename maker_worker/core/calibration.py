"""Calibration maths: estimate per-sample success p from judged samples and plan k from it.

A calibration run asks the model about random steps of a task, one sample each, and compares
every answer with the oracle. Red-flagged answers are discarded and re-sampled by MAKER, so
``p`` is the success rate among the answers that survive red-flagging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from maker_worker.core.scaling import expected_cost, expected_votes_per_step, k_min, p_full

Z_95 = 1.959964
"""Normal quantile of a two-sided 95 % interval."""


@dataclass(frozen=True)
class CalibrationCounts:
    """What the calibration samples came to."""

    correct: int
    wrong: int
    red_flags: int
    errors: int
    tokens_in: int
    tokens_out: int

    @property
    def votes(self) -> int:
        """Answers that survived red-flagging (each would have been a vote)."""
        return self.correct + self.wrong

    @property
    def answered(self) -> int:
        """Samples the model answered (votes and red flags; not failed calls)."""
        return self.votes + self.red_flags


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound near 0 and 1, unlike p ± z·se)."""
    if trials <= 0:
        raise ValueError("an interval needs at least one trial")
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


@dataclass(frozen=True)
class Plan:
    """k for a task of ``steps`` steps at ``target`` success, from the estimate and its lower bound."""

    p: float
    p_low: float
    p_high: float
    red_flag_rate: float
    steps: int
    target: float
    k_min: int | None
    """k from the point estimate; None when p <= 0.5 (voting cannot converge)."""
    k_conservative: int | None
    """k from the lower 95 % bound of p, the one to use; None when that bound is <= 0.5."""
    p_full_at_conservative_k: float | None
    expected_samples_per_step: float | None
    expected_cost_usd: float | None


def plan(counts: CalibrationCounts, steps: int, target: float, cost_per_sample_usd: float) -> Plan:
    """Estimate p from ``counts`` and plan k (and cost) for ``steps`` steps at ``target`` success.

    Raises:
        ValueError: no sample survived red-flagging, or the target is not in (0, 1).
    """
    if counts.votes == 0:
        raise ValueError("no answer survived red-flagging, so p cannot be estimated")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target success must be in (0, 1), got {target}")
    p = counts.correct / counts.votes
    p_low, p_high = wilson_interval(counts.correct, counts.votes)
    valid_share = counts.votes / counts.answered
    k = k_min(p, steps, target) if p > 0.5 else None
    k_safe = k_min(p_low, steps, target) if p_low > 0.5 else None
    full: float | None = None
    samples: float | None = None
    cost: float | None = None
    if k_safe is not None:
        full = p_full(p, k_safe, steps)
        samples = expected_votes_per_step(p, k_safe) / valid_share
        cost = expected_cost(cost_per_sample_usd, steps, k_safe, p, valid_share)
    return Plan(
        p=p,
        p_low=p_low,
        p_high=p_high,
        red_flag_rate=counts.red_flags / counts.answered,
        steps=steps,
        target=target,
        k_min=k,
        k_conservative=k_safe,
        p_full_at_conservative_k=full,
        expected_samples_per_step=samples,
        expected_cost_usd=cost,
    )
