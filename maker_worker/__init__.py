"""maker_worker: MAKER long-horizon LLM tasks on distributed Celery workers and Redis."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
