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


def cost_usd(
    model: str,
    tokens_in: int,
    tokens_out: int,
    prices_usd_per_mtok: Mapping[str, tuple[float, float]] = DEFAULT_PRICES_USD_PER_MTOK,
) -> float:
    """The price of ``tokens_in`` prompt and ``tokens_out`` completion tokens of ``model``."""
    price_in, price_out = prices_usd_per_mtok.get(model, (0.0, 0.0))
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000
