"""The Celery application: JSON only, late acks, one sample task per message, no result backend."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from celery import Celery
from kombu.exceptions import KombuError

from maker_worker.config import Settings
from maker_worker.errors import StoreUnavailableError
from maker_worker.jobs import SampleRequest

SAMPLE_TASK = "maker.sample"
SAMPLE_QUEUE = "maker.samples"

VISIBILITY_MARGIN_S = 300
"""Slack on top of the longest possible sample before Redis hands an unacked task to another worker."""


def create_app(settings: Settings, redis_url: str) -> Celery:
    """Build the Celery app for ``redis_url``; tasks are attached by ``maker_worker.tasks``."""
    app = Celery("maker_worker", broker=redis_url, set_as_current=False)
    app.conf.update(
        # JSON only: a message can never execute code on the worker that decodes it.
        task_serializer="json",
        accept_content=["json"],
        # Samples fan in through Redis inboxes; the result backend is never polled.
        result_backend=None,
        task_ignore_result=True,
        # Ack after the sample ran, and requeue it if the worker dies mid-call: no sample is lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per thread, so a slow call does not hoard queued samples.
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": int(settings.longest_sample_s + VISIBILITY_MARGIN_S)},
        broker_connection_retry_on_startup=True,
        task_default_queue=SAMPLE_QUEUE,
        task_routes={SAMPLE_TASK: {"queue": SAMPLE_QUEUE}},
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
    )
    return app


class CeleryDispatcher:
    """Publishes sample requests as ``maker.sample`` tasks on the samples queue."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def dispatch(self, requests: Sequence[SampleRequest]) -> None:
        """Publish one round of samples.

        Raises:
            StoreUnavailableError: the broker (Redis) could not take them; the coordinator waits
                for Redis and re-dispatches what the step still needs.
        """
        try:
            self._publish(requests)
        except (KombuError, redis.RedisError, OSError) as exc:
            raise StoreUnavailableError(f"cannot publish samples to Redis: {exc}") from exc

    def _publish(self, requests: Sequence[SampleRequest]) -> None:
        # One pipelined round trip for the whole round (kombu >= 5.7 publish batches).
        with self.app.producer_or_acquire() as producer, producer.batch():
            for request in requests:
                self.app.send_task(
                    SAMPLE_TASK,
                    args=[request.model_dump(mode="json")],
                    # Flower shows this instead of a repr of the whole state (and it is cheaper).
                    argsrepr=f"[{request.sample_id}]",
                    kwargsrepr="{}",
                    # The anonymous exchange routes by queue name: no binding lookup per message.
                    exchange="",
                    routing_key=SAMPLE_QUEUE,
                    producer=producer,
                    ignore_result=True,
                )
