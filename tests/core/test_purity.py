from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_io_libraries() -> None:
    code = (
        "import sys, maker_worker.core.voting, maker_worker.core.scaling, maker_worker.core.redflags, "
        "maker_worker.core.pricing, maker_worker.core.backoff, maker_worker.domains.hanoi; "
        "print(sorted({'redis', 'celery', 'httpx', 'kombu'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
