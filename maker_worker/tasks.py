"""Thin Celery task wrappers around ``maker_worker.service``."""

from __future__ import annotations

from typing import Any

from celery import Celery

from maker_worker.celery_app import SAMPLE_TASK
from maker_worker.jobs import SampleRequest
from maker_worker.service import WorkerContext, run_sample


def register_tasks(app: Celery, ctx: WorkerContext) -> None:
    """Attach the ``maker.*`` tasks to ``app``, running in ``ctx``."""

    @app.task(name=SAMPLE_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def sample(request: dict[str, Any]) -> str:
        return run_sample(SampleRequest.model_validate(request), ctx)
