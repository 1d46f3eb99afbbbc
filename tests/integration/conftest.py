"""Real parts: a redis-server process, Celery worker processes and the HTTP simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import redis

from maker_worker.celery_app import create_app
from maker_worker.config import Settings
from maker_worker.embedded import free_port, redis_server_binary, stop_process, wait_until
from maker_worker.sim.server import SimConfig, SimServer

WORKER_READY_TIMEOUT_S = 30.0
QUICK_RETRIES_ENV = {"MAKER_MAX_RETRIES": "2", "MAKER_MAX_DELAY_MS": "500"}
"""Test workers give up on a dead simulator in about a second, not minutes."""


def _start_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    args += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(lambda: _pings(client), "redis-server", process, 10.0)
    client.close()
    return url, process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Event files and embedded Redis data of each test stay in its own folder."""
    monkeypatch.setenv("MAKER_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the session (or ``MAKER_TEST_REDIS_URL``)."""
    given = os.environ.get("MAKER_TEST_REDIS_URL")
    if given:
        yield given
        return
    url, process = _start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop_process(process)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied before each test so no job or queue leaks between tests."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield redis_server
    client.close()


@pytest.fixture
def sim_server() -> Iterator[Callable[..., str]]:
    """Factory: start a simulator with the given SimConfig fields; returns its base URL."""
    started: list[SimServer] = []

    def start(**config: float) -> str:
        server = SimServer(SimConfig(**config))  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., list[subprocess.Popen[bytes]]]]:
    """Factory: start ``count`` real ``maker worker`` processes and wait until they answer a ping."""
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(
        count: int,
        *,
        sim_url: str,
        threads: int = 8,
        extra_env: dict[str, str] | None = None,
        url: str | None = None,
    ) -> list[subprocess.Popen[bytes]]:
        target = url or redis_url
        env = {
            **os.environ,
            "MAKER_REDIS_URL": target,
            "MAKER_SIM_URL": sim_url,
            **QUICK_RETRIES_ENV,
            **(extra_env or {}),
        }
        names = []
        for index in range(count):
            name = f"test{index}-{os.getpid()}-{time.monotonic_ns()}@localhost"
            args = [sys.executable, "-m", "maker_worker", "worker", "--threads", str(threads)]
            args += ["--hostname", name, "--loglevel", "WARNING"]
            log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
            logs.append(log)
            processes.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))
            names.append(name)
        started = processes[-count:]
        _wait_for_workers(target, names, started)
        return started

    yield start
    for process in processes:
        stop_process(process)
    for log in logs:
        log.close()


def _wait_for_workers(redis_url: str, names: list[str], processes: list[subprocess.Popen[bytes]]) -> None:
    app = create_app(Settings(), redis_url)
    deadline_s = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline_s:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a worker process exited during start-up")
        replies = app.control.ping(destination=names, timeout=0.5)
        if {name for reply in replies for name in reply} >= set(names):
            return
    raise RuntimeError(f"workers {names} did not answer a ping within {WORKER_READY_TIMEOUT_S} s")
