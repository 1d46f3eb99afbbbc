"""Every Redis key maker_worker uses, built here and nowhere else.

All keys live under ``maker:``. ``{job}`` is a job id, ``{step}`` a 0-based step index.

===========================================  ======  ==================================================
key                                          type    content and lifetime
===========================================  ======  ==================================================
``maker:jobs``                               zset    job ids scored by creation time (ms); no TTL
``maker:jobs:active``                        set     ids of queued and running jobs, which coordinators
                                                     may claim; no TTL
``maker:job:{job}``                          hash    job record: spec, status, reason, steps_done,
                                                     state, previous_move, epoch, counters, budget,
                                                     provider fallbacks; no TTL
``maker:job:{job}:lease``                    string  owner token of the coordinator driving the job;
                                                     expires ``lease_s`` after its last renewal
``maker:job:{job}:ledger``                   list    one JSON LedgerEntry per decided step, index =
                                                     step; no TTL (the durable result)
``maker:job:{job}:step:{step}:results``      stream  sample results of the open step; deleted when it
                                                     is decided (later results are answered 'late')
``maker:job:{job}:step:{step}:seen``         set     sample ids recorded for the open step (exactly
                                                     once); deleted with the results stream
``maker:job:{job}:events``                   stream  live event feed for watchers, capped at
                                                     ``EVENTS_STREAM_MAXLEN`` entries
``maker:ratelimit:{provider}:{model}:rpm``   string  requests limiter's theoretical arrival time (ms,
                                                     Redis server clock); expires a minute after idle
``maker:ratelimit:{provider}:{model}:tpm``   string  tokens limiter's theoretical arrival time; same
``maker:ratelimit:{provider}:{model}:cool``  string  end of a shared cool-down after a 429 (ms, Redis
                                                     server clock); expires just after it
===========================================  ======  ==================================================

Celery's own keys (the ``maker.samples`` queue list, ``unacked`` bookkeeping, ``_kombu.*``)
sit beside these, managed by kombu.
"""

from __future__ import annotations

PREFIX = "maker"

EVENTS_STREAM_MAXLEN = 10_000
"""Approximate cap on a job's live event stream (the event file is the full record)."""


def jobs_index() -> str:
    return f"{PREFIX}:jobs"


def active_jobs() -> str:
    return f"{PREFIX}:jobs:active"


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_lease(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:lease"


def ledger(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:ledger"


def step_results(job_id: str, step: int) -> str:
    return f"{PREFIX}:job:{job_id}:step:{step}:results"


def step_seen(job_id: str, step: int) -> str:
    return f"{PREFIX}:job:{job_id}:step:{step}:seen"


def job_events(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"


def rate_limit(provider: str, model: str, part: str) -> str:
    """``part``: ``rpm``, ``tpm`` or ``cool``."""
    return f"{PREFIX}:ratelimit:{provider}:{model}:{part}"
