"""A coordinator's lease on a job: taken with SET NX, renewed while driving, lapsing if it dies."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from maker_worker.errors import LeaseLostError
from maker_worker.store import RedisStore

DEFAULT_LEASE_S = 15.0
"""How long a job stays claimed after its coordinator's last renewal (a dead one's job waits this long)."""


def owner_token() -> str:
    """Identifies this coordinator process in lease keys (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The lease one coordinator holds on one job; renewed at a third of its length."""

    def __init__(
        self,
        store: RedisStore,
        job_id: str,
        *,
        owner: str,
        lease_s: float = DEFAULT_LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.lease_s = lease_s
        self.clock = clock
        self._renew_at_s = 0.0

    def acquire(self) -> bool:
        """Take the lease if it is free."""
        if not self.store.claim(self.job_id, self.owner, self.lease_s):
            return False
        self._renew_at_s = self.clock() + self.lease_s / 3
        return True

    def keep(self) -> None:
        """Renew the lease when a third of it has passed.

        Raises:
            LeaseLostError: the lease lapsed and another coordinator took the job.
        """
        if self.clock() < self._renew_at_s:
            return
        if not self.store.renew(self.job_id, self.owner, self.lease_s) and not self.acquire():
            raise LeaseLostError(f"lost the lease on job {self.job_id}; another coordinator drives it")
        self._renew_at_s = self.clock() + self.lease_s / 3

    def confirm(self) -> None:
        """Renew now; raises LeaseLostError if another coordinator holds the job."""
        self._renew_at_s = 0.0
        self.keep()

    def release(self) -> None:
        self.store.release(self.job_id, self.owner)
