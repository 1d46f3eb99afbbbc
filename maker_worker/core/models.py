"""Value objects shared by the core, the domains and the providers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

JSONValue = Any
"""A value that round-trips through ``json`` (lists, dicts, ints, strings)."""


class FinishReason(StrEnum):
    """Why the model stopped, normalised across providers."""

    STOP = "stop"
    LENGTH = "length"
    OTHER = "other"


class RedFlag(StrEnum):
    """Why a sample was discarded instead of counted as a vote."""

    TOO_LONG = "too_long"
    TRUNCATED = "truncated"
    BAD_FORMAT = "bad_format"


@dataclass(frozen=True)
class Completion:
    """One model response, normalised across providers."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class Prompt:
    """A chat prompt: a system message and one user message."""

    system: str
    user: str


@dataclass(frozen=True)
class Candidate:
    """One parsed answer for a step: the action and the state it leads to."""

    move: JSONValue
    next_state: JSONValue

    @property
    def vote_key(self) -> str:
        """Canonical JSON of ``[move, next_state]``; equal answers share one key."""
        return json.dumps([self.move, self.next_state], separators=(",", ":"))

    @classmethod
    def from_vote_key(cls, vote_key: str) -> Candidate:
        move, next_state = json.loads(vote_key)
        return cls(move=move, next_state=next_state)
