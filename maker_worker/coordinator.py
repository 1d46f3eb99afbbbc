"""The coordinator: drives a job step by step, tallying votes until one answer leads by k.

It never blocks on Celery results: workers record each sample in the step's Redis inbox and
the coordinator reads the inbox, tallies, decides, appends to the ledger and moves on. Memory
is O(1) in the number of steps. A Redis outage (a restart) is waited out, after which the
coordinator carries on from the durable job record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from maker_worker.core.models import Candidate, JSONValue
from maker_worker.core.voting import Decision, Tally
from maker_worker.errors import JobError, LeaseLostError, StoreUnavailableError
from maker_worker.events import EventLog, make_event, sample_events
from maker_worker.jobs import (
    FINISHED_STATUSES,
    ErrorKind,
    JobSpec,
    JobStatus,
    LedgerEntry,
    SampleRequest,
    SampleResult,
)
from maker_worker.lease import Lease
from maker_worker.store import RED_FLAG_FIELD_PREFIX, JobState, RedisStore

READ_BLOCK_MS = 500
"""Longest single wait on a step inbox before re-checking deadlines, the lease and the job status."""

STATUS_CHECK_INTERVAL_S = 0.5
"""How often a running coordinator notices a cancel or pause made elsewhere."""

STORE_OUTAGE_MAX_S = 300.0
"""How long a coordinator waits for an unreachable Redis to come back before giving up."""


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
    opening: int = 0
    fatal_error: tuple[ErrorKind, str, str] | None = None
    """(kind, message, provider:model) of a failure that stops the step unless a fallback applies."""
    decision: Decision | None = None

    def absorb(self, result: SampleResult) -> None:
        """Count one sample's result: a vote, a red flag or a failed call.

        A failure that pauses the job counts only from this coordinator's own samples: one left
        in the inbox by the run that paused (e.g. over budget) must not pause the resumed run.
        """
        ours = self.in_flight.pop(result.sample_id, None) is not None
        self.results += 1
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        self.api_errors += len(result.api_errors) + (result.error is not None)
        kind = result.error_kind
        if kind is not None:
            if ours and kind is not ErrorKind.PROVIDER_UNAVAILABLE:
                self.fatal_error = (kind, result.error or "", f"{result.provider}:{result.model}")
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
class Stop:
    """Why driving stopped before the last step: the status to leave and its reason."""

    status: JobStatus
    reason: str | None


class _Resync(Exception):
    """The job record moved under us (e.g. a Redis restart lost a write): re-read it and go on."""


StepCallback = Callable[[int, Counter[str]], None]
"""Called after each decided step with the steps done and the coordinator's running totals."""


