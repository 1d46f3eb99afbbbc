from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from maker_worker.supervise import supervise


def test_a_child_that_exits_is_restarted_until_the_supervisor_is_stopped(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = [sys.executable, "-c", f"open({str(runs)!r}, 'a').write('x')"]
    waits: list[float] = []

    def sleep(wait_s: float) -> None:
        waits.append(wait_s)
        if len(waits) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's handler, not pytest's

    handler = signal.getsignal(signal.SIGTERM)
    assert supervise(argv, sleep=sleep) == 0
    # Clean exits are restarted too (Celery exits 0 after a broker loss); a stop during the
    # back-off starts no further child.
    assert runs.read_text() == "xx"
    assert waits == [1.0, 2.0]
    assert signal.getsignal(signal.SIGTERM) is handler
