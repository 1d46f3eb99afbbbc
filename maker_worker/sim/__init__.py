"""The maker LLM simulator: a test and planning tool speaking the providers' HTTP formats."""

from __future__ import annotations

from maker_worker.sim.answers import SimConfig
from maker_worker.sim.server import SimServer, serve

__all__ = ["SimConfig", "SimServer", "serve"]
