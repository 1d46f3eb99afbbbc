"""Keep a child process running: restart it when it dies, stop it when we are told to stop."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before successive restarts; a child that ran for ``HEALTHY_RUN_S`` resets the sequence."""

HEALTHY_RUN_S = 60.0


def supervise(argv: list[str], *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run ``argv`` until it exits cleanly or we get SIGTERM/SIGINT; returns its last exit code."""
    stopping: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failures = 0
    while True:
        started_s = time.monotonic()
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping or code == 0:
            return code
        failures = 0 if time.monotonic() - started_s > HEALTHY_RUN_S else failures + 1
        wait_s = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
        log.warning("worker exited with code %s; restarting in %.1f s", code, wait_s)
        sleep(wait_s)
