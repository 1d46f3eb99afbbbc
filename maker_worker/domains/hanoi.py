"""Towers of Hanoi: the reference MAKER task (prompt, strict parser, oracle).

A state is three pegs (0, 1, 2), each listed bottom to top, e.g. ``[[3, 2, 1], [], []]``; the goal is
every disk on peg 2. A move is ``[disk, from_peg, to_peg]``. Each step's prompt carries only the
current state and the previous move; the model follows the classic iterative strategy:

- if the previous move did not move disk 1, move disk 1 one peg along the cycle (0→1→2→0 for an
  even number of disks, 0→2→1→0 for an odd number);
- otherwise make the only legal move that does not involve disk 1.
"""

from __future__ import annotations

import json
import re
from collections import deque

from maker_worker.core.models import Candidate, Prompt
from maker_worker.errors import ConfigError

State = list[list[int]]
"""Three pegs, each listing its disks bottom to top."""

Move = list[int]
"""``[disk, from_peg, to_peg]``."""

MIN_DISKS = 1
MAX_DISKS = 30
MAX_RESPONSE_CHARS = 100_000
"""Longer responses are rejected before any parsing."""

_MAX_LITERAL_CHARS = 4_000
"""Longest bracketed literal the parser reads (30 disks need about 120 characters)."""

_MOVE_KEY = re.compile(r"\bmove\b[\s*_`]*=[\s*_`]*(?=\[)", re.IGNORECASE)
_STATE_KEY = re.compile(r"\bnext_state\b[\s*_`]*=[\s*_`]*(?=\[)", re.IGNORECASE)
_USER_PROMPT = re.compile(
    r"Number of disks: (\d{1,2})\nPrevious move: (none|\[[^\n]*\])\nCurrent State: (\[[^\n]*\])\n"
)

_SYSTEM_TEMPLATE = """\
You solve the Tower of Hanoi one move at a time.
Pegs are numbered 0, 1 and 2. Disks are numbered by size, 1 is the smallest. A state lists the \
three pegs in order, each from bottom to top, so the last number of a peg is its top disk.
Rules: move one disk at a time; only a top disk may move; never put a disk on a smaller disk. \
Goal: every disk on peg 2.
Strategy for this puzzle ({parity} number of disks); follow it exactly:
1. If the previous move did not move disk 1 (or there is none), move disk 1 one peg along the \
cycle {cycle}.
2. Otherwise make the only legal move that does not involve disk 1.
End your answer with exactly these two lines, filled in with numbers:
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]"""

_USER_TEMPLATE = """\
Number of disks: {n}
Previous move: {previous}
Current State: {state}
Give the single next move and the state it leads to."""


class HanoiDomain:
    """Towers of Hanoi with ``n_disks`` disks: ``2**n_disks - 1`` steps, one move each.

    Args:
        n_disks: number of disks, 1 to 30.

    Raises:
        ConfigError: ``n_disks`` is out of range.
    """

    def __init__(self, n_disks: int) -> None:
        if isinstance(n_disks, bool) or not isinstance(n_disks, int) or not MIN_DISKS <= n_disks <= MAX_DISKS:
            raise ConfigError(
                f"hanoi needs between {MIN_DISKS} and {MAX_DISKS} disks, got {n_disks!r}; "
                f"pass --disks N with N in {MIN_DISKS}..{MAX_DISKS}"
            )
        self.n_disks = n_disks
        self.name = f"hanoi-{n_disks}disk"
        even = n_disks % 2 == 0
        self._disk1_step = 1 if even else 2
        self._goal_peg = list(range(n_disks, 0, -1))
        self._system = _SYSTEM_TEMPLATE.format(
            parity="an even" if even else "an odd",
            cycle="0 -> 1 -> 2 -> 0" if even else "0 -> 2 -> 1 -> 0",
        )

    @property
    def total_steps(self) -> int:
        """Number of moves in the optimal solution, ``2**n - 1``."""
        return (1 << self.n_disks) - 1

    def initial_state(self) -> State:
        """All disks on peg 0."""
        return [list(self._goal_peg), [], []]

    def is_solved(self, state: State) -> bool:
        """Whether every disk sits on peg 2 in order."""
        return not state[0] and not state[1] and state[2] == self._goal_peg

    def build_prompt(self, state: State, previous_move: Move | None) -> Prompt:
        """The step prompt: rules and strategy (system), disks, previous move and state (user)."""
        user = _USER_TEMPLATE.format(
            n=self.n_disks,
            previous="none" if previous_move is None else json.dumps(previous_move),
            state=json.dumps(state),
        )
        return Prompt(system=self._system, user=user)

    def parse(self, text: str) -> Candidate | None:
        """Strictly parse a response: the last ``move = [...]`` and the last ``next_state = [...]``.

        Nothing is repaired and move legality is not checked (voting does that).

        Returns:
            The candidate, or None when either part is missing or malformed.
        """
        if len(text) > MAX_RESPONSE_CHARS:
            return None
        move = _as_move(_last_literal(text, _MOVE_KEY, max_depth=1), self.n_disks)
        state = _as_state(_last_literal(text, _STATE_KEY, max_depth=2), self.n_disks)
        if move is None or state is None:
            return None
        return Candidate(move=move, next_state=state)

    def oracle(self, state: State, previous_move: Move | None) -> Candidate | None:
        """The strategy's next move and resulting state, from any state whose pegs end with their tops.

        Returns:
            The true candidate, or None when the puzzle is solved or the strategy has no move.
        """
        if self.is_solved(state):
            return None
        disk1_peg = _peg_topped_by(state, 1)
        if disk1_peg is None:
            return None
        if previous_move is None or previous_move[0] != 1:
            move: Move | None = [1, disk1_peg, (disk1_peg + self._disk1_step) % 3]
        else:
            move = _move_avoiding(state, disk1_peg)
        if move is None:
            return None
        return Candidate(move=move, next_state=apply_move(state, move))


