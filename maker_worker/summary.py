"""The JSON summary of a job, with ``errors_vs_oracle`` from a replay of its ledger."""

from __future__ import annotations

from collections.abc import Iterable

from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.domains.base import Domain
from maker_worker.jobs import JobSummary, LedgerEntry
from maker_worker.store import JobState, RedisStore


def oracle_errors(domain: Domain, entries: Iterable[LedgerEntry]) -> int | None:
    """Count decided steps that differ from the oracle's answer for the state they started from.

    Returns None when the domain has no oracle for the job's first step.
    """
    state, previous_move = domain.initial_state(), None
    errors = 0
    for index, entry in enumerate(entries):
        truth = domain.oracle(state, previous_move)
        if truth is None and index == 0:
            return None
        if truth is None or (truth.move, truth.next_state) != (entry.move, entry.next_state):
            errors += 1
        state, previous_move = entry.next_state, entry.move
    return errors


def build_summary(job: JobState, errors_vs_oracle: int | None, events_path: str | None) -> JobSummary:
    counters = job.counters
    return JobSummary(
        job_id=job.job_id,
        status=job.status,
        reason=job.reason,
        task=job.spec.task,
        steps=job.steps,
        steps_done=job.steps_done,
        k=job.spec.k,
        samples=counters["samples"],
        votes=counters["votes"],
        red_flags=counters["red_flags"],
        red_flags_by_type=job.red_flags_by_type,
        discarded_votes=counters["discarded_votes"],
        late_samples=counters["late_samples"],
        api_errors=counters["api_errors"],
        max_samples_in_a_step=job.max_samples_in_a_step,
        errors_vs_oracle=errors_vs_oracle,
        wall_s=round(job.wall_s, 3),
        tokens_in=counters["tokens_in"],
        tokens_out=counters["tokens_out"],
        cost_usd=round(job.spec.cost_usd(counters["tokens_in"], counters["tokens_out"]), 6),
        budget_usd=job.budget_usd,
        provider_fallbacks=job.provider_fallbacks,
        provider=job.spec.provider,
        model=job.spec.model,
        events_path=events_path,
    )


def summarize(store: RedisStore, job: JobState, settings: Settings) -> JobSummary:
    """The job's summary, with errors_vs_oracle replayed over the steps decided so far.

    ``events_path`` is set when the job's event file is on this machine (its coordinator ran here).
    """
    events_path = settings.resolved_events_path(job.job_id)
    errors = oracle_errors(get_domain(job.spec.task), store.ledger(job.job_id))
    return build_summary(job, errors, str(events_path) if events_path.is_file() else None)
