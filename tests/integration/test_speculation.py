"""Speculative steps: asked from the head's leader early, re-asked when another answer wins."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from maker_worker.config import Settings
from maker_worker.coordinator import Coordinator, StepBook, basis_of
from maker_worker.core.models import Candidate
from maker_worker.core.scaling import k_min
from maker_worker.domains import get_domain
from maker_worker.domains.hanoi import HanoiDomain
from maker_worker.events import EventLog
from maker_worker.jobs import JobStatus, SampleRequest, SampleResult
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

RIGHT = Candidate(move=[1, 0, 2], next_state=[[3, 2], [], [1]])
WRONG = Candidate(move=[1, 0, 1], next_state=[[3, 2], [1], []])


def vote(sample_id: str, candidate: Candidate, basis: str) -> SampleResult:
    return SampleResult(sample_id=sample_id, vote_key=candidate.vote_key, basis=basis)


def test_a_book_counts_votes_only_from_its_basis_and_a_rebase_keeps_what_was_paid() -> None:
    book = StepBook(step=1, k=2, state=[[3, 2, 1], [], []], previous_move=None, opening=1, opened_s=0.0)
    book.in_flight = {"a": 9.0, "b": 9.0}
    book.absorb(vote("a", RIGHT, book.basis))
    book.absorb(vote("x", RIGHT, "another-basis"))  # asked from a state this book no longer holds
    assert (book.tally.total_votes, book.discarded_votes, book.results, book.leader()) == (1, 1, 2, RIGHT)
    book.cursor = "17-0"
    book.rebase([[3, 2], [], [1]], [1, 0, 2])
    assert book.basis == basis_of([[3, 2], [], [1]], [1, 0, 2])
    assert (book.tally.total_votes, book.in_flight, book.results, book.cursor) == (0, {}, 2, "17-0")
    assert book.fresh and book.leader() is None
    book.absorb(vote("b", WRONG, "stale"))
    book.absorb(vote("c", WRONG, book.basis))
    book.absorb(vote("d", WRONG, book.basis))
    assert book.decision is not None and book.decision.winner == WRONG.vote_key


def test_a_tied_head_has_no_leader_to_speculate_from() -> None:
    book = StepBook(step=0, k=3, state=[[3, 2, 1], [], []], previous_move=None, opening=1, opened_s=0.0)
    book.absorb(vote("a", RIGHT, book.basis))
    book.absorb(vote("b", WRONG, book.basis))
    assert book.leader() is None


class FirstAnswerWrong:
    """Stands in for the workers: the first sample of every step opening answers at once and
    wrongly (so speculation follows a wrong leader); every other sample answers right 30 ms later.
    """

    def __init__(self, store: RedisStore, domain: HanoiDomain) -> None:
        self.store = store
        self.domain = domain
        self.timers: list[threading.Timer] = []

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        for request in requests:
            truth = self.domain.oracle(request.state, request.previous_move)  # type: ignore[arg-type]
            first = request.sample_id.endswith(".0")
            if truth is None:
                result = SampleResult(sample_id=request.sample_id, red_flag="bad_format", basis=request.basis)
            else:
                answer = Candidate(move=truth.move, next_state=truth.next_state[::-1]) if first else truth
                result = vote(request.sample_id, answer, request.basis)
            timer = threading.Timer(
                0.0 if first else 0.03, self.store.record_result, [request.job_id, request.step, result]
            )
            self.timers.append(timer)
            timer.start()


def test_a_wrong_leader_is_followed_then_dropped_and_the_job_is_right(redis_url: str, tmp_path: Path) -> None:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=3)
    assert isinstance(domain, HanoiDomain)
    job_id = submit(store, domain, make_spec(Settings(redis_url=redis_url, llm_provider="sim"), domain, 2))
    dispatcher = FirstAnswerWrong(store, domain)
    events = EventLog(tmp_path / "events.jsonl")
    job = Coordinator(store, dispatcher, events, speculate=True).run(job_id)
    events.close()
    for timer in dispatcher.timers:
        timer.join()
    summary = finish(store, job)
    assert (summary.status, summary.steps_done, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 7, 0)
    # Votes asked from a wrong leader's state were paid for (samples) but never counted as votes.
    assert summary.discarded_votes > 0
    assert (
        summary.samples == summary.votes + summary.red_flags + summary.discarded_votes + summary.late_samples
    )
    completed = [
        json.loads(line)["sample_id"]
        for line in (tmp_path / "events.jsonl").read_text().splitlines()
        if '"event":"SampleCompleted"' in line
    ]
    assert [sample_id for sample_id, seen in Counter(completed).items() if seen > 1] == []


@pytest.mark.parametrize("speculate", [True, False])
def test_low_p_job_is_right_with_and_without_speculation(
    redis_url: str,
    tmp_path: Path,
    sim_server: Callable[..., str],
    workers: Callable[..., None],
    speculate: bool,
) -> None:
    workers(2, sim_url=sim_server(p=0.75, seed=21))
    settings = Settings(
        redis_url=redis_url, llm_provider="sim", data_dir=tmp_path, max_retries=2, speculate=speculate
    )
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=6)
    job_id = submit(store, domain, make_spec(settings, domain, k_min(0.75, 63, 0.95)))
    summary = finish(store, *drive(settings, redis_url, job_id))
    assert (summary.status, summary.steps_done, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 63, 0)
    assert (
        summary.samples == summary.votes + summary.red_flags + summary.discarded_votes + summary.late_samples
    )
    # At p = 0.75 a first answer is wrong at a quarter of the steps: some speculation is dropped.
    assert summary.discarded_votes > 0 if speculate else summary.discarded_votes == 0
