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
from maker_worker.jobs import JobStatus, JobSummary, SampleRequest, SampleResult
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

RIGHT = Candidate(move=[1, 0, 2], next_state=[[3, 2], [], [1]])
WRONG = Candidate(move=[1, 0, 1], next_state=[[3, 2], [1], []])


def vote(sample_id: str, candidate: Candidate, basis: str, temperature: float = 0.1) -> SampleResult:
    return SampleResult(
        sample_id=sample_id, vote_key=candidate.vote_key, basis=basis, temperature=temperature
    )


def new_book(k: int = 2) -> StepBook:
    return StepBook(
        step=1,
        k=k,
        cold_temperature=0.0,
        state=[[3, 2, 1], [], []],
        previous_move=None,
        opening=1,
        opened_s=0.0,
    )


def test_a_book_counts_votes_only_from_its_basis_and_a_rebase_keeps_what_was_paid() -> None:
    book = new_book()
    book.in_flight = {"a": 9.0, "b": 9.0}
    book.asked = 2
    book.absorb(vote("a", RIGHT, book.basis))
    book.absorb(vote("x", RIGHT, "another-basis"))  # asked from a state this book no longer holds
    assert (book.tally.total_votes, book.discarded_votes, book.results, book.leader()) == (1, 1, 2, RIGHT)
    book.cursor = "17-0"
    book.rebase([[3, 2], [], [1]], [1, 0, 2], now_s=5.0)
    assert book.basis == basis_of([[3, 2], [], [1]], [1, 0, 2])
    assert (book.tally.total_votes, book.in_flight, book.results, book.cursor) == (0, {}, 2, "17-0")
    assert (book.discarded_votes, book.asked, book.opened_s, book.leader()) == (2, 0, 5.0, None)
    book.absorb(vote("b", WRONG, "stale"))
    book.absorb(vote("c", WRONG, book.basis))
    book.absorb(vote("d", WRONG, book.basis))
    assert book.decision is not None and book.decision.winner == WRONG.vote_key


def test_a_tied_head_has_no_leader_to_speculate_from() -> None:
    book = new_book(k=3)
    book.absorb(vote("a", RIGHT, book.basis))
    book.absorb(vote("b", WRONG, book.basis))
    assert book.leader() is None


def test_one_basis_counts_one_vote_at_the_deterministic_first_temperature() -> None:
    book = new_book()
    assert book.first_sample_is_cold()
    book.absorb(vote("a", RIGHT, book.basis, temperature=0.0))
    book.absorb(vote("b", RIGHT, book.basis, temperature=0.0))  # e.g. re-asked after A -> B -> A
    assert (book.tally.total_votes, book.discarded_votes, book.decision) == (1, 1, None)
    assert not book.first_sample_is_cold()
    book.absorb(vote("c", RIGHT, book.basis))
    assert book.decision is not None and book.decision.winner_votes == 2


def test_failed_calls_do_not_count_against_the_sample_cap() -> None:
    book = new_book()
    book.in_flight, book.asked = {"a": 9.0, "b": 9.0}, 2
    book.absorb(SampleResult(sample_id="a", error="503", error_kind="provider_unavailable", basis=book.basis))
    book.absorb(SampleResult(sample_id="z", error="503", error_kind="provider_unavailable", basis=book.basis))
    assert (book.asked, book.fatal_error, book.api_errors) == (1, None, 2)  # "z" was not ours
    book.absorb(
        SampleResult(sample_id="b", error="over budget", error_kind="budget_exhausted", basis=book.basis)
    )
    assert book.api_errors == 2 and book.fatal_error is not None  # no call was made: no API error


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
                result = vote(request.sample_id, answer, request.basis, request.temperature)
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
    # How much speculation is dropped depends on timing (test_a_wrong_leader_... shows that it is);
    # without speculation nothing is.
    assert speculate or summary.discarded_votes == 0


Answer = Callable[[SampleRequest], "tuple[float, SampleResult]"]


class Scripted:
    """Stands in for the workers: ``answer(request)`` gives the delay and the result to record."""

    def __init__(self, store: RedisStore, answer: Answer) -> None:
        self.store = store
        self.answer = answer
        self.requests: list[SampleRequest] = []
        self.timers: list[threading.Timer] = []

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        for request in requests:
            self.requests.append(request)
            delay_s, result = self.answer(request)
            timer = threading.Timer(delay_s, self.store.record_result, [request.job_id, request.step, result])
            self.timers.append(timer)
            timer.start()

    def join(self) -> None:
        for timer in self.timers:
            timer.join()


def truths(domain: HanoiDomain) -> list[tuple[object, object, Candidate]]:
    """(state, previous move, true answer) of every step."""
    replay, state, previous = [], domain.initial_state(), None
    for _ in range(domain.total_steps):
        truth = domain.oracle(state, previous)
        assert truth is not None
        replay.append((state, previous, truth))
        state, previous = truth.next_state, truth.move
    return replay


def scripted_job(
    redis_url: str,
    tmp_path: Path,
    make_answer: Callable[[list[tuple[object, object, Candidate]]], Answer],
    **config: object,
) -> tuple[JobSummary, Scripted, str]:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=3)
    assert isinstance(domain, HanoiDomain)
    settings = Settings(redis_url=redis_url, **{"llm_provider": "sim", **config})  # type: ignore[arg-type]
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    dispatcher = Scripted(store, make_answer(truths(domain)))
    events = EventLog(tmp_path / "events.jsonl")
    job = Coordinator(store, dispatcher, events, speculate=True).run(job_id)
    events.close()
    dispatcher.join()
    return finish(store, job), dispatcher, job_id


