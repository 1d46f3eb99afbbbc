"""The ``maker`` command line."""

from __future__ import annotations

from maker_worker.cli.main import main

__all__ = ["main"]
