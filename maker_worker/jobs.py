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
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Statuses of jobs a coordinator may claim and drive."""
UNFINISHED_STATUSES = frozenset(JobStatus) - FINISHED_STATUSES
"""Statuses a job can still leave; a finished status is final (but see ``RedisStore.set_status``)."""


class ErrorKind(StrEnum):
    """Why a sample produced no answer; all but PROVIDER_UNAVAILABLE pause the job."""

    PROVIDER_UNAVAILABLE = "provider_unavailable"
    QUOTA_EXHAUSTED = "quota_exhausted"
    PROVIDER_REJECTED = "provider_rejected"
    BUDGET_EXHAUSTED = "budget_exhausted"
    WORKER_CONFIG = "worker_config"


CALL_ERROR_KINDS = frozenset(
    {ErrorKind.PROVIDER_UNAVAILABLE, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.PROVIDER_REJECTED}
)
"""Failures of a model call (counted in ``api_errors``); the others stop a sample before its call."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fallback(_Message):
    """A provider/model to continue on when the current one reports its quota exhausted."""

    provider: str
    model: str
    price_in_usd_per_mtok: float = 0.0
    price_out_usd_per_mtok: float = 0.0


class JobSpec(_Message):
    """What a job is: fixed when it is submitted (a fallback switches its provider and model)."""

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
    price_in_usd_per_mtok: float = Field(default=0.0, ge=0)
    price_out_usd_per_mtok: float = Field(default=0.0, ge=0)
    fallbacks: list[Fallback] = Field(default_factory=list)

    def fall_back(self) -> JobSpec:
        """This spec moved to its first fallback provider (which leaves the list)."""
        first, *rest = self.fallbacks
        return self.model_copy(update={**first.model_dump(), "fallbacks": rest})

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """The price of a call with these token counts, at the prices fixed when the job was submitted."""
        return (tokens_in * self.price_in_usd_per_mtok + tokens_out * self.price_out_usd_per_mtok) / 1e6


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
    price_in_usd_per_mtok: float = 0.0
    price_out_usd_per_mtok: float = 0.0
    budget_limited: bool = False
    """The job has a budget: reserve each call's cost against it before calling."""
    check_step_open: bool = True
    """False for the first round a coordinator sends for a step, which is always wanted: saves a
    Redis round trip."""
    basis: str = ""
    """Digest of the (state, previous move) asked from; a step opened speculatively from a leader
    that then lost gets a new basis, and votes from the old one no longer count."""


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
    error_kind: ErrorKind | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    temperature: float = 0.0
    provider: str = ""
    model: str = ""
    finished_at: str = ""
    api_errors: list[ApiErrorReport] = Field(default_factory=list)
    basis: str = ""
    """The request's basis, echoed back."""


class LedgerEntry(_Message):
    """A decided step, appended once to the job's durable ledger."""

    step: int
    move: JSONValue
    next_state: JSONValue
    votes: int
    winner_votes: int
    runner_up_votes: int
    samples: int
    """Every result read for the step (all paid for), votes from a lost speculation included."""
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
    discarded_votes: int = 0
    """Answers paid for but not counted as votes: asked from a speculative state that lost, or a
    second answer at the deterministic first temperature from one state."""
    late_samples: int = 0
    """Samples that came back after their step was decided: paid for (in samples and tokens), unread."""
    api_errors: int
    max_samples_in_a_step: int
    errors_vs_oracle: int | None
    wall_s: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    budget_usd: float | None
    provider_fallbacks: list[str]
    provider: str
    model: str
    events_path: str | None = None