def right(request: SampleRequest, truth: Candidate, delay_s: float = 0.0) -> tuple[float, SampleResult]:
    result = vote(request.sample_id, truth, request.basis, request.temperature)
    return delay_s, result.model_copy(update={"provider": request.provider, "model": request.model})


def test_quota_seen_first_by_the_speculative_step_falls_back_without_burning_its_cap(
    redis_url: str, tmp_path: Path
) -> None:
    def make_answer(replay: list[tuple[object, object, Candidate]]) -> Answer:
        def answer(request: SampleRequest) -> tuple[float, SampleResult]:
            truth = replay[request.step][2]
            if request.provider == "sim" or request.step == 0:
                return right(request, truth, 0.0 if request.sample_id.endswith(".0") else 0.05)
            quota = SampleResult(
                sample_id=request.sample_id,
                error="insufficient_quota",
                error_kind="quota_exhausted",
                provider=request.provider,
                model=request.model,
                basis=request.basis,
            )
            return 0.0, quota

        return answer

    summary, _dispatcher, _job_id = scripted_job(
        redis_url,
        tmp_path,
        make_answer,
        llm_provider="openai",
        fallback_providers=["sim"],
        max_samples_per_step=10,
    )
    assert (summary.status, summary.steps_done, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 7, 0)
    assert summary.provider_fallbacks == ["openai:gpt-4.1-mini -> sim:sim-hanoi (quota_exhausted)"]


def test_samples_asked_from_a_lost_basis_do_not_count_against_the_cap(redis_url: str, tmp_path: Path) -> None:
    def make_answer(replay: list[tuple[object, object, Candidate]]) -> Answer:
        def answer(request: SampleRequest) -> tuple[float, SampleResult]:
            state, _previous, truth = replay[request.step]
            if request.state != state:  # asked from the wrong leader's state: rambles
                return 0.0, SampleResult(
                    sample_id=request.sample_id, red_flag="too_long", basis=request.basis
                )
            if request.step == 0 and request.sample_id.endswith(".0"):
                wrong = Candidate(move=truth.move, next_state=truth.next_state[::-1])  # type: ignore[index]
                return right(request, wrong)
            return right(request, truth, 0.05 if request.step == 0 else 0.0)

        return answer

    summary, _dispatcher, _job_id = scripted_job(redis_url, tmp_path, make_answer, max_samples_per_step=6)
    assert (summary.status, summary.steps_done, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 7, 0)
    assert summary.red_flags >= 6  # the speculative step used its whole cap on the wrong state


def test_a_step_opened_late_first_reads_what_an_earlier_coordinator_left(
    redis_url: str, tmp_path: Path
) -> None:
    domain = get_domain("hanoi", disks=3)
    assert isinstance(domain, HanoiDomain)
    replay = truths(domain)
    state, previous, truth = replay[1]
    basis = basis_of(state, previous)  # type: ignore[arg-type]
    store = RedisStore.from_url(redis_url)
    settings = Settings(redis_url=redis_url, llm_provider="sim")
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    for n in range(2):  # a killed coordinator's samples of step 1, back after it died
        store.record_result(job_id, 1, vote(f"{job_id}:1:9.9.{n}", truth, basis))
    dispatcher = Scripted(store, lambda request: right(request, replay[request.step][2]))
    events = EventLog(tmp_path / "events.jsonl")
    job = Coordinator(store, dispatcher, events, speculate=True).run(job_id)
    events.close()
    dispatcher.join()
    assert (finish(store, job).status, finish(store, job).errors_vs_oracle) == (JobStatus.SUCCEEDED, 0)
    assert [request for request in dispatcher.requests if request.step == 1] == []


def test_with_one_temperature_for_all_samples_every_agreeing_vote_counts() -> None:
    book = StepBook(
        step=0,
        k=3,
        cold_temperature=None,
        state=[[3, 2, 1], [], []],
        previous_move=None,
        opening=1,
        opened_s=0.0,
    )
    for n in range(3):
        book.absorb(vote(f"s{n}", RIGHT, book.basis, temperature=0.0))
    assert book.decision is not None and (book.decision.winner_votes, book.discarded_votes) == (3, 0)
    assert not book.first_sample_is_cold()


def test_a_speculative_step_gets_at_most_the_cap_over_all_its_bases(redis_url: str, tmp_path: Path) -> None:
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=3)
    settings = Settings(redis_url=redis_url, llm_provider="sim", max_samples_per_step=5)
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    dispatcher = NoDispatch()
    coordinator = Coordinator(store, dispatcher, EventLog(tmp_path / "events.jsonl"), speculate=True)
    job = store.load_job(job_id)
    book = new_book()
    book.read = True
    for flip in range(4):  # the head's leader keeps changing: each basis would want 2 samples
        book.rebase([[3, 2], [], [1]] if flip % 2 else [[3, 2], [1], []], [1, 0, 2], now_s=0.0)
        coordinator._top_up(job, book, speculative=True)
    assert book.dispatched == len(dispatcher.requests) == 6  # 2 + 2 + 2, then the cap of 5 is reached
    coordinator._top_up(job, book, speculative=False)  # as the head it is capped per basis instead
    assert (book.dispatched, book.asked) == (8, 2)
    coordinator.events.close()


class NoDispatch:
    def __init__(self) -> None:
        self.requests: list[SampleRequest] = []

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        self.requests.extend(requests)
