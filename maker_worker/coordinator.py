"""The coordinator: drives a job step by step, tallying votes until one answer leads by k.

It never blocks on Celery results: workers record each sample in the step's Redis inbox and
the coordinator reads the inboxes, tallies, decides, appends to the ledger and moves on. With
speculation on, the step after the head is opened from the head's leading answer as soon as
there is one, and re-asked if another answer wins. Memory is O(1) in the number of steps. A
Redis outage (a restart) is waited out, after which the coordinator carries on from the durable
job record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from maker_worker import metrics
from maker_worker.core.models import Candidate, JSONValue
from maker_worker.core.voting import Decision, Tally
from maker_worker.errors import JobError, LeaseLostError, StoreUnavailableError
from maker_worker.events import EventLog, make_event, sample_events
from maker_worker.jobs import (
    CALL_ERROR_KINDS,
    FINISHED_STATUSES,
    ErrorKind,
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


def basis_of(state: JSONValue, previous_move: JSONValue | None) -> str:
    """A short digest of what a step is asked from (see ``SampleRequest.basis``)."""
    text = json.dumps([state, previous_move], separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class StepBook:
    """Book-keeping for one open step: what it is asked from, its votes and its samples."""

    step: int
    k: int
    cold_temperature: float | None
    """The deterministic first-sample temperature, when it differs from the voting one."""
    state: JSONValue
    previous_move: JSONValue | None
    opening: int
    """Numbers the openings of this coordinator, so sample ids stay unique when a step is reopened."""
    opened_s: float
    basis: str = field(init=False)
    tally: Tally = field(init=False)
    cursor: str = "0-0"
    """Stream id of the last result read from the step's inbox."""
    read: bool = False
    """The inbox was read since the book opened: what an earlier coordinator left is known."""
    asked: int = 0
    """Samples asked from this basis, less failed calls: what ``max_samples_per_step`` caps."""
    cold_asked: set[str] = field(default_factory=set)
    """Bases already sent a sample at the first (deterministic) temperature."""
    cold_counted: set[str] = field(default_factory=set)
    """Bases whose vote at the first temperature is counted: a second one is no independent vote."""
    in_flight: dict[str, float] = field(default_factory=dict)
    dispatched: int = 0
    rounds: int = 0
    results: int = 0
    red_flags: Counter[str] = field(default_factory=Counter)
    discarded_votes: int = 0
    """Answers not counted as votes: asked from another basis (a speculation that lost), or a
    second answer at the first temperature from one basis."""
    api_errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    fatal_error: tuple[ErrorKind, str, str] | None = None
    """(kind, message, provider:model) of a failure that stops the step unless a fallback applies."""
    decision: Decision | None = None

    def __post_init__(self) -> None:
        self.basis = basis_of(self.state, self.previous_move)
        self.tally = Tally(self.k)

    def rebase(self, state: JSONValue, previous_move: JSONValue | None, now_s: float) -> None:
        """Ask from another state: votes and samples in flight from the old one stop counting.

        Samples already read stay counted (they were paid for), their votes as discarded; the
        inbox cursor is kept, so no result is read (or reported) twice.
        """
        self.state, self.previous_move = state, previous_move
        self.basis = basis_of(state, previous_move)
        self.discarded_votes += self.tally.total_votes
        self.tally = Tally(self.k)
        self.in_flight = {}
        self.asked = 0
        self.fatal_error = None
        self.decision = None
        self.opened_s = now_s

    def absorb(self, result: SampleResult) -> None:
        """Count one sample's result: a vote (if asked from this basis), a red flag or a failed call.

        A failure that pauses the job counts only from this coordinator's own samples: one left
        in the inbox by the run that paused (e.g. over budget) must not pause the resumed run.
        The decision is the first point of a k lead.
        """
        ours = self.in_flight.pop(result.sample_id, None) is not None
        self.results += 1
        self.tokens_in += result.tokens_in
        self.tokens_out += result.tokens_out
        kind = result.error_kind
        self.api_errors += len(result.api_errors) + (kind in CALL_ERROR_KINDS)
        if kind is not None:
            self.asked -= ours  # a failed call is no evidence that the step is contentious
            if ours and kind is not ErrorKind.PROVIDER_UNAVAILABLE:
                self.fatal_error = (kind, result.error or "", f"{result.provider}:{result.model}")
        elif result.red_flag is not None:
            self.red_flags[result.red_flag] += 1
        elif result.vote_key is not None and self._counts_as_vote(result):
            self.tally.add(result.sample_id, result.vote_key)
        elif result.vote_key is not None:
            self.discarded_votes += 1
        self.decision = self.decision or self.tally.decision()

    def _counts_as_vote(self, result: SampleResult) -> bool:
        if result.basis != self.basis:
            return False
        if self.cold_temperature is None or result.temperature != self.cold_temperature:
            return True
        if self.basis in self.cold_counted:
            return False
        self.cold_counted.add(self.basis)
        return True

    def first_sample_is_cold(self) -> bool:
        """Whether the next sample should go at the first temperature (once per basis)."""
        if self.cold_temperature is None:
            return False
        return self.basis not in self.cold_asked and self.basis not in self.cold_counted

    def leader(self) -> Candidate | None:
        """The answer ahead of every other by at least one vote, if any."""
        leading, runner_up = self.tally.top_two()
        if leading is None or leading[1] <= runner_up:
            return None
        return Candidate.from_vote_key(leading[0])

    def counters(self) -> dict[str, int]:
        red_flags = {f"{RED_FLAG_FIELD_PREFIX}{name}": count for name, count in self.red_flags.items()}
        return {
            "samples": self.results,
            "votes": self.tally.total_votes,
            "red_flags": sum(self.red_flags.values()),
            "discarded_votes": self.discarded_votes,
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
        speculate: bool = True,
        fallback_after_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.events = events
        self.lease = lease
        self.speculate = speculate
        """Open the step after the head from the head's leader before the head is decided."""
        self.fallback_after_s = fallback_after_s
        self._failing_since_s: float | None = None
        """When the current provider's calls started failing with nothing answered since."""
        self.clock = clock
        self.sleep = sleep
        self._next_status_check_s = 0.0
        self._books_opened = 0
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
        with metrics.JOBS_DRIVEN.track_inprogress():
            stop = self._drive(job, epoch, on_step)
        if self.lease is not None:
            self.lease.confirm()  # a coordinator that lost the job must not overwrite its status
        wall_s = job.wall_s + self.clock() - started_s
        status, reason = (stop.status, stop.reason) if stop else (JobStatus.SUCCEEDED, None)
        self.store.set_status(job_id, status, reason, wall_s=wall_s)
        job = self.store.load_job(job_id)  # a cancel that landed meanwhile keeps its status
        metrics.JOBS_ENDED.labels(job.status.value).inc()
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
        """Drive a window of open steps: the head, and with speculation the step after it."""
        if job.steps_done >= job.steps:
            return None
        window = [self._open(job, job.steps_done, job.state, job.previous_move)]
        while True:
            # A book just opened is read at once, without waiting: an earlier coordinator may
            # have left results in its inbox, which its first round must take into account.
            block_ms = READ_BLOCK_MS if all(book.read for book in window) else None
            self._read(job, window, block_ms)
            while window[0].decision is not None:
                head = window.pop(0)
                winner = self._record(job, epoch, head)
                if on_step is not None:
                    on_step(head.step + 1, self.totals)
                if head.step + 1 == job.steps:
                    return None
                window = self._follow(job, window, head.step + 1, winner)
            for book in window:  # exhausted quota is the provider's, whichever step saw it
                self._fall_back(job, book)
            if (stop := self._check_stop(job, window)) is not None:
                return stop
            if self.speculate:
                self._speculate(job, window)
            for index, book in enumerate(window):
                self._top_up(job, book, speculative=index > 0)

    def _open(self, job: JobState, step: int, state: JSONValue, previous_move: JSONValue | None) -> StepBook:
        self._books_opened += 1
        spec = job.spec
        cold = spec.first_temperature if spec.first_temperature != spec.temperature else None
        return StepBook(step, spec.k, cold, state, previous_move, self._books_opened, self.clock())

    def _follow(self, job: JobState, window: list[StepBook], step: int, winner: Candidate) -> list[StepBook]:
        """The new head after a decision: the speculative book if it guessed right, else re-asked."""
        if not window:
            return [self._open(job, step, winner.next_state, winner.move)]
        if window[0].basis != basis_of(winner.next_state, winner.move):
            window[0].rebase(winner.next_state, winner.move, self.clock())
        return window

    def _speculate(self, job: JobState, window: list[StepBook]) -> None:
        """Keep the step after the head asked from the head's current leader, if it has one."""
        head = window[0]
        leader = head.leader()
        if leader is None or head.step + 1 == job.steps:
            return
        if len(window) == 1:
            window.append(self._open(job, head.step + 1, leader.next_state, leader.move))
        elif window[1].basis != basis_of(leader.next_state, leader.move):
            window[1].rebase(leader.next_state, leader.move, self.clock())

    def _read(self, job: JobState, window: list[StepBook], block_ms: int | None) -> None:
        """Read every open step's new results in one call and count them (all were paid for)."""
        found = self.store.read_results(job.job_id, {book.step: book.cursor for book in window}, block_ms)
        for book in window:
            book.read = True
            if book.step not in found:
                continue
            results, book.cursor = found[book.step]
            for result in results:
                book.absorb(result)
                self._watch_provider(job, result)
                self.events.extend(sample_events(job.job_id, book.step, result))

    def _watch_provider(self, job: JobState, result: SampleResult) -> None:
        """Note when the current provider began failing every call, and when it answered again."""
        if (result.provider, result.model) != (job.spec.provider, job.spec.model):
            return  # a straggler from a provider the job has left
        if result.error_kind is None:
            self._failing_since_s = None
        elif result.error_kind is ErrorKind.PROVIDER_UNAVAILABLE and self._failing_since_s is None:
            self._failing_since_s = self.clock()

    def _fall_back(self, job: JobState, book: StepBook) -> None:
        """Continue on the next configured provider when the quota is exhausted, or when every
        call has failed as unavailable for ``fallback_after_s``; without one, the job pauses
        (quota) or keeps retrying (unavailable)."""
        current = f"{job.spec.provider}:{job.spec.model}"
        if book.fatal_error is not None and book.fatal_error[0] is ErrorKind.QUOTA_EXHAUSTED:
            if book.fatal_error[2] != current:
                book.fatal_error = None  # a straggler from the provider we already left
                return
            reason = "quota_exhausted"
        elif (
            self._failing_since_s is not None
            and self.clock() - self._failing_since_s >= self.fallback_after_s
        ):
            reason = "provider_unavailable"
        else:
            return
        if not job.spec.fallbacks:
            return
        old, new = job.spec, job.spec.fall_back()
        note = f"{current} -> {new.provider}:{new.model} ({reason})"
        job.spec = new
        job.provider_fallbacks = [*job.provider_fallbacks, note]
        self.store.switch_provider(job.job_id, new, job.provider_fallbacks)
        book.fatal_error = None
        self._failing_since_s = None
        self.events.emit(
            make_event(
                "ProviderFallback",
                job.job_id,
                book.step,
                from_provider=old.provider,
                from_model=old.model,
                to_provider=new.provider,
                to_model=new.model,
                reason=reason,
            )
        )

    def _check_stop(self, job: JobState, window: list[StepBook]) -> Stop | None:
        """Why to stop now, judged on the head step (a speculative step never stops the job)."""
        head = window[0]
        if head.fatal_error is not None:
            kind, message, _provider = head.fatal_error
            return Stop(JobStatus.PAUSED, f"{kind.value}: {message}")
        now_s = self.clock()
        for book in window:
            for sample_id in [
                sample_id for sample_id, deadline_s in book.in_flight.items() if deadline_s < now_s
            ]:
                del book.in_flight[sample_id]  # lost with its worker: _top_up replaces it
                book.asked -= 1
        if self.lease is not None:
            self.lease.keep()
        if now_s >= self._next_status_check_s:
            self._next_status_check_s = now_s + STATUS_CHECK_INTERVAL_S
            status = self.store.load_job(job.job_id).status
            if status is not JobStatus.RUNNING:
                return Stop(status, f"{status.value} by operator")
        needed = head.tally.votes_still_needed() - len(head.in_flight)
        if needed > 0 and not head.in_flight and head.asked + needed > job.spec.max_samples_per_step:
            return Stop(JobStatus.PAUSED, "contentious_step")
        return None

    def _top_up(self, job: JobState, book: StepBook, *, speculative: bool) -> None:
        """Keep enough samples in flight that the leader could still win by k.

        A speculative step gets at most ``max_samples_per_step`` samples over all the bases it
        is asked from, however often the head's leader changes.
        """
        if not book.read or book.fatal_error is not None:
            return  # not read yet (see _run_steps), or stopped until a fallback or the head's pause
        if speculative and book.dispatched >= job.spec.max_samples_per_step:
            return
        room = job.spec.max_samples_per_step - book.asked
        count = min(book.tally.votes_still_needed() - len(book.in_flight), room)
        if count <= 0:
            return
        cold = book.first_sample_is_cold()
        requests = [self._request(job, book, first=cold and n == 0) for n in range(count)]
        if cold:
            book.cold_asked.add(book.basis)
        book.asked += count
        book.rounds += 1
        self.events.flush()
        self.dispatcher.dispatch(requests)

    def _request(self, job: JobState, book: StepBook, *, first: bool) -> SampleRequest:
        spec, n = job.spec, book.dispatched
        sample_id = f"{job.job_id}:{book.step}:{job.epoch}.{book.opening}.{n}"
        book.dispatched += 1
        book.in_flight[sample_id] = self.clock() + spec.sample_timeout_s
        return SampleRequest(
            job_id=job.job_id,
            step=book.step,
            sample_id=sample_id,
            task=spec.task,
            state=book.state,
            previous_move=book.previous_move,
            provider=spec.provider,
            model=spec.model,
            temperature=spec.first_temperature if first else spec.temperature,
            max_output_tokens=spec.max_output_tokens,
            red_flag_max_tokens=spec.red_flag_max_tokens,
            price_in_usd_per_mtok=spec.price_in_usd_per_mtok,
            price_out_usd_per_mtok=spec.price_out_usd_per_mtok,
            budget_limited=job.budget_usd is not None,
            check_step_open=book.rounds > 0,
            basis=book.basis,
        )

    def _record(self, job: JobState, epoch: str, book: StepBook) -> Candidate:
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
        outcome = self.store.decide_step(job.job_id, epoch, entry, counters, book.cursor)
        if outcome == 0:
            raise LeaseLostError(f"job {job.job_id} step {book.step} is driven by another coordinator")
        if outcome < 0:
            raise _Resync
        self.totals.update(counters)
        metrics.observe_step(job.spec.task, job.spec.k, counters, self.clock() - book.opened_s)
        self._emit_decided(job, book, decision)
        return winner

    def _emit_decided(self, job: JobState, book: StepBook, decision: Decision) -> None:
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
        duration_ms = round((self.clock() - book.opened_s) * 1000, 3)
        self.events.emit(make_event("StepCompleted", job.job_id, book.step, duration_ms=duration_ms))
