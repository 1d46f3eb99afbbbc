"""The coordinator: drives a job step by step, tallying votes until one answer leads by k.

It never blocks on Celery results: workers record each sample in the step's Redis inbox and
the coordinator reads the inbox, tallies, decides, appends to the ledger and moves on. Memory
is O(1) in the number of steps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from maker_worker.core.models import Candidate, JSONValue
from maker_worker.core.voting import Decision, Tally
from maker_worker.errors import JobError
from maker_worker.events import EventLog, make_event, sample_events
from maker_worker.jobs import FINISHED_STATUSES, JobSpec, JobStatus, LedgerEntry, SampleRequest, SampleResult
from maker_worker.store import RED_FLAG_FIELD_PREFIX, JobState, RedisStore

READ_BLOCK_MS = 500
"""Longest single wait on a step inbox before re-checking deadlines and the job status."""

STATUS_CHECK_INTERVAL_S = 0.5
"""How often a running coordinator notices a cancel or pause made elsewhere."""


class Dispatcher(Protocol):
    """Sends sample requests to whatever runs them (Celery workers, or threads in-process)."""

    def dispatch(self, requests: Sequence[SampleRequest]) -> None: ...


@dataclass
class StepBook:
    """Book-keeping for one open step."""

    step: int
    spec: JobSpec
    tally: Tally
    in_flight: dict[str, float] = field(default_factory=dict)
    dispatched: int = 0
    rounds: int = 0
    results: int = 0
    red_flags: Counter[str] = field(default_factory=Counter)
    api_errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    fatal_error: str | None = None
    decision: Decision | None = None

    def absorb(self, result: SampleResult) -> None:
        """Count one sample's result: a vote, a red flag or a failed call."""
        self.in_flight.pop(result.sample_id, None)
        self.results += 1
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        self.api_errors += len(result.api_errors) + (result.error is not None)
        if result.error is not None and not result.error_retryable:
            self.fatal_error = result.error
        elif result.red_flag is not None:
            self.red_flags[result.red_flag] += 1
        elif result.vote_key is not None:
            self.tally.add(result.sample_id, result.vote_key)

    def counters(self) -> dict[str, int]:
        red_flags = {f"{RED_FLAG_FIELD_PREFIX}{name}": count for name, count in self.red_flags.items()}
        return {
            "samples": self.results,
            "votes": self.tally.total_votes,
            "red_flags": sum(self.red_flags.values()),
            "api_errors": self.api_errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            **red_flags,
        }


@dataclass(frozen=True)
class Paused:
    reason: str


StepCallback = Callable[[int, Counter[str]], None]
"""Called after each decided step with the steps done and the coordinator's running totals."""


