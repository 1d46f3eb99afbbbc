from __future__ import annotations

from maker_worker.cli import main

main()
