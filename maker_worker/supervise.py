"""Keep a child process running: restart it when it dies, stop it when we are told to stop."""

from __future__ import annotations

import ctypes
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

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child (Linux): get SIGKILL if the supervisor dies, so no worker is ever orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's own SIGTERM forwarding still applies


class Supervisor:
    """Runs ``argv`` until SIGTERM/SIGINT, restarting it whenever it exits on its own.

    A worker never stops by itself in normal operation: Celery exits (even with code 0) after
    an "unrecoverable" broker error, which is exactly when it should come back.
    """

    def __init__(self, argv: list[str], sleep: Callable[[float], None] = time.sleep) -> None:
        self.argv = argv
        self.sleep = sleep
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Returns the child's last exit code once told to stop."""
        previous = {signum: signal.signal(signum, self.stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _loop(self) -> int:
        failures, code = 0, 0
        while not self.stopping:
            started_s = time.monotonic()
            self.child = subprocess.Popen(self.argv, preexec_fn=_die_with_parent)
            if self.stopping:  # told to stop while starting it
                self.child.send_signal(signal.SIGTERM)
            code = self.child.wait()
            if self.stopping:
                return code
            failures = 0 if time.monotonic() - started_s > HEALTHY_RUN_S else failures + 1
            wait_s = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning("worker exited with code %s; restarting in %.1f s", code, wait_s)
            self.sleep(wait_s)
        return code


def supervise(argv: list[str], *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Keep ``argv`` running until SIGTERM/SIGINT; returns its last exit code."""
    return Supervisor(argv, sleep).run()