class Coordinator:
    """Runs jobs to completion (or a pause) through a dispatcher and a Redis store."""

    def __init__(
        self,
        store: RedisStore,
        dispatcher: Dispatcher,
        events: EventLog,
        *,
        sample_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.events = events
        self.sample_timeout_s = sample_timeout_s
        self.clock = clock
        self._next_status_check_s = 0.0
        self.totals: Counter[str] = Counter()
        """Counters summed over the steps this coordinator decided (for progress displays)."""

    def run(self, job_id: str, on_step: StepCallback | None = None) -> JobState:
        """Drive ``job_id`` from its first undecided step; returns the final job record."""
        job = self.store.load_job(job_id)
        if job.status in FINISHED_STATUSES:
            raise JobError(f"job {job_id} already {job.status.value}; nothing to run")
        epoch = self.store.begin_epoch(job_id)
        started_s = self.clock()
        outcome = self._run_steps(job, epoch, on_step)
        wall_s = job.wall_s + self.clock() - started_s
        status, reason = (JobStatus.PAUSED, outcome.reason) if outcome else (JobStatus.SUCCEEDED, None)
        self.store.set_status(job_id, status, reason, wall_s=wall_s)
        name = "JobPaused" if outcome else "JobCompleted"
        self.events.emit(make_event(name, job_id, reason=reason, wall_s=round(wall_s, 3)))
        self.events.flush()
        return self.store.load_job(job_id)

    def _run_steps(self, job: JobState, epoch: str, on_step: StepCallback | None) -> Paused | None:
        state, previous_move = job.state, job.previous_move
        for step in range(job.steps_done, job.steps):
            started_s = self.clock()
            book = self._decide(job, step, state, previous_move)
            if isinstance(book, Paused):
                return book
            winner = self._record(job, epoch, book, started_s)
            state, previous_move = winner.next_state, winner.move
            if on_step is not None:
                on_step(step + 1, self.totals)
        return None

    def _decide(
        self, job: JobState, step: int, state: JSONValue, previous_move: JSONValue | None
    ) -> StepBook | Paused:
        book = StepBook(step=step, spec=job.spec, tally=Tally(job.spec.k))
        cursor = "0-0"
        fresh_step = True
        block_ms: int | None = None  # first read: whatever an earlier coordinator left, no wait
        while True:
            results, cursor = self.store.read_results(job.job_id, step, cursor, block_ms)
            fresh_step = fresh_step and not results
            book.decision = self._absorb_all(job.job_id, book, results)
            if book.decision is not None:
                return book
            if (paused := self._check_pause(job.job_id, book)) is not None:
                return paused
            self._top_up(job, book, state, previous_move, fresh_step)
            block_ms = READ_BLOCK_MS

    def _absorb_all(self, job_id: str, book: StepBook, results: list[SampleResult]) -> Decision | None:
        for result in results:
            book.absorb(result)
            self.events.extend(sample_events(job_id, book.step, result))
            if (decision := book.tally.decision()) is not None:
                return decision
        return None

    def _check_pause(self, job_id: str, book: StepBook) -> Paused | None:
        if book.fatal_error is not None:
            return Paused(f"provider_error: {book.fatal_error}")
        now_s = self.clock()
        lost = [sample_id for sample_id, deadline_s in book.in_flight.items() if deadline_s < now_s]
        for sample_id in lost:
            del book.in_flight[sample_id]
        if now_s >= self._next_status_check_s:
            self._next_status_check_s = now_s + STATUS_CHECK_INTERVAL_S
            status = self.store.load_job(job_id).status
            if status is not JobStatus.RUNNING:
                return Paused(f"{status.value} by operator")
        needed = book.tally.votes_still_needed() - len(book.in_flight)
        if needed > 0 and not book.in_flight and book.dispatched + needed > book.spec.max_samples_per_step:
            return Paused("contentious_step")
        return None

    def _top_up(
        self, job: JobState, book: StepBook, state: JSONValue, previous_move: JSONValue | None, fresh: bool
    ) -> None:
        """Keep enough samples in flight that the leader could still win by k."""
        room = book.spec.max_samples_per_step - book.dispatched
        count = min(book.tally.votes_still_needed() - len(book.in_flight), room)
        if count <= 0:
            return
        requests = [self._request(job, book, state, previous_move, fresh) for _ in range(count)]
        self.events.flush()
        self.dispatcher.dispatch(requests)
        book.rounds += 1

    def _request(
        self, job: JobState, book: StepBook, state: JSONValue, previous_move: JSONValue | None, fresh: bool
    ) -> SampleRequest:
        spec, n = job.spec, book.dispatched
        sample_id = f"{job.job_id}:{book.step}:{job.epoch}.{n}"
        book.dispatched += 1
        book.in_flight[sample_id] = self.clock() + self.sample_timeout_s
        return SampleRequest(
            job_id=job.job_id,
            step=book.step,
            sample_id=sample_id,
            task=spec.task,
            state=state,
            previous_move=previous_move,
            provider=spec.provider,
            model=spec.model,
            temperature=spec.first_temperature if (fresh and n == 0) else spec.temperature,
            check_step_open=not (fresh and book.rounds == 0),
            max_output_tokens=spec.max_output_tokens,
            red_flag_max_tokens=spec.red_flag_max_tokens,
        )

    def _record(self, job: JobState, epoch: str, book: StepBook, started_s: float) -> Candidate:
        decision = book.decision
        if decision is None:
            raise JobError(f"step {book.step} of job {job.job_id} is not decided")
        winner = Candidate.from_vote_key(decision.winner)
        entry = LedgerEntry(
            step=book.step,
            move=winner.move,
            next_state=winner.next_state,
            votes=decision.total_votes,
            winner_votes=decision.winner_votes,
            runner_up_votes=decision.runner_up_votes,
            samples=book.results,
            red_flags=sum(book.red_flags.values()),
        )
        counters = book.counters()
        if not self.store.decide_step(job.job_id, epoch, entry, counters):
            raise JobError(f"job {job.job_id} step {book.step} was decided by another coordinator")
        self.totals.update(counters)
        self._emit_decided(job, book, decision, started_s)
        return winner

    def _emit_decided(self, job: JobState, book: StepBook, decision: Decision, started_s: float) -> None:
        self.events.emit(
            make_event(
                "VoteDecided",
                job.job_id,
                book.step,
                total_votes=decision.total_votes,
                k_margin=job.spec.k,
                winner_votes=decision.winner_votes,
                runner_up_votes=decision.runner_up_votes,
                samples=book.results,
                rounds=book.rounds,
            )
        )
        duration_ms = round((self.clock() - started_s) * 1000, 3)
        self.events.emit(make_event("StepCompleted", job.job_id, book.step, duration_ms=duration_ms))
