"""Per-model prices, for cost reports and budgets."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_PRICES_USD_PER_MTOK: Mapping[str, tuple[float, float]] = {
    "sim-hanoi": (0.0, 0.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-haiku-4-5": (1.00, 5.00),
}
"""(input, output) US dollars per million tokens; models not listed cost 0 (e.g. local Ollama)."""


def prices_for(model: str, overrides: Mapping[str, tuple[float, float]] | None = None) -> tuple[float, float]:
    """(input, output) USD per million tokens for ``model``: configured prices first, then defaults."""
    table = {**DEFAULT_PRICES_USD_PER_MTOK, **(overrides or {})}
    return table.get(model, (0.0, 0.0))
