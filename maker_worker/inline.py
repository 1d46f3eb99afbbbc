"""An in-process dispatcher: runs samples on a thread pool instead of Celery workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from maker_worker.jobs import SampleRequest
from maker_worker.service import WorkerContext, run_sample

log = logging.getLogger(__name__)


class InlineDispatcher:
    """Runs each sample on a local thread; results still fan in through the Redis inbox."""

    def __init__(self, ctx: WorkerContext, threads: int) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="maker-sample")

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        for request in requests:
            self._pool.submit(run_sample, request, self.ctx).add_done_callback(_log_failure)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _log_failure(future: Future[str]) -> None:
    if (error := future.exception()) is not None:
        log.error("inline sample failed: %s", error)
