"""The exception tree of maker_worker.

Expected outcomes (a red-flagged sample, an undecided step, a denied permit) are values;
these exceptions are for failures. Third-party errors are translated at one boundary per
adaptor and chained with ``from``.

    MakerError
    ├── ConfigError                bad configuration or CLI input (exit code 2)
    ├── StoreError                 Redis failing a command
    │   └── StoreUnavailableError  Redis unreachable (may come back: callers wait and retry)
    ├── JobError                   a job cannot be driven or changed as asked
    │   ├── JobNotFoundError
    │   ├── JobCorruptError        the stored record does not parse
    │   └── LeaseLostError         another coordinator now drives the job
    └── ProviderError              an LLM call failed (``retryable``, ``retry_after_s``)
        ├── RateLimitedError       429: wait and retry
        ├── QuotaExhaustedError    billing or quota used up: do not retry
        ├── ProviderUnavailableError  5xx, overloaded, timeout, connection error
        └── ProviderRequestError   non-retryable 4xx, or a malformed response body
"""

from __future__ import annotations


class MakerError(Exception):
    """Root of every error raised by maker_worker."""


class ConfigError(MakerError):
    """Configuration or command-line input is invalid; the message names the fix."""


class StoreError(MakerError):
    """Redis failed a command."""


class StoreUnavailableError(StoreError):
    """Redis could not be reached; it may come back (a restart), so callers may wait and retry."""


class JobError(MakerError):
    """A job cannot be driven as asked."""


class JobNotFoundError(JobError):
    """No job with that id exists."""


class JobCorruptError(JobError):
    """The stored job record cannot be read."""


class LeaseLostError(JobError):
    """This coordinator no longer holds the job's lease; another one drives it now."""


class ProviderError(MakerError):
    """An LLM provider call failed.

    Attributes:
        provider: provider name, e.g. ``openai``.
        status: HTTP status, or None for transport errors.
        retry_after_s: the wait the server asked for, if any.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s


class RateLimitedError(ProviderError):
    """The provider rate-limited the call (HTTP 429)."""

    retryable = True


class QuotaExhaustedError(ProviderError):
    """The account's quota or budget is used up; retrying will not help."""


class ProviderUnavailableError(ProviderError):
    """Server error, overload, timeout or connection failure."""

    retryable = True


class ProviderRequestError(ProviderError):
    """The request was rejected (4xx) or the response was not the documented format."""
