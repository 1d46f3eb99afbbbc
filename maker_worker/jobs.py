"""Job and sample messages: the JSON that crosses Redis and Celery, validated by pydantic."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from maker_worker.core.models import JSONValue


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobSpec(_Message):
    """What a job is: fixed when it is submitted."""

    task: str = Field(description="canonical task name, e.g. hanoi-10disk")
    k: int = Field(ge=1)
    provider: str
    model: str
    max_samples_per_step: int = Field(ge=1)
    red_flag_max_tokens: int = Field(ge=1)
    max_output_tokens: int = Field(ge=1)
    first_temperature: float = 0.0
    temperature: float = 0.1
    sample_timeout_s: float = Field(gt=0)


class SampleRequest(_Message):
    """The arguments of one ``maker.sample`` task. Carries no secrets."""

    job_id: str
    step: int
    sample_id: str
    task: str
    state: JSONValue
    previous_move: JSONValue | None
    provider: str
    model: str
    temperature: float
    max_output_tokens: int
    red_flag_max_tokens: int
    check_step_open: bool = True
    """False for a fresh step's first round, which is always wanted: saves a Redis round trip."""


class ApiErrorReport(_Message):
    """One failed provider attempt, reported with the sample for the event log."""

    timestamp: str
    status: int | None
    attempt: int
    retry_after: float | None
    error: str
    rate_limited: bool


class SampleResult(_Message):
    """What a worker reports for one sample."""

    sample_id: str
    vote_key: str | None = None
    red_flag: str | None = None
    error: str | None = None
    error_retryable: bool = True
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    temperature: float = 0.0
    provider: str = ""
    model: str = ""
    finished_at: str = ""
    api_errors: list[ApiErrorReport] = Field(default_factory=list)


class LedgerEntry(_Message):
    """A decided step, appended once to the job's durable ledger."""

    step: int
    move: JSONValue
    next_state: JSONValue
    votes: int
    winner_votes: int
    runner_up_votes: int
    samples: int
    red_flags: int


class JobSummary(BaseModel):
    """The JSON summary of a job (``maker run --json``, ``maker status --json``)."""

    job_id: str
    status: JobStatus
    reason: str | None
    task: str
    steps: int
    steps_done: int
    k: int
    samples: int
    votes: int
    red_flags: int
    red_flags_by_type: dict[str, int]
    api_errors: int
    max_samples_in_a_step: int
    errors_vs_oracle: int | None
    wall_s: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    provider: str
    model: str
    events_path: str | None = None
