"""Calibration maths and case drawing: Wilson intervals, the k plan, oracle-walked random steps."""

from __future__ import annotations

import random

import pytest

from maker_worker.calibrate import Case, count, random_cases
from maker_worker.core.calibration import CalibrationCounts, plan, wilson_interval
from maker_worker.core.models import Candidate
from maker_worker.core.scaling import expected_votes_per_step, k_min
from maker_worker.domains import get_domain
from maker_worker.domains.hanoi import format_answer
from maker_worker.jobs import SampleResult


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962), (95, 100, 0.8882, 0.9785)],
)
def test_wilson_interval_matches_published_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-4)


def counts(correct: int, wrong: int, red_flags: int = 0, errors: int = 0) -> CalibrationCounts:
    return CalibrationCounts(correct, wrong, red_flags, errors, tokens_in=0, tokens_out=0)


def test_plan_uses_the_lower_bound_for_the_recommended_k() -> None:
    result = plan(
        counts(900, 100, red_flags=100, errors=7), steps=1_048_575, target=0.95, cost_per_sample_usd=0.001
    )
    assert result.p == 0.9
    assert result.red_flag_rate == pytest.approx(100 / 1100)
    assert result.k_min == k_min(0.9, 1_048_575, 0.95)
    assert result.k_conservative == k_min(result.p_low, 1_048_575, 0.95)
    assert result.k_conservative is not None and result.k_conservative >= result.k_min
    valid_share = 1000 / 1100
    assert result.expected_samples_per_step == pytest.approx(
        expected_votes_per_step(0.9, result.k_conservative) / valid_share
    )
    assert result.expected_cost_usd == pytest.approx(
        0.001 * 1_048_575 * result.k_conservative / (valid_share * 0.8)
    )


def test_no_k_when_p_may_be_half_or_less() -> None:
    result = plan(counts(55, 45), steps=7, target=0.95, cost_per_sample_usd=0.0)
    assert result.k_min is not None and result.k_conservative is None  # p = 0.55 but its bound is < 0.5
    assert result.expected_cost_usd is None
    assert plan(counts(40, 60), steps=7, target=0.95, cost_per_sample_usd=0.0).k_min is None


def test_plan_needs_a_surviving_answer_and_a_sane_target() -> None:
    with pytest.raises(ValueError, match="no answer survived"):
        plan(counts(0, 0, red_flags=5, errors=3), steps=7, target=0.95, cost_per_sample_usd=0.0)
    with pytest.raises(ValueError, match="target"):
        plan(counts(9, 1), steps=7, target=1.0, cost_per_sample_usd=0.0)


def test_random_cases_are_the_oracle_states_of_the_drawn_steps() -> None:
    domain = get_domain("hanoi-5disk")
    replay, state, previous = [], domain.initial_state(), None
    for _ in range(domain.total_steps):
        truth = domain.oracle(state, previous)
        assert truth is not None
        replay.append((state, previous, truth))
        state, previous = truth.next_state, truth.move
    cases = random_cases(domain, 200, random.Random(7))
    assert len(cases) == 200 and len({case.step for case in cases}) > 20
    for case in cases:
        assert (case.state, case.previous_move, case.truth) == replay[case.step]
    assert [case.step for case in random_cases(domain, 200, random.Random(7))] == [
        case.step for case in cases
    ]


def test_count_judges_votes_against_the_oracle() -> None:
    domain = get_domain("hanoi-3disk")
    (case,) = random_cases(domain, 1, random.Random(1))
    wrong = Candidate(move=[9, 9, 9], next_state=case.truth.next_state)
    parsed_right = domain.parse(format_answer(case.truth))
    assert parsed_right is not None

    def result(**fields: object) -> tuple[Case, SampleResult]:
        base = {
            "sample_id": "s",
            "temperature": 0.1,
            "provider": "sim",
            "model": "m",
            "tokens_in": 10,
            "tokens_out": 3,
        }
        return case, SampleResult.model_validate({**base, **fields})

    tally = count(
        [
            result(vote_key=parsed_right.vote_key),
            result(vote_key=wrong.vote_key),
            result(red_flag="too_long"),
            result(error="boom", error_kind="provider_unavailable", tokens_in=0, tokens_out=0),
        ]
    )
    assert tally == CalibrationCounts(correct=1, wrong=1, red_flags=1, errors=1, tokens_in=30, tokens_out=9)