def apply_move(state: State, move: Move) -> State:
    """Return the state after ``move`` (the input is not modified).

    Raises:
        ValueError: the move is illegal in ``state``.
    """
    disk, src, dst = move
    if not (0 <= src <= 2 and 0 <= dst <= 2 and src != dst):
        raise ValueError(f"illegal move {move}: pegs must be two different numbers in 0..2")
    if not state[src] or state[src][-1] != disk:
        raise ValueError(f"illegal move {move}: disk {disk} is not on top of peg {src}")
    if state[dst] and state[dst][-1] < disk:
        raise ValueError(f"illegal move {move}: peg {dst} has a smaller disk on top")
    new_state = [list(peg) for peg in state]
    new_state[dst].append(new_state[src].pop())
    return new_state


def format_answer(candidate: Candidate) -> str:
    """Render a candidate in exactly the answer format the prompt asks for."""
    return f"move = {json.dumps(candidate.move)}\nnext_state = {json.dumps(candidate.next_state)}"


def read_prompt(user_text: str) -> tuple[int, State, Move | None]:
    """Recover ``(n_disks, state, previous_move)`` from a user message made by ``build_prompt``.

    Raises:
        ValueError: the text is not a Hanoi step prompt.
    """
    match = _USER_PROMPT.match(user_text[:MAX_RESPONSE_CHARS])
    if match is None:
        raise ValueError("not a Hanoi step prompt")
    n_disks = int(match.group(1))
    if not MIN_DISKS <= n_disks <= MAX_DISKS:
        raise ValueError(f"not a Hanoi step prompt: {n_disks} disks is out of range")
    state = _as_state(_whole_literal(match.group(3), max_depth=2), n_disks)
    if state is None:
        raise ValueError("not a Hanoi step prompt: bad Current State")
    if match.group(2) == "none":
        return n_disks, state, None
    previous = _as_move(_whole_literal(match.group(2), max_depth=1), n_disks)
    if previous is None:
        raise ValueError("not a Hanoi step prompt: bad Previous move")
    return n_disks, state, previous


def _peg_topped_by(state: State, disk: int) -> int | None:
    """The peg whose top disk is ``disk``, if any."""
    for index, peg in enumerate(state):
        if peg and peg[-1] == disk:
            return index
    return None


def _move_avoiding(state: State, disk1_peg: int) -> Move | None:
    """The only legal move between the two pegs that do not hold disk 1, if any."""
    a, b = (peg for peg in range(3) if peg != disk1_peg)
    if not state[a] and not state[b]:
        return None
    if not state[b] or (state[a] and state[a][-1] < state[b][-1]):
        return [state[a][-1], a, b]
    return [state[b][-1], b, a]


def _last_literal(text: str, key: re.Pattern[str], *, max_depth: int) -> object | None:
    """Decode the bracketed literal after the last match of ``key``, or None."""
    last = deque(key.finditer(text), maxlen=1)
    if not last:
        return None
    start = last[0].end()
    end = _balanced_end(text, start, max_depth)
    return None if end is None else _decode(text[start:end])


def _whole_literal(fragment: str, *, max_depth: int) -> object | None:
    """Decode ``fragment`` if it is exactly one bracketed literal, else None."""
    end = _balanced_end(fragment, 0, max_depth)
    return None if end != len(fragment) else _decode(fragment)


def _balanced_end(text: str, start: int, max_depth: int) -> int | None:
    """Index just past the bracket group opening at ``start``; None if too deep, long or unclosed."""
    depth = 0
    for index in range(start, min(len(text), start + _MAX_LITERAL_CHARS)):
        char = text[index]
        if char == "[":
            depth += 1
            if depth > max_depth:
                return None
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _decode(fragment: str) -> object | None:
    """JSON-decode a bracketed fragment, or None."""
    try:
        value: object = json.loads(fragment)
    except ValueError:
        return None
    return value


def _is_int(value: object) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _as_move(value: object, n_disks: int) -> Move | None:
    """``value`` as a move of three ints (disk 1..n, pegs 0..2), or None."""
    if not isinstance(value, list) or len(value) != 3 or not all(_is_int(item) for item in value):
        return None
    disk, src, dst = value
    if not (1 <= disk <= n_disks and 0 <= src <= 2 and 0 <= dst <= 2):
        return None
    return [disk, src, dst]


def _as_state(value: object, n_disks: int) -> State | None:
    """``value`` as three flat lists of ints holding each disk 1..n exactly once, or None."""
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(peg, list) for peg in value):
        return None
    disks = [disk for peg in value for disk in peg]
    if len(disks) != n_disks or not all(_is_int(disk) for disk in disks):
        return None
    if sorted(disks) != list(range(1, n_disks + 1)):
        return None
    return [list(peg) for peg in value]
