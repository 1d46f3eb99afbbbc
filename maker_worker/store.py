"""Redis persistence for jobs: the job record, the ledger, leases, step inboxes and event feeds.

Every Redis error is translated in ``_redis_errors``; key names come from ``maker_worker.keys``;
read-then-write logic runs as Lua from ``maker_worker/lua`` on the Redis server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, cast

import redis
from pydantic import ValidationError

from maker_worker import keys
from maker_worker.core.models import JSONValue
from maker_worker.errors import (
    JobCorruptError,
    JobError,
    JobNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from maker_worker.jobs import (
    ACTIVE_STATUSES,
    UNFINISHED_STATUSES,
    JobSpec,
    JobStatus,
    LedgerEntry,
    SampleResult,
)

COUNTER_FIELDS = (
    "samples",
    "votes",
    "red_flags",
    "discarded_votes",
    "late_samples",
    "api_errors",
    "tokens_in",
    "tokens_out",
)
"""Job-hash counters summed over decided steps."""

RED_FLAG_FIELD_PREFIX = "red_flag:"
MICRO = 1_000_000


@contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailableError(f"cannot reach Redis while {what}: {exc}; check MAKER_REDIS_URL") from exc
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed while {what}: {exc}") from exc


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class JobState:
    """A snapshot of a job record read from Redis."""

    def __init__(self, job_id: str, fields: Mapping[str, str]) -> None:
        self.job_id = job_id
        self.spec = JobSpec.model_validate_json(fields["spec"])
        self.status = JobStatus(fields["status"])
        self.reason = fields.get("reason") or None
        self.steps = int(fields["steps"])
        self.steps_done = int(fields.get("steps_done", "0"))
        self.state: JSONValue = json.loads(fields["state"])
        self.previous_move: JSONValue | None = json.loads(fields.get("previous_move", "null"))
        self.epoch = fields.get("epoch", "0")
        self.created_at_s = float(fields.get("created_at_s", "0"))
        self.wall_s = float(fields.get("wall_s", "0"))
        self.counters = {name: int(fields.get(name, "0")) for name in COUNTER_FIELDS}
        self.max_samples_in_a_step = int(fields.get("max_samples_in_a_step", "0"))
        self.spent_usd = int(fields.get("spent_micro_usd", "0")) / MICRO
        budget = fields.get("budget_micro_usd", "")
        self.budget_usd = int(budget) / MICRO if budget else None
        self.provider_fallbacks: list[str] = json.loads(fields.get("fallbacks", "[]"))
        self.red_flags_by_type = {
            name.removeprefix(RED_FLAG_FIELD_PREFIX): int(value)
            for name, value in fields.items()
            if name.startswith(RED_FLAG_FIELD_PREFIX)
        }


class RedisStore:
    """Job records, ledgers, leases and per-step result inboxes in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts = {
            name: client.register_script(
                resources.files("maker_worker.lua").joinpath(f"{name}.lua").read_text()
            )
            for name in (
                "record_sample",
                "decide_step",
                "renew_lease",
                "release_lease",
                "reserve_budget",
                "set_status",
                "begin_epoch",
            )
        }

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Connect and check the server answers.

        Raises:
            StoreUnavailableError: Redis does not answer at ``url``.
        """
        client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        store = cls(client)
        store.ping()
        return store

    def ping(self) -> None:
        with _redis_errors("connecting"):
            self.client.ping()

    def _run(self, script: str, what: str, job_keys: Sequence[str], args: Sequence[Any]) -> Any:
        with _redis_errors(what):
            return self._scripts[script](keys=list(job_keys), args=list(args))

    # Jobs -------------------------------------------------------------------------------------

    def create_job(
        self, spec: JobSpec, *, steps: int, state: JSONValue, budget_usd: float | None = None
    ) -> str:
        """Store a new queued job and return its id."""
        job_id = new_job_id()
        now_s = time.time()
        record: dict[str, str | int | float] = {
            "spec": spec.model_dump_json(),
            "status": JobStatus.QUEUED.value,
            "steps": steps,
            "steps_done": 0,
            "state": json.dumps(state),
            "previous_move": "null",
            "epoch": "0",
            "created_at_s": now_s,
            "budget_micro_usd": "" if budget_usd is None else round(budget_usd * MICRO),
        }
        with _redis_errors("creating a job"):
            pipe = self.client.pipeline()
            pipe.hset(keys.job(job_id), mapping=record)  # type: ignore[arg-type]  # invariant key type
            pipe.zadd(keys.jobs_index(), {job_id: now_s * 1000})
            pipe.sadd(keys.active_jobs(), job_id)
            pipe.execute()
        return job_id

    def load_job(self, job_id: str) -> JobState:
        """Read a job record.

        Raises:
            JobNotFoundError: no such job.
            JobCorruptError: the record exists but does not parse.
        """
        with _redis_errors("reading a job"):
            fields = cast(dict[str, str], self.client.hgetall(keys.job(job_id)))
        if not fields:
            raise JobNotFoundError(f"no job with id {job_id!r}; `maker list` shows the known jobs")
        try:
            return JobState(job_id, fields)
        except (KeyError, ValueError, ValidationError) as exc:
            raise JobCorruptError(
                f"job {job_id} has a corrupt record ({type(exc).__name__}: {exc})"
            ) from None

    def job_ids(self, newest: int | None = None) -> list[str]:
        """Every job id, oldest first; or the ``newest`` most recent ones, newest first."""
        with _redis_errors("listing jobs"):
            if newest is None:
                return cast(list[str], self.client.zrange(keys.jobs_index(), 0, -1))
            return cast(list[str], self.client.zrevrange(keys.jobs_index(), 0, newest - 1))

    def set_status(
        self,
        job_id: str,
        status: JobStatus,
        reason: str | None = None,
        wall_s: float | None = None,
        *,
        only_from: frozenset[JobStatus] = UNFINISHED_STATUSES,
    ) -> JobStatus:
        """Move the job to ``status`` if its current status is in ``only_from``, atomically.

        By default a finished job keeps its status: a pause or a cancel racing the end of a job
        cannot relabel it. Only queued and running jobs stay claimable.

        Returns:
            The job's status after the call: ``status``, or the one that blocked the move.
        """
        args = [job_id, status.value, reason or "", "" if wall_s is None else wall_s]
        args += [int(status in ACTIVE_STATUSES), *sorted(only_from)]
        job_keys = [keys.job(job_id), keys.active_jobs()]
        return JobStatus(self._run("set_status", "updating a job", job_keys, args))

    def update_limits(self, job_id: str, spec: JobSpec, budget_usd: float | None) -> None:
        """Store a changed spec (e.g. a higher step cap) and budget, for ``maker resume``."""
        budget = "" if budget_usd is None else str(round(budget_usd * MICRO))
        with _redis_errors("updating a job"):
            self.client.hset(
                keys.job(job_id), mapping={"spec": spec.model_dump_json(), "budget_micro_usd": budget}
            )

    def switch_provider(self, job_id: str, spec: JobSpec, fallbacks: list[str]) -> None:
        """Store the spec moved to a fallback provider and the list of switches made so far."""
        with _redis_errors("switching provider"):
            self.client.hset(
                keys.job(job_id), mapping={"spec": spec.model_dump_json(), "fallbacks": json.dumps(fallbacks)}
            )

    def begin_epoch(self, job_id: str) -> str:
        """Mark the job running under a new coordinator epoch; older coordinators can no longer decide.

        Raises:
            JobError: the job finished (e.g. was cancelled) after the caller last read it.
        """
        reply = self._run("begin_epoch", "starting a job", [keys.job(job_id)], sorted(UNFINISHED_STATUSES))
        if isinstance(reply, str):
            raise JobError(f"job {job_id} is {reply}; not started")
        return str(reply)

    def active_job_ids(self) -> list[str]:
        with _redis_errors("listing active jobs"):
            return sorted(cast(set[str], self.client.smembers(keys.active_jobs())))

    # Leases -----------------------------------------------------------------------------------

    def claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Take the job's lease if nobody holds it."""
        with _redis_errors("claiming a job"):
            return bool(self.client.set(keys.job_lease(job_id), owner, nx=True, px=round(lease_s * 1000)))

    def renew(self, job_id: str, owner: str, lease_s: float) -> bool:
        return bool(
            self._run(
                "renew_lease", "renewing a lease", [keys.job_lease(job_id)], [owner, round(lease_s * 1000)]
            )
        )

    def release(self, job_id: str, owner: str) -> None:
        self._run("release_lease", "releasing a lease", [keys.job_lease(job_id)], [owner])

    # Samples and steps ------------------------------------------------------------------------

    def step_is_open(self, job_id: str, step: int) -> bool:
        """Whether a sample for ``step`` is still wanted (job running, step undecided)."""
        with _redis_errors("checking a step"):
            status, steps_done = self.client.hmget(keys.job(job_id), ["status", "steps_done"])
        return status == JobStatus.RUNNING.value and int(steps_done or 0) <= step

    def reserve_budget(self, job_id: str, cost_usd: float) -> bool:
        """Reserve ``cost_usd`` of the job's budget; False when it would cross the budget."""
        return bool(
            self._run("reserve_budget", "reserving budget", [keys.job(job_id)], [round(cost_usd * MICRO)])
        )

    def settle_budget(self, job_id: str, delta_usd: float) -> None:
        """Correct a reservation to the real cost (``delta_usd`` = real - reserved)."""
        with _redis_errors("settling budget"):
            self.client.hincrby(keys.job(job_id), "spent_micro_usd", round(delta_usd * MICRO))

    def record_result(self, job_id: str, step: int, result: SampleResult) -> str:
        """Record a sample result once: returns 'recorded', 'duplicate' or 'late'."""
        job_keys = [keys.job(job_id), keys.step_seen(job_id, step), keys.step_results(job_id, step)]
        return str(
            self._run(
                "record_sample",
                "recording a sample",
                job_keys,
                [step, result.sample_id, result.model_dump_json(), result.tokens_in, result.tokens_out],
            )
        )

    def read_results(
        self, job_id: str, after_ids: Mapping[int, str], block_ms: int | None
    ) -> dict[int, tuple[list[SampleResult], str]]:
        """Results recorded in each step's inbox after its stream id, in one read.

        Waits up to ``block_ms`` for the first (None: no wait). Returns, per step that had any,
        its results and the stream id to read on from.
        """
        streams: dict[Any, Any] = {
            keys.step_results(job_id, step): after_id for step, after_id in after_ids.items()
        }
        steps = {stream: step for step, stream in zip(after_ids, streams, strict=True)}
        with _redis_errors("reading sample results"):
            reply: Any = self.client.xread(streams, block=block_ms)
        found: dict[int, tuple[list[SampleResult], str]] = {}
        for stream, entries in reply or []:
            results = [SampleResult.model_validate_json(fields["r"]) for _entry_id, fields in entries]
            found[steps[stream]] = (results, entries[-1][0])
        return found

    def decide_step(
        self, job_id: str, epoch: str, entry: LedgerEntry, counters: Mapping[str, int], read_up_to: str
    ) -> int:
        """Append ``entry`` and advance the job; results recorded after the stream id
        ``read_up_to`` (unread when the step was decided) are counted as late samples.

        Returns:
            1 when appended, 0 when another coordinator epoch owns the job, -1 when the job's
            ``steps_done`` is not ``entry.step`` (re-read the record and carry on from there).
        """
        step = entry.step
        job_keys = [
            keys.job(job_id),
            keys.ledger(job_id),
            keys.step_results(job_id, step),
            keys.step_seen(job_id, step),
        ]
        args: list[Any] = [
            step,
            entry.model_dump_json(),
            json.dumps(entry.next_state),
            json.dumps(entry.move),
            epoch,
            entry.samples,
            read_up_to,
        ]
        for name, value in counters.items():
            args += [name, value]
        return int(self._run("decide_step", "deciding a step", job_keys, args))

    def ledger(self, job_id: str, start: int = 0, batch: int = 1000) -> Iterator[LedgerEntry]:
        """The decided steps in order from step ``start``, read in batches."""
        while True:
            with _redis_errors("reading the ledger"):
                rows = cast(list[str], self.client.lrange(keys.ledger(job_id), start, start + batch - 1))
            for row in rows:
                yield LedgerEntry.model_validate_json(row)
            if len(rows) < batch:
                return
            start += batch

    def publish_events(self, job_id: str, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events to the job's capped live stream."""
        if not events:
            return
        with _redis_errors("publishing events"):
            pipe = self.client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(
                    keys.job_events(job_id),
                    {"e": json.dumps(event)},
                    maxlen=keys.EVENTS_STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.execute()
