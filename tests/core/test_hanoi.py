"""Towers of Hanoi domain: oracle, prompt round trip, strict parser, registry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maker_worker.core.models import Candidate
from maker_worker.domains import TaskOptions, get_domain, known_tasks, register_domain
from maker_worker.domains.hanoi import HanoiDomain, apply_move, format_answer, read_prompt
from maker_worker.errors import ConfigError

State = list[list[int]]
Move = list[int]

CLEAN = "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]"
EXPECTED = Candidate(move=[1, 0, 2], next_state=[[3, 2], [], [1]])


def assert_legal(state: State, move: Move) -> None:
    """Independent legality check: top disk moves onto an empty peg or a larger disk."""
    disk, src, dst = move
    assert src != dst and {src, dst} <= {0, 1, 2}
    assert state[src] and state[src][-1] == disk
    assert not state[dst] or state[dst][-1] > disk


def run_oracle(domain: HanoiDomain) -> tuple[int, State]:
    state, previous, steps = domain.initial_state(), None, 0
    while (candidate := domain.oracle(state, previous)) is not None:
        assert_legal(state, candidate.move)
        state, previous, steps = candidate.next_state, candidate.move, steps + 1
        assert steps <= domain.total_steps
    return steps, state


@pytest.mark.parametrize("n_disks", range(1, 11))
def test_oracle_solves_in_minimal_legal_moves(n_disks: int) -> None:
    domain = HanoiDomain(n_disks)
    steps, state = run_oracle(domain)
    assert steps == domain.total_steps == 2**n_disks - 1
    assert domain.is_solved(state)
    assert state == [[], [], list(range(n_disks, 0, -1))]


@pytest.mark.parametrize(
    ("n_disks", "first_move"),
    [(1, [1, 0, 2]), (2, [1, 0, 1]), (3, [1, 0, 2]), (4, [1, 0, 1]), (5, [1, 0, 2])],
)
def test_first_move_direction_depends_on_parity(n_disks: int, first_move: Move) -> None:
    domain = HanoiDomain(n_disks)
    candidate = domain.oracle(domain.initial_state(), None)
    assert candidate is not None and candidate.move == first_move


@pytest.mark.parametrize(
    ("n_disks", "state", "previous", "expected_move"),
    [
        (3, [[3, 2], [1], []], [2, 0, 2], [1, 1, 0]),  # odd: disk 1 goes 1 -> 0
        (4, [[4, 3], [1], [2]], [2, 0, 2], [1, 1, 2]),  # even: disk 1 goes 1 -> 2
        (3, [[3], [2], [1]], [1, 0, 2], [2, 1, 0]),  # smaller top moves onto the larger one
        (3, [[2], [], [3, 1]], [1, 0, 2], [2, 0, 1]),  # onto the empty peg
        (3, [[], [3, 2], [1]], [1, 0, 2], [2, 1, 0]),  # from the only non-empty peg
    ],
)
def test_oracle_off_trajectory(n_disks: int, state: State, previous: Move, expected_move: Move) -> None:
    domain = HanoiDomain(n_disks)
    before = [list(peg) for peg in state]
    candidate = domain.oracle(state, previous)
    assert candidate is not None and candidate.move == expected_move
    assert candidate.next_state == apply_move(state, expected_move)
    assert state == before


@pytest.mark.parametrize(
    ("state", "previous"),
    [
        ([[], [], [3, 2, 1]], [1, 0, 2]),  # solved
        ([[], [], [3, 2, 1]], [2, 0, 1]),  # solved, whatever the previous move
        ([[3, 2, 1], [], []], [1, 2, 0]),  # disk 1 just moved and the other pegs are empty
        ([[1, 3], [2], []], None),  # disk 1 is not on top anywhere
    ],
)
def test_oracle_returns_none_without_a_move(state: State, previous: Move | None) -> None:
    assert HanoiDomain(3).oracle(state, previous) is None


@pytest.mark.parametrize(
    ("state", "move"),
    [
        ([[3, 2, 1], [], []], [2, 0, 1]),  # not the top disk
        ([[3, 2], [1], []], [2, 0, 1]),  # onto a smaller disk
        ([[3, 2, 1], [], []], [1, 0, 0]),  # same peg
        ([[3, 2, 1], [], []], [1, 0, 3]),  # no such peg
    ],
)
def test_apply_move_rejects_illegal_moves(state: State, move: Move) -> None:
    with pytest.raises(ValueError, match="illegal move"):
        apply_move(state, move)


@pytest.mark.parametrize(
    ("state", "previous"),
    [
        ([[3, 2, 1], [], []], None),
        ([[3, 2], [], [1]], [1, 0, 2]),
        ([[3], [2], [1]], [2, 0, 1]),
        ([[], [], [3, 2, 1]], [1, 0, 2]),
    ],
)
def test_prompt_round_trips(state: State, previous: Move | None) -> None:
    prompt = HanoiDomain(3).build_prompt(state, previous)
    assert read_prompt(prompt.user) == (3, state, previous)
    assert "Current State: " in prompt.user
    assert ("Previous move: none" in prompt.user) == (previous is None)


def test_prompt_round_trips_for_twenty_disks() -> None:
    domain = HanoiDomain(20)
    prompt = domain.build_prompt(domain.initial_state(), None)
    assert read_prompt(prompt.user) == (20, domain.initial_state(), None)
    assert len(prompt.system) + len(prompt.user) < 1200


def test_prompt_states_format_rules_and_direction_by_parity() -> None:
    even, odd = (
        HanoiDomain(4).build_prompt([[4, 3, 2, 1], [], []], None),
        HanoiDomain(3).build_prompt([[3, 2, 1], [], []], None),
    )
    assert "0 -> 1 -> 2 -> 0" in even.system and "0 -> 2 -> 1 -> 0" not in even.system
    assert "0 -> 2 -> 1 -> 0" in odd.system and "0 -> 1 -> 2 -> 0" not in odd.system
    for prompt in (even, odd):
        assert "move = [disk, from_peg, to_peg]" in prompt.system
        assert "next_state = [[...], [...], [...]]" in prompt.system
        assert "smaller" in prompt.system and "peg 2" in prompt.system


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Number of disks: 3\nPrevious move: none\n",
        "Number of disks: 0\nPrevious move: none\nCurrent State: [[], [], []]\nGo.",
        "Number of disks: 3\nPrevious move: none\nCurrent State: [[3, 2], [], []]\nGo.",
        "Number of disks: 3\nPrevious move: [1, 0]\nCurrent State: [[3, 2, 1], [], []]\nGo.",
        "Number of disks: 3\nPrevious move: none\nCurrent State: [[3, 2, 1], [], []] x]\nGo.",
    ],
)
def test_read_prompt_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a Hanoi step prompt"):
        read_prompt(text)


@pytest.mark.parametrize(
    "text",
    [
        CLEAN,
        f"```\n{CLEAN}\n```",
        f"```python\n{CLEAN}\n```\n",
        f"Disk 1 moves along the cycle, so:\n\n{CLEAN}\n\nThat is the answer.",
        "**move** = [1, 0, 2]\n**next_state** = [[3, 2], [], [1]]",
        "**move = [1, 0, 2]**\n`next_state = [[3, 2], [], [1]]`",
        "move=[1,0,2]\nnext_state=[[3,2],[],[1]]",
        "move = [ 1 ,\n 0 , 2 ]\nnext_state = [\n  [3, 2],\n  [],\n  [1]\n]",
        "Move = [1, 0, 2]\nNext_State = [[3, 2], [], [1]]",
        "move = [2, 0, 1]\nwait, no.\nmove = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "next_state = [[3], [2], [1]]\nmove = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [disk, from, to]\nmove = [1, 0, 2]\nnext_state = [[...]]\nnext_state = [[3, 2], [], [1]]",
    ],
    ids=[
        "clean",
        "fence",
        "fence-lang",
        "prose",
        "bold-keys",
        "bold-lines",
        "no-spaces",
        "multiline",
        "capitalised",
        "last-move",
        "last-state",
        "template-echo",
    ],
)
def test_parser_accepts(text: str) -> None:
    assert HanoiDomain(3).parse(text) == EXPECTED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "move = [1, 0, 2]",
        "next_state = [[3, 2], [], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], []]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [1], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [4], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [0], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1], []]",
        "move = [1, 0, 2]\nnext_state = [[3, [2]], [], [1]]",
        "move = [1, 0, 2]\nnext_state = [[[3, 2]], [], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3.0, 2], [], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [true]]",
        'move = [1, 0, 2]\nnext_state = [["3", 2], [], [1]]',
        "move = [1, 0, 2]\nnext_state = [3, 2, 1]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1],]",
        "move = [1.0, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [1, 0]\nnext_state = [[3, 2], [], [1]]",
        "move = [1, 0, 2, 0]\nnext_state = [[3, 2], [], [1]]",
        "move = [[1], 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [4, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [0, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [1, 0, 3]\nnext_state = [[3, 2], [], [1]]",
        "move = [1, -1, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]\nmove = [1, 0]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]\nnext_state = [[3, 2], []]",
        "move: [1, 0, 2]\nnext_state: [[3, 2], [], [1]]",
        "next_move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        "move = (1, 0, 2)\nnext_state = [[3, 2], [], [1]]",
        "move = [1, 0, 2]\nnext_state = " + "[" * 50_000,
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1" + "0" * 5_000 + "]]",
        "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1" + " " * 10_000 + "]]",
        CLEAN + " " * 100_000,
        "move = " * 20_000 + CLEAN,
    ],
)
def test_parser_rejects(text: str) -> None:
    assert HanoiDomain(3).parse(text) is None


def test_parser_is_bounded_on_adversarial_input() -> None:
    domain = HanoiDomain(3)
    for text in ("move " * 19_999, "move =" + " " * 99_000, "next_state = [" + "[]," * 33_000):
        assert domain.parse(text) is None


@pytest.mark.parametrize("n_disks", [1, 2, 3, 8, 20, 30])
def test_parser_accepts_the_oracle_format(n_disks: int) -> None:
    domain = HanoiDomain(n_disks)
    candidate = domain.oracle(domain.initial_state(), None)
    assert candidate is not None
    assert domain.parse(format_answer(candidate)) == candidate


def test_format_answer_is_exact() -> None:
    assert format_answer(EXPECTED) == CLEAN


@st.composite
def candidates(draw: st.DrawFn) -> tuple[int, Candidate]:
    n_disks = draw(st.integers(min_value=1, max_value=30))
    pegs = draw(st.lists(st.integers(0, 2), min_size=n_disks, max_size=n_disks))
    order = draw(st.permutations(range(1, n_disks + 1)))
    state: State = [[], [], []]
    for disk, peg in zip(order, pegs, strict=True):
        state[peg].append(disk)
    move = [draw(st.integers(1, n_disks)), draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    return n_disks, Candidate(move=move, next_state=state)


@given(candidates())
def test_parse_inverts_format_answer(case: tuple[int, Candidate]) -> None:
    n_disks, candidate = case
    assert HanoiDomain(n_disks).parse(format_answer(candidate)) == candidate


@pytest.mark.parametrize(
    ("task", "disks", "name", "steps"),
    [
        ("hanoi", 3, "hanoi-3disk", 7),
        ("hanoi-5disk", None, "hanoi-5disk", 31),
        ("hanoi-5disk", 5, "hanoi-5disk", 31),
        ("HANOI-20disk", None, "hanoi-20disk", 1_048_575),
        ("hanoi-1disks", None, "hanoi-1disk", 1),
    ],
)
def test_registry_builds_hanoi(task: str, disks: int | None, name: str, steps: int) -> None:
    domain = get_domain(task, disks=disks)
    assert (domain.name, domain.total_steps) == (name, steps)


@pytest.mark.parametrize(
    ("task", "disks", "message"),
    [
        ("tetris", None, "unknown task 'tetris'; known tasks: hanoi, hanoi-Ndisk (e.g. hanoi-10disk)"),
        ("hanoi", None, "needs the number of disks"),
        ("hanoi", 0, "between 1 and 30 disks, got 0"),
        ("hanoi", 31, "between 1 and 30 disks, got 31"),
        ("hanoi-0disk", None, "between 1 and 30 disks, got 0"),
        ("hanoi-31disk", None, "between 1 and 30 disks, got 31"),
        ("hanoi-5disk", 6, "means 5 disks but --disks 6"),
    ],
)
def test_registry_rejects_bad_tasks(task: str, disks: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_domain(task, disks=disks)
    assert message in str(info.value)


@pytest.mark.parametrize("n_disks", [0, 31, -1])
def test_domain_rejects_disk_counts_out_of_range(n_disks: int) -> None:
    with pytest.raises(ConfigError, match="--disks"):
        HanoiDomain(n_disks)


def test_register_domain_adds_a_user_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from maker_worker import domains

    monkeypatch.setattr(domains, "_REGISTRY", dict(domains._REGISTRY))
    register_domain("Tiny", lambda options: HanoiDomain(options.disks or 2))
    assert get_domain("tiny").name == "hanoi-2disk"
    assert get_domain("tiny", disks=4).name == "hanoi-4disk"
    assert known_tasks() == ["hanoi", "hanoi-Ndisk", "tiny"]
    with pytest.raises(ConfigError, match="hanoi, hanoi-Ndisk \\(e.g. hanoi-10disk\\), tiny"):
        get_domain("nope")


@pytest.mark.parametrize("name", ["", "  ", "hanoi-7disk"])
def test_register_domain_rejects_bad_names(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot register"):
        register_domain(name, lambda options: HanoiDomain(3))


def test_task_options_default() -> None:
    assert TaskOptions().disks is None
