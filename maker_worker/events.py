"""Job events: JSON lines in the event file, mirrored to a Redis stream for live readers.

Every event has ``event``, ``timestamp`` (ISO 8601 UTC), ``job_id`` and, where it applies,
``step``. Only the coordinator writes a job's event file, so lines never interleave; workers
report what they saw inside their sample results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from maker_worker.jobs import ApiErrorReport, SampleResult

log = logging.getLogger(__name__)

Event = dict[str, Any]


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(name: str, job_id: str, step: int | None = None, **fields: Any) -> Event:
    event: Event = {"event": name, "timestamp": utc_timestamp(), "job_id": job_id}
    if step is not None:
        event["step"] = step
    event.update(fields)
    return event


def sample_events(job_id: str, step: int, result: SampleResult) -> list[Event]:
    """The events one sample result stands for, in the order they happened."""
    events = [_api_error_event(job_id, step, result, report) for report in result.api_errors]
    if result.error is not None:
        return events
    common = {"timestamp": result.finished_at or utc_timestamp(), "sample_id": result.sample_id}
    completed = make_event(
        "SampleCompleted",
        job_id,
        step,
        provider=result.provider,
        model=result.model,
        tokens_in=result.tokens_in,
        tokens_used=result.tokens_out,
        latency_ms=round(result.latency_ms, 3),
        temperature=result.temperature,
        red_flag=result.red_flag,
    )
    events.append(completed | common)
    if result.red_flag is not None:
        flagged = make_event(
            "RedFlagTriggered", job_id, step, flag_type=result.red_flag, tokens_used=result.tokens_out
        )
        events.append(flagged | common)
    return events


def _api_error_event(job_id: str, step: int, result: SampleResult, report: ApiErrorReport) -> Event:
    name = "RateLimited" if report.rate_limited else "LlmApiError"
    event = make_event(
        name,
        job_id,
        step,
        sample_id=result.sample_id,
        provider=result.provider,
        status=report.status,
        attempt=report.attempt,
        retry_after=report.retry_after,
        error=report.error,
    )
    event["timestamp"] = report.timestamp
    return event


class EventLog:
    """Buffers events and writes them to the JSON-lines file and a live stream on ``flush``.

    A failing sink is logged and the work carries on: observability never fails a job.
    """

    def __init__(self, path: Path, publish: Callable[[Sequence[Event]], None] | None = None) -> None:
        self.path = path
        self._publish = publish
        self._pending: list[Event] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._pending.append(event)

    def extend(self, events: Sequence[Event]) -> None:
        self._pending.extend(events)

    def flush(self) -> None:
        events, self._pending = self._pending, []
        if not events:
            return
        try:
            self._file.write("".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events))
            self._file.flush()
        except OSError:
            log.exception("cannot write events to %s", self.path)
        if self._publish is not None:
            try:
                self._publish(events)
            except Exception:
                log.exception("cannot publish events to the live stream")

    def close(self) -> None:
        self.flush()
        self._file.close()
