"""First-to-ahead-by-k voting over the valid samples of one step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """A decided step: the winning vote key and the tally that decided it."""

    winner: str
    winner_votes: int
    runner_up_votes: int
    total_votes: int


class Tally:
    """Vote counts for one step; each sample id counts at most once.

    The step is decided as soon as one candidate's count is at least
    ``k + max(count of every other candidate)``.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self._counts: Counter[str] = Counter()
        self._seen: set[str] = set()

    def add(self, sample_id: str, vote_key: str) -> bool:
        """Count one vote; returns False (and counts nothing) for a sample id already counted."""
        if sample_id in self._seen:
            return False
        self._seen.add(sample_id)
        self._counts[vote_key] += 1
        return True

    @property
    def total_votes(self) -> int:
        return sum(self._counts.values())

    def top_two(self) -> tuple[tuple[str, int] | None, int]:
        """The leading (key, votes), or None before any vote, and the best rival's votes."""
        ranked = self._counts.most_common(2)
        if not ranked:
            return None, 0
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        return ranked[0], runner_up

    @property
    def lead(self) -> int:
        """Votes the leader has over its best rival (0 with no votes)."""
        leader, runner_up = self.top_two()
        return 0 if leader is None else leader[1] - runner_up

    def votes_still_needed(self) -> int:
        """The fewest further votes that could decide the step (all for the leader)."""
        return max(0, self.k - self.lead)

    def decision(self) -> Decision | None:
        """The decision if some candidate leads every rival by k, else None."""
        leader, runner_up = self.top_two()
        if leader is None or leader[1] < self.k + runner_up:
            return None
        return Decision(
            winner=leader[0],
            winner_votes=leader[1],
            runner_up_votes=runner_up,
            total_votes=self.total_votes,
        )
