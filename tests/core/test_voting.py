from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maker_worker.core.voting import Tally


def vote_all(tally: Tally, keys: list[str]) -> None:
    for index, key in enumerate(keys):
        tally.add(f"s{index}", key)


@pytest.mark.parametrize(
    ("k", "votes", "winner"),
    [
        (1, ["a"], "a"),
        (2, ["a"], None),
        (2, ["a", "a"], "a"),
        (2, ["a", "b", "a"], None),
        (2, ["a", "b", "a", "a"], "a"),
        (3, ["a", "a", "b", "a"], None),
        (3, ["a", "a", "b", "a", "a"], "a"),
        (3, ["a", "b", "c", "a", "a", "a"], "a"),
        (3, ["b", "b", "b"], "b"),
        (3, ["a", "b", "a", "b", "c", "c", "c", "c"], None),
    ],
)
def test_first_to_ahead_by_k(k: int, votes: list[str], winner: str | None) -> None:
    tally = Tally(k)
    vote_all(tally, votes)
    decision = tally.decision()
    assert (decision.winner if decision else None) == winner


def test_decision_reports_the_tally() -> None:
    tally = Tally(2)
    vote_all(tally, ["a", "b", "a", "a"])
    decision = tally.decision()
    assert decision is not None
    assert (decision.winner_votes, decision.runner_up_votes, decision.total_votes) == (3, 1, 4)


def test_a_sample_id_counts_once() -> None:
    tally = Tally(2)
    assert tally.add("job:0:1.0", "a")
    assert not tally.add("job:0:1.0", "a")
    assert tally.total_votes == 1
    assert tally.decision() is None


def test_votes_still_needed_is_k_minus_lead() -> None:
    tally = Tally(3)
    assert tally.votes_still_needed() == 3
    vote_all(tally, ["a", "a", "b"])
    assert tally.lead == 1
    assert tally.votes_still_needed() == 2


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        Tally(0)


@given(st.integers(1, 5), st.lists(st.sampled_from("abc"), max_size=40))
def test_a_vote_for_the_leader_never_undoes_a_decision(k: int, votes: list[str]) -> None:
    tally = Tally(k)
    vote_all(tally, votes)
    decision = tally.decision()
    if decision is not None:
        tally.add("extra", decision.winner)
        again = tally.decision()
        assert again is not None and again.winner == decision.winner


@given(st.integers(1, 5), st.lists(st.sampled_from("abc"), max_size=40))
def test_decided_means_leader_ahead_by_k(k: int, votes: list[str]) -> None:
    tally = Tally(k)
    vote_all(tally, votes)
    decision = tally.decision()
    counts = {key: votes.count(key) for key in set(votes)}
    best = max(counts.values(), default=0)
    leaders = [key for key, count in counts.items() if count == best]
    rival = max((count for key, count in counts.items() if key != leaders[0]), default=0) if leaders else 0
    assert (decision is not None) == (bool(leaders) and best >= k + rival)
