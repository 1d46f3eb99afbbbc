"""The contract every task domain (Hanoi, user domains) implements."""

from __future__ import annotations

from typing import Protocol

from maker_worker.core.models import Candidate, JSONValue, Prompt


class Domain(Protocol):
    """A long task decomposed into steps, each decided from the current state alone."""

    name: str
    """Canonical task name, e.g. ``hanoi-10disk``."""

    @property
    def total_steps(self) -> int:
        """Number of steps the job takes."""
        ...

    def initial_state(self) -> JSONValue:
        """State before step 0."""
        ...

    def build_prompt(self, state: JSONValue, previous_move: JSONValue | None) -> Prompt:
        """The prompt for the step that starts from ``state`` (no history beyond the last move)."""
        ...

    def parse(self, text: str) -> Candidate | None:
        """Strictly parse a model response; None means red-flag it as bad format."""
        ...

    def oracle(self, state: JSONValue, previous_move: JSONValue | None) -> Candidate | None:
        """The true answer for the step, or None when the domain has no oracle for it."""
        ...