class Coordinator:
    """Drives one job at a time to completion (or a stop) through a dispatcher and a Redis store."""

    def __init__(
        self,
        store: RedisStore,
        dispatcher: Dispatcher,
        events: EventLog,
        *,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.events = events
        self.lease = lease
        self.clock = clock
        self.sleep = sleep
        self._next_status_check_s = 0.0
        self._books_opened = 0
        """Numbers each step opening, so sample ids stay unique when a step is reopened after a resync."""
        self.totals: Counter[str] = Counter()
        """Counters summed over the steps this coordinator decided (for progress displays)."""

    def run(self, job_id: str, on_step: StepCallback | None = None) -> JobState:
        """Drive ``job_id`` from its first undecided step; returns the final job record.

        Raises:
            JobError: the job is finished already, or another coordinator took it over.
        """
        job = self.store.load_job(job_id)
        if job.status in FINISHED_STATUSES:
            raise JobError(f"job {job_id} is already {job.status.value}; nothing to run")
        epoch = self.store.begin_epoch(job_id)
        job = self.store.load_job(job_id)
        started_s = self.clock()
        stop = self._drive(job, epoch, on_step)
        if self.lease is not None:
            self.lease.confirm()  # a coordinator that lost the job must not overwrite its status
        wall_s = job.wall_s + self.clock() - started_s
        status, reason = (stop.status, stop.reason) if stop else (JobStatus.SUCCEEDED, None)
        self.store.set_status(job_id, status, reason, wall_s=wall_s)
        job = self.store.load_job(job_id)  # a cancel that landed meanwhile keeps its status
        name = "JobCompleted" if job.status is JobStatus.SUCCEEDED else "JobPaused"
        self.events.emit(
            make_event(name, job_id, status=job.status.value, reason=job.reason, wall_s=round(job.wall_s, 3))
        )
        self.events.flush()
        return job

    def _drive(self, job: JobState, epoch: str, on_step: StepCallback | None) -> Stop | None:
        """Run steps, waiting out Redis outages and re-reading the record after one."""
        while True:
            try:
                return self._run_steps(job, epoch, on_step)
            except (StoreUnavailableError, _Resync):
                self._wait_for_store()
                job = self.store.load_job(job.job_id)
                if job.epoch != epoch:
                    raise LeaseLostError(f"job {job.job_id} was taken over by another coordinator") from None

    def _wait_for_store(self) -> None:
        deadline_s = self.clock() + STORE_OUTAGE_MAX_S
        while True:
            try:
                self.store.ping()
                return
            except StoreUnavailableError:
                if self.clock() > deadline_s:
                    raise
                self.sleep(0.5)

    def _run_steps(self, job: JobState, epoch: str, on_step: StepCallback | None) -> Stop | None:
        state, previous_move = job.state, job.previous_move
        for step in range(job.steps_done, job.steps):
            started_s = self.clock()
            book = self._decide(job, step, state, previous_move)
            if isinstance(book, Stop):
                return book
            winner = self._record(job, epoch, book, started_s)
            state, previous_move = winner.next_state, winner.move
            if on_step is not None:
                on_step(step + 1, self.totals)
        return None

    def _decide(
        self, job: JobState, step: int, state: JSONValue, previous_move: JSONValue | None
    ) -> StepBook | Stop:
        self._books_opened += 1
        book = StepBook(step=step, spec=job.spec, tally=Tally(job.spec.k), opening=self._books_opened)
        cursor = "0-0"
        fresh_step = True
        block_ms: int | None = None  # first read: whatever an earlier coordinator left, no wait
        while True:
            results, cursor = self.store.read_results(job.job_id, step, cursor, block_ms)
            fresh_step = fresh_step and not results
            book.decision = self._absorb_all(job.job_id, book, results)
            if book.decision is not None:
                return book
            self._fall_back_on_quota(job, book)
            if (stop := self._check_stop(job.job_id, book)) is not None:
                return stop
            self._top_up(job, book, state, previous_move, fresh_step)
            block_ms = READ_BLOCK_MS

    def _absorb_all(self, job_id: str, book: StepBook, results: list[SampleResult]) -> Decision | None:
        """Count every result read (all were paid for); the decision is the first point of a k lead."""
        decision = None
        for result in results:
            book.absorb(result)
            self.events.extend(sample_events(job_id, book.step, result))
            decision = decision or book.tally.decision()
        return decision

    def _fall_back_on_quota(self, job: JobState, book: StepBook) -> None:
        """On exhausted quota, continue on the next configured provider instead of pausing."""
        if book.fatal_error is None or book.fatal_error[0] is not ErrorKind.QUOTA_EXHAUSTED:
            return
        if book.fatal_error[2] != f"{job.spec.provider}:{job.spec.model}":
            book.fatal_error = None  # a straggler from the provider we already left
            return
        if not job.spec.fallbacks:
            return
        old, new = job.spec, job.spec.fall_back()
        note = f"{old.provider}:{old.model} -> {new.provider}:{new.model} (quota_exhausted)"
        job.spec, book.spec = new, new
        job.provider_fallbacks = [*job.provider_fallbacks, note]
        self.store.switch_provider(job.job_id, new, job.provider_fallbacks)
        book.fatal_error = None
        self.events.emit(
            make_event(
                "ProviderFallback",
                job.job_id,
                book.step,
                from_provider=old.provider,
                from_model=old.model,
                to_provider=new.provider,
                to_model=new.model,
                reason="quota_exhausted",
            )
        )

    def _check_stop(self, job_id: str, book: StepBook) -> Stop | None:
        if book.fatal_error is not None:
            kind, message, _provider = book.fatal_error
            return Stop(JobStatus.PAUSED, f"{kind.value}: {message}")
        now_s = self.clock()
        for sample_id in [
            sample_id for sample_id, deadline_s in book.in_flight.items() if deadline_s < now_s
        ]:
            del book.in_flight[sample_id]  # lost with its worker: _top_up replaces it
        if self.lease is not None:
            self.lease.keep()
        if now_s >= self._next_status_check_s:
            self._next_status_check_s = now_s + STATUS_CHECK_INTERVAL_S
            status = self.store.load_job(job_id).status
            if status is not JobStatus.RUNNING:
                return Stop(status, f"{status.value} by operator")
        needed = book.tally.votes_still_needed() - len(book.in_flight)
        if needed > 0 and not book.in_flight and book.dispatched + needed > book.spec.max_samples_per_step:
            return Stop(JobStatus.PAUSED, "contentious_step")
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
        sample_id = f"{job.job_id}:{book.step}:{job.epoch}.{book.opening}.{n}"
        book.dispatched += 1
        book.in_flight[sample_id] = self.clock() + spec.sample_timeout_s
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
            max_output_tokens=spec.max_output_tokens,
            red_flag_max_tokens=spec.red_flag_max_tokens,
            price_in_usd_per_mtok=spec.price_in_usd_per_mtok,
            price_out_usd_per_mtok=spec.price_out_usd_per_mtok,
            budget_limited=job.budget_usd is not None,
            check_step_open=not (fresh and book.rounds == 0),
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
        outcome = self.store.decide_step(job.job_id, epoch, entry, counters)
        if outcome == 0:
            raise LeaseLostError(f"job {job.job_id} step {book.step} is driven by another coordinator")
        if outcome < 0:
            raise _Resync
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
