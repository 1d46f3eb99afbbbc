"""Redis persistence for jobs: the job record, the ledger, step inboxes and event feeds.

Every Redis error is translated into ``StoreError`` in ``_redis_errors``; key names come
from ``maker_worker.keys``; read-then-write logic runs as Lua from ``maker_worker/lua``.
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

from maker_worker import keys
from maker_worker.core.models import JSONValue
from maker_worker.errors import JobNotFoundError, StoreError
from maker_worker.jobs import JobSpec, JobStatus, LedgerEntry, SampleResult

COUNTER_FIELDS = ("samples", "votes", "red_flags", "api_errors", "tokens_in", "tokens_out")
"""Job-hash counters summed over decided steps."""

RED_FLAG_FIELD_PREFIX = "red_flag:"


@contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except redis.ConnectionError as exc:
        raise StoreError(f"cannot reach Redis while {what}: {exc}; check MAKER_REDIS_URL") from exc
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed while {what}: {exc}") from exc


def _load_script(client: redis.Redis, name: str) -> Any:
    source = resources.files("maker_worker.lua").joinpath(f"{name}.lua").read_text()
    return client.register_script(source)


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
        self.red_flags_by_type = {
            name.removeprefix(RED_FLAG_FIELD_PREFIX): int(value)
            for name, value in fields.items()
            if name.startswith(RED_FLAG_FIELD_PREFIX)
        }


class RedisStore:
    """Job records, ledgers and per-step result inboxes in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._record_sample = _load_script(client, "record_sample")
        self._decide_step = _load_script(client, "decide_step")

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Connect and check the server answers; raises StoreError naming the URL's host."""
        client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        with _redis_errors("connecting"):
            client.ping()
        return cls(client)

    def create_job(self, spec: JobSpec, *, steps: int, state: JSONValue) -> str:
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
        }
        with _redis_errors("creating a job"):
            pipe = self.client.pipeline()
            pipe.hset(keys.job(job_id), mapping=record)  # type: ignore[arg-type]  # invariant key type
            pipe.zadd(keys.jobs_index(), {job_id: now_s * 1000})
            pipe.execute()
        return job_id

    def load_job(self, job_id: str) -> JobState:
        with _redis_errors("reading a job"):
            fields = cast(dict[str, str], self.client.hgetall(keys.job(job_id)))
        if not fields:
            raise JobNotFoundError(f"no job with id {job_id!r}; `maker list` shows the known jobs")
        return JobState(job_id, fields)

    def begin_epoch(self, job_id: str) -> str:
        """Mark the job running under a new coordinator epoch; stale coordinators stop deciding."""
        with _redis_errors("starting a job"):
            pipe = self.client.pipeline()
            pipe.hincrby(keys.job(job_id), "epoch", 1)
            pipe.hset(keys.job(job_id), mapping={"status": JobStatus.RUNNING.value, "reason": ""})
            epoch, _ = pipe.execute()
        return str(epoch)

    def set_status(
        self, job_id: str, status: JobStatus, reason: str | None = None, wall_s: float = 0
    ) -> None:
        with _redis_errors("updating a job"):
            self.client.hset(
                keys.job(job_id),
                mapping={"status": status.value, "reason": reason or "", "wall_s": wall_s},
            )

    def step_is_open(self, job_id: str, step: int) -> bool:
        """Whether a sample for ``step`` is still wanted (job running, step undecided)."""
        with _redis_errors("checking a step"):
            status, steps_done = self.client.hmget(keys.job(job_id), ["status", "steps_done"])
        return status == JobStatus.RUNNING.value and int(steps_done or 0) <= step

    def record_result(self, job_id: str, step: int, result: SampleResult) -> str:
        """Record a sample result once: returns 'recorded', 'duplicate' or 'late'."""
        job_keys = [keys.job(job_id), keys.step_seen(job_id, step), keys.step_results(job_id, step)]
        with _redis_errors("recording a sample"):
            outcome = self._record_sample(
                keys=job_keys, args=[step, result.sample_id, result.model_dump_json()]
            )
        return str(outcome)

    def read_results(
        self, job_id: str, step: int, after_id: str, block_ms: int | None
    ) -> tuple[list[SampleResult], str]:
        """Results recorded after stream id ``after_id``, waiting up to ``block_ms`` (None: no wait)."""
        with _redis_errors("reading sample results"):
            reply: Any = self.client.xread({keys.step_results(job_id, step): after_id}, block=block_ms)
        results: list[SampleResult] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                results.append(SampleResult.model_validate_json(fields["r"]))
                after_id = entry_id
        return results, after_id

    def decide_step(self, job_id: str, epoch: str, entry: LedgerEntry, counters: Mapping[str, int]) -> bool:
        """Append ``entry`` and advance the job; False if the step was decided elsewhere."""
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
            keys.STEP_KEYS_TTL_S,
            epoch,
            entry.samples,
        ]
        for name, value in counters.items():
            args += [name, value]
        with _redis_errors("deciding a step"):
            return bool(self._decide_step(keys=job_keys, args=args))

    def ledger(self, job_id: str, batch: int = 1000) -> Iterator[LedgerEntry]:
        """The decided steps in order, read in batches."""
        start = 0
        while True:
            with _redis_errors("reading the ledger"):
                rows = self.client.lrange(keys.ledger(job_id), start, start + batch - 1)
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

    def job_ids(self) -> list[str]:
        with _redis_errors("listing jobs"):
            return cast(list[str], self.client.zrange(keys.jobs_index(), 0, -1))
