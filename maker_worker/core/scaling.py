"""MAKER scaling laws (Meyerson et al. 2025): success, k_min, expected votes and cost.

Notation: ``p`` per-sample success, ``s`` steps, ``m`` steps per agent (1 in MAKER),
``t`` target probability of solving the whole task, ``v`` share of samples not red-flagged.
"""

from __future__ import annotations

import math


def _check_p(p: float) -> None:
    if not 0.5 < p <= 1.0:
        raise ValueError(f"per-sample success p must be in (0.5, 1], got {p}")


def p_step(p: float, k: int) -> float:
    """Probability that first-to-ahead-by-k picks the correct answer for one step."""
    if p == 1.0:
        return 1.0
    if p == 0.0:
        return 0.0
    return 1.0 / (1.0 + math.pow((1.0 - p) / p, k))


def p_full(p: float, k: int, steps: int, steps_per_agent: int = 1) -> float:
    """Probability that every one of ``steps`` steps is decided correctly."""
    return math.pow(p_step(p, k), steps / steps_per_agent)


def k_min(p: float, steps: int, target: float, steps_per_agent: int = 1) -> int:
    """The smallest k whose full-task success reaches ``target`` (needs p > 0.5)."""
    _check_p(p)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target success must be in (0, 1), got {target}")
    if steps < 1:
        raise ValueError(f"a task has at least one step, got {steps}")
    if p == 1.0:
        return 1
    numerator = math.log(target ** (-steps_per_agent / steps) - 1.0)
    return max(1, math.ceil(numerator / math.log((1.0 - p) / p)))


def expected_votes_per_step(p: float, k: int) -> float:
    """Expected valid votes to decide a step (gambler's ruin between two candidates)."""
    _check_p(p)
    if p == 1.0:
        return float(k)
    r = (1.0 - p) / p
    return k / (2.0 * p - 1.0) * (1.0 - r**k) / (1.0 + r**k)


def expected_cost(cost_per_sample: float, steps: int, k: int, p: float, valid_share: float) -> float:
    """Approximate expected total cost, ``c * s * k / (v * (2p - 1))``."""
    _check_p(p)
    if not 0.0 < valid_share <= 1.0:
        raise ValueError(f"valid share v must be in (0, 1], got {valid_share}")
    return cost_per_sample * steps * k / (valid_share * (2.0 * p - 1.0))


def plan(
    p: float, steps: int, target: float, cost_per_sample: float = 0.0, valid_share: float = 1.0
) -> dict[str, float]:
    """The scaling-law plan for a task: k_min, the full-task success it gives, expected votes per
    step and the expected cost (as ``maker estimate`` and the MCP ``plan_k`` tool report it)."""
    k = k_min(p, steps, target)
    return {
        "steps": steps,
        "p": p,
        "target": target,
        "k_min": k,
        "p_full": p_full(p, k, steps),
        "expected_votes_per_step": expected_votes_per_step(p, k),
        "expected_cost_usd": expected_cost(cost_per_sample, steps, k, p, valid_share),
    }
