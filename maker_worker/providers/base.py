"""The one interface every LLM provider adaptor implements."""

from __future__ import annotations

from typing import Protocol

from maker_worker.core.models import Completion, Prompt


class Provider(Protocol):
    """Sends one prompt to a model and returns the normalised completion.

    Implementations retry transient failures inside ``complete`` and raise a
    ``maker_worker.errors.ProviderError`` subclass when they give up.
    """

    name: str

    def complete(self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int) -> Completion:
        """Return the model's completion of ``prompt``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
