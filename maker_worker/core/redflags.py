"""Red-flag rules: which samples are discarded instead of voted (never repaired)."""

from __future__ import annotations

from maker_worker.core.models import Completion, FinishReason, RedFlag

DEFAULT_RED_FLAG_MAX_TOKENS = 750
"""Output tokens above which a response is discarded as too long (the paper's 750)."""


def length_red_flag(completion: Completion, max_tokens: int) -> RedFlag | None:
    """The red flag a response earns before parsing: too long or cut off, else None."""
    if completion.finish_reason is FinishReason.LENGTH:
        return RedFlag.TRUNCATED
    if completion.tokens_out > max_tokens:
        return RedFlag.TOO_LONG
    return None
