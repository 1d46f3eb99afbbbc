from __future__ import annotations

import math

import pytest

from maker_worker.core.scaling import expected_cost, expected_votes_per_step, k_min, p_full, p_step

MILLION_STEPS = 1_048_575


@pytest.mark.parametrize(
    ("error_rate", "expected_k"),
    [
        (0.0022, 3),
        (0.0018, 3),
        (0.0358, 6),
        (0.3571, 29),
        (0.1839, 12),
        (0.2342, 15),
        (0.0569, 6),
        (0.0393, 6),
    ],
)
def test_k_min_matches_the_papers_model_table(error_rate: float, expected_k: int) -> None:
    assert k_min(1 - error_rate, MILLION_STEPS, 0.95) == expected_k


def test_k_min_reaches_the_target_and_one_less_does_not() -> None:
    p, steps, target = 0.9, 10_000, 0.99
    k = k_min(p, steps, target)
    assert p_full(p, k, steps) >= target
    assert p_full(p, k - 1, steps) < target


@pytest.mark.parametrize("p", [0.5, 0.3, 1.2])
def test_k_min_needs_p_above_half(p: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        k_min(p, 100, 0.95)


@pytest.mark.parametrize("steps", [0, -3])
def test_k_min_needs_a_step(steps: int) -> None:
    with pytest.raises(ValueError, match="at least one step"):
        k_min(0.9, steps, 0.95)


def test_p_step_grows_with_k() -> None:
    assert p_step(0.8, 1) == pytest.approx(0.8)
    assert p_step(0.8, 1) < p_step(0.8, 2) < p_step(0.8, 5) < 1.0


def test_expected_votes_is_k_at_perfect_accuracy_and_grows_as_p_falls() -> None:
    assert expected_votes_per_step(1.0, 3) == 3
    assert 3 < expected_votes_per_step(0.9, 3) < expected_votes_per_step(0.7, 3)


def test_expected_votes_gamblers_ruin_value() -> None:
    r = 0.25 / 0.75
    assert expected_votes_per_step(0.75, 2) == pytest.approx(2 / 0.5 * (1 - r**2) / (1 + r**2))


def test_expected_cost_formula() -> None:
    cost = expected_cost(0.001, MILLION_STEPS, 3, 0.9978, 0.9)
    assert math.isclose(cost, 0.001 * MILLION_STEPS * 3 / (0.9 * (2 * 0.9978 - 1)))
