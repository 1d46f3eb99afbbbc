"""The simulator's answer generator: pure functions from a step prompt and an RNG to a response.

:func:`generate_answer` reads the Hanoi step prompt, asks the oracle for the true answer and
returns it with probability ``p``, a plausible wrong answer otherwise, or red-flag-worthy output
(rambling, broken format, cut off) at ``red_flag_rate``. :func:`rng_for` derives each answer's
RNG from the seed, the prompt text, the temperature and how many times that prompt was asked
before at that temperature, so answers are reproducible and independent of thread scheduling.
No I/O here: the HTTP layer is :mod:`maker_worker.sim.server`.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from itertools import permutations

from maker_worker.core.models import Candidate
from maker_worker.domains.hanoi import HanoiDomain, State, apply_move, format_answer, read_prompt
from maker_worker.errors import ConfigError

CHARS_PER_TOKEN = 4
RAMBLING_TOKENS = (1_000, 1_500)
"""Rambling answers carry this many tokens of reasoning, far past the 750-token red flag."""


@dataclass(frozen=True)
class SimConfig:
    """How the simulated model and its service behave.

    Attributes:
        p: chance that a non-red-flagged answer is correct.
        red_flag_rate: chance that an answer is red-flag-worthy (rambling, broken or cut off).
        latency_ms: time each chat request takes.
        seed: varies every answer; the same seed replays the same answers.
        rpm_limit: requests per sliding 60 s window the server admits (None: unlimited); more
            get 429 with the format's rate-limit headers.
        tpm_limit: tokens (prompt and completion) per sliding 60 s window (None: unlimited).
        error_rate: chance that an admitted request gets an injected server error instead of an
            answer (500 JSON, 502 HTML page, 503, and 529 ``overloaded_error`` for Anthropic).
        slow_rate: chance that an answer is delayed by ``slow_ms`` more.
        slow_ms: the extra delay of a slow answer.
    """

    p: float = 0.95
    red_flag_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int = 0
    rpm_limit: float | None = None
    tpm_limit: float | None = None
    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 2000.0

    def __post_init__(self) -> None:
        for name, flag in _SHARES.items():
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"simulator {name} must be in 0..1, got {value}{flag}")
        for name, flag in _DURATIONS.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"simulator {name} must be a number >= 0, got {value}{flag}")
        for name in ("rpm_limit", "tpm_limit"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"simulator {name} must be a number > 0 or unset, got {value}")


_SHARES = {
    "p": "; set --sim-p",
    "red_flag_rate": "; set --sim-red-flag-rate",
    "error_rate": "",
    "slow_rate": "",
}
"""SimConfig fields that are probabilities, with the CLI flag setting each (if any)."""
_DURATIONS = {"latency_ms": "; set --sim-latency-ms", "slow_ms": ""}
"""SimConfig fields that are delays in milliseconds (finite, at least 0), likewise."""


class NotAStepPromptError(ValueError):
    """The prompt is not a task step prompt the simulator can answer."""


@dataclass(frozen=True)
class SimAnswer:
    """One generated response: its text, finish reason (``stop``/``length``) and kind."""

    text: str
    finish_reason: str
    kind: str
    """``correct``, ``wrong``, ``rambling``, ``broken``, ``cut_off`` or ``no_move``."""


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def rng_for(seed: int, prompt_text: str, temperature: float, ask_index: int) -> random.Random:
    """The RNG for the ``ask_index``-th request of ``prompt_text`` at ``temperature``."""
    material = f"{seed}\x1f{float(temperature)!r}\x1f{ask_index}\x1f{prompt_text}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:16], "big"))


def generate_answer(
    config: SimConfig, user_text: str, max_tokens: int | None, rng: random.Random
) -> SimAnswer:
    """Answer a Hanoi step prompt like a model of accuracy ``config.p`` would.

    Raises:
        NotAStepPromptError: ``user_text`` is not a Hanoi step prompt.
    """
    try:
        n_disks, state, previous_move = read_prompt(user_text)
    except ValueError as exc:
        raise NotAStepPromptError(f"the simulator only answers maker Hanoi step prompts ({exc})") from exc
    truth = HanoiDomain(n_disks).oracle(state, previous_move)
    if truth is None:
        answer = SimAnswer("The puzzle is already solved or stuck; there is no next move.", "stop", "no_move")
    elif rng.random() < config.red_flag_rate:
        answer = _red_flag_answer(state, truth, rng)
    elif rng.random() < config.p:
        answer = SimAnswer(_with_reasoning(truth, rng), "stop", "correct")
    else:
        answer = SimAnswer(_with_reasoning(_wrong_candidate(state, truth, rng), rng), "stop", "wrong")
    return _within(answer, max_tokens)


def _within(answer: SimAnswer, max_tokens: int | None) -> SimAnswer:
    """Cut ``answer`` to ``max_tokens`` like a server does, finishing with ``length``."""
    if max_tokens is None or count_tokens(answer.text) <= max_tokens:
        return answer
    return SimAnswer(answer.text[: max_tokens * CHARS_PER_TOKEN], "length", answer.kind)


def _with_reasoning(candidate: Candidate, rng: random.Random) -> str:
    disk, src, dst = candidate.move
    lead = rng.choice(
        (
            "Following the strategy, the next step moves disk {d} from peg {s} to peg {t}.",
            "Applying the rule for this step: disk {d} goes from peg {s} to peg {t}.",
            "The strategy says to take disk {d} off peg {s} and put it on peg {t}.",
        )
    )
    return lead.format(d=disk, s=src, t=dst) + "\n" + format_answer(candidate)


def _legal_moves(state: State) -> list[list[int]]:
    return [
        [state[src][-1], src, dst]
        for src, dst in permutations(range(3), 2)
        if state[src] and (not state[dst] or state[dst][-1] > state[src][-1])
    ]


def _wrong_candidate(state: State, truth: Candidate, rng: random.Random) -> Candidate:
    """A wrong answer that still parses: another legal move, or the right move with a wrong state."""
    others = [move for move in _legal_moves(state) if move != truth.move]
    if others and rng.random() < 0.5:
        move = rng.choice(others)
        return Candidate(move=move, next_state=apply_move(state, move))
    wrong_state = [list(peg) for peg in truth.next_state]
    src = rng.choice([index for index, peg in enumerate(wrong_state) if peg])
    dst = rng.choice([index for index in range(3) if index != src])
    wrong_state[dst].append(wrong_state[src].pop())
    return Candidate(move=truth.move, next_state=wrong_state)


def _red_flag_answer(state: State, truth: Candidate, rng: random.Random) -> SimAnswer:
    kind = rng.choice(("rambling", "broken", "cut_off"))
    answer = _with_reasoning(truth, rng)
    if kind == "rambling":
        return SimAnswer(_rambling(state, rng) + answer, "stop", kind)
    if kind == "broken":
        return SimAnswer(_broken(truth, answer, rng), "stop", kind)
    reasoning_chars = len(answer) - len(format_answer(truth))
    return SimAnswer(answer[: rng.randrange(reasoning_chars + 1, len(answer))], "length", kind)


def _rambling(state: State, rng: random.Random) -> str:
    """Reasoning text of ``RAMBLING_TOKENS`` size that never states an answer."""
    target_chars = rng.randint(*RAMBLING_TOKENS) * CHARS_PER_TOKEN
    disks = [disk for peg in state for disk in peg]
    text = ""
    while len(text) < target_chars:
        peg = rng.randrange(3)
        text += rng.choice(
            (
                f"Let me look at peg {peg} again: it holds {state[peg]} from bottom to top. ",
                f"Disk {rng.choice(disks)} must never sit on a smaller disk, so I check that again. ",
                "Wait, I should recount where disk 1 went on the previous move before deciding. ",
                f"Maybe peg {peg} is the right target, but let me reconsider the cycle once more. ",
            )
        )
    return text + "\n"


def _broken(truth: Candidate, answer: str, rng: random.Random) -> str:
    """The answer with a disk missing from ``next_state``, or without its ``next_state`` line."""
    if rng.random() < 0.5:
        return answer.splitlines()[0] + "\n" + format_answer(truth).splitlines()[0]
    state = [list(peg) for peg in truth.next_state]
    peg = rng.choice([index for index, disks in enumerate(state) if disks])
    del state[peg][rng.randrange(len(state[peg]))]
    return answer.replace(format_answer(truth), format_answer(Candidate(truth.move, state)))
