"""The maker LLM simulator's HTTP server: a test and planning tool answering Hanoi step prompts.

Standard library only (a keep-alive ``ThreadingHTTPServer`` with daemon threads). It speaks each
provider format of :data:`maker_worker.sim.formats.ROUTES` (OpenAI chat completions, Anthropic
Messages, Ollama ``/api/chat``) over the same pure answer generator in
:mod:`maker_worker.sim.answers`. A chat request goes through, in order:

1. parsing (400 in the format's error shape when it cannot be answered);
2. the simulator's own RPM/TPM limits (:mod:`maker_worker.sim.limits`): 429 with ``retry-after``
   and the format's rate-limit headers, as the real services send them;
3. injected failures at ``error_rate``: 500 JSON, 502 HTML page, 503, and 529 for Anthropic;
4. the answer, after ``latency_ms`` (plus ``slow_ms`` for a share ``slow_rate`` of answers).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maker_worker.sim.answers import NotAStepPromptError, SimConfig, count_tokens, generate_answer, rng_for
from maker_worker.sim.formats import (
    BAD_GATEWAY_HTML,
    ROUTES,
    BadRequestError,
    Failure,
    WireFormat,
    go_duration,
    openai_error,
)
from maker_worker.sim.limits import Verdict, WindowLimiter

__all__ = ["TOOL_NAME", "SimConfig", "SimServer", "serve"]

TOOL_NAME = "maker LLM simulator (test tool)"
MAX_REQUEST_BYTES = 1_000_000

_SHUTDOWN_POLL_S = 0.05
_ASK_MEMORY = 100_000
"""Distinct (prompt, temperature) pairs whose ask counts are remembered (least recent dropped)."""

_INJECTED = {
    500: (
        Failure.SERVER_ERROR,
        "The server had an error while processing your request (injected by the simulator)",
    ),
    503: (Failure.UNAVAILABLE, "The service is temporarily unavailable (injected by the simulator)"),
    529: (Failure.OVERLOADED, "Overloaded (injected by the simulator)"),
}
"""Injected JSON errors by status; 502 is an HTML page from a pretend proxy instead."""


class _SimState:
    """What the request threads share: config, limits, statistics and per-prompt ask counts."""

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.config = config
        self.limiter = WindowLimiter(config.rpm_limit, config.tpm_limit, clock)
        self.wall_clock = wall_clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._chaos = random.Random(config.seed)
        self._stats: Counter[str] = Counter()
        self._asks: OrderedDict[bytes, int] = OrderedDict()
        self._responses = 0

    def record(self, outcome: str) -> None:
        with self._lock:
            self._stats[outcome] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def next_response_id(self) -> str:
        with self._lock:
            self._responses += 1
            return f"sim-{self._responses}"

    def ask_index(self, prompt_text: str, temperature: float) -> int:
        """How many times this prompt was asked before at this temperature (0 at temperature 0)."""
        if temperature == 0:
            return 0
        key = hashlib.sha256(f"{float(temperature)!r}\x1f{prompt_text}".encode()).digest()
        with self._lock:
            index = self._asks.pop(key, 0)
            self._asks[key] = index + 1
            if len(self._asks) > _ASK_MEMORY:
                self._asks.popitem(last=False)
        return index

    def injected_status(self, statuses: tuple[int, ...]) -> int | None:
        """A status to fail with (chance ``error_rate``), or None to answer."""
        if not self.config.error_rate:
            return None
        with self._lock:
            return self._chaos.choice(statuses) if self._chaos.random() < self.config.error_rate else None

    def pause(self) -> None:
        """Take ``latency_ms``, plus ``slow_ms`` for a share ``slow_rate`` of answers."""
        delay_ms = self.config.latency_ms
        if self.config.slow_rate:
            with self._lock:
                slow = self._chaos.random() < self.config.slow_rate
            if slow:
                delay_ms += self.config.slow_ms
                self.record("slow")
        if delay_ms:
            self._sleep(delay_ms / 1000.0)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: _SimState) -> None:
        super().__init__(address, _Handler)
        self.state = state

    def handle_error(self, request: object, client_address: object) -> None:
        """Drop the broken connection silently; the server keeps serving."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms to every response
    timeout = 60
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/health":
            self._send(200, {"status": "ok", "tool": TOOL_NAME})
        else:
            self._send(404, openai_error(Failure.NOT_FOUND, f"no route {self.path}"), outcome="not_found")

    def do_POST(self) -> None:
        wire = ROUTES.get(self.path.split("?")[0])
        if wire is None:
            self.close_connection = True  # the unread body would be taken for the next request
            self._send(404, openai_error(Failure.NOT_FOUND, f"no route {self.path}"), outcome="not_found")
            return
        try:
            self._answer(wire)
        except (BadRequestError, NotAStepPromptError) as exc:
            self._send(400, wire.error(Failure.BAD_REQUEST, str(exc)), outcome="bad_request")
        except Exception as exc:  # the server thread must survive any bug
            self.close_connection = True
            message = f"simulator error: {type(exc).__name__}"
            self._send(500, wire.error(Failure.SERVER_ERROR, message), outcome="error")

    def _answer(self, wire: WireFormat) -> None:
        request = wire.parse(self._read_json())
        state = self.server.state
        verdict = state.limiter.admit(count_tokens(request.prompt_text))
        if verdict.exceeded is not None:
            self._send_rate_limited(wire, verdict)
            return
        status = state.injected_status(wire.injected_statuses)
        if status is not None:
            self._send_injected(wire, status)
            return
        ask_index = state.ask_index(request.prompt_text, request.temperature)
        rng = rng_for(state.config.seed, request.prompt_text, request.temperature, ask_index)
        answer = generate_answer(state.config, request.user_text, request.max_tokens, rng)
        state.limiter.charge(count_tokens(answer.text))
        state.pause()
        headers = (
            wire.limit_headers(state.limiter.status(), state.wall_clock()) if state.limiter.enabled else {}
        )
        self._send(200, wire.render(request, answer, state.next_response_id()), headers, outcome=answer.kind)

    def _send_rate_limited(self, wire: WireFormat, verdict: Verdict) -> None:
        failure = (
            Failure.RATE_LIMITED_REQUESTS if verdict.exceeded == "requests" else Failure.RATE_LIMITED_TOKENS
        )
        message = (
            f"Rate limit reached for {verdict.exceeded} per minute (simulator limits). "
            f"Please try again in {go_duration(verdict.retry_after_s)}."
        )
        headers = {"retry-after": str(math.ceil(verdict.retry_after_s))}
        headers |= wire.limit_headers(verdict.status, self.server.state.wall_clock())
        self._send(429, wire.error(failure, message), headers, outcome="rate_limited")

    def _send_injected(self, wire: WireFormat, status: int) -> None:
        if status == 502:
            self._send(502, BAD_GATEWAY_HTML, content_type="text/html", outcome="error_502")
            return
        failure, message = _INJECTED[status]
        self._send(status, wire.error(failure, message), outcome=f"error_{status}")

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise BadRequestError(f"need a Content-Length of at most {MAX_REQUEST_BYTES} bytes")
        try:
            return json.loads(self.rfile.read(int(length)))
        except ValueError as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from exc

    def _send(
        self,
        status: int,
        body: dict[str, Any] | bytes,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
        outcome: str | None = None,
    ) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        if outcome is not None:  # before replying, so a client that got its answer sees it counted
            self.server.state.record(outcome)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class SimServer:
    """The simulator serving HTTP from a background thread.

    Example::

        with SimServer(SimConfig(p=0.9)) as sim:
            provider = OpenAIProvider(base_url=sim.base_url, ...)
            claude = AnthropicProvider(base_url=sim.root_url, ...)

    Args:
        config: how the simulated model and service behave.
        host: the interface to bind.
        port: the port to bind; 0 picks a free one.
        clock: monotonic seconds for the rate-limit window (tests move it by hand).
        wall_clock: epoch seconds for the RFC 3339 reset timestamps of the Anthropic format.
        sleep: takes the answer delays (``latency_ms``, ``slow_ms``).
    """

    def __init__(
        self,
        config: SimConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._address = (host, port)
        self._state = _SimState(config, clock, wall_clock, sleep)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``, the base URL for Anthropic and Ollama clients."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the URL to give an OpenAI-compatible client."""
        return self.root_url + "/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Requests served so far, by outcome.

        Answer kinds (``correct``, ``wrong``, ``rambling``, ...), ``bad_request``, ``not_found``,
        ``error`` (a simulator bug), ``rate_limited`` (429s), ``error_500``, ``error_502``,
        ``error_503``, ``error_529`` (injected); plus ``slow``, answers also counted by kind that
        were delayed by ``slow_ms``.
        """
        return self._state.stats()

    def start(self) -> str:
        """Bind and serve in a daemon thread; returns :attr:`base_url`."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self._address, self._state)
            self._thread = threading.Thread(
                target=self._serve, args=(self._httpd,), name="maker-sim", daemon=True
            )
            self._thread.start()
        return self.base_url

    @staticmethod
    def _serve(httpd: _HTTPServer) -> None:
        httpd.serve_forever(poll_interval=_SHUTDOWN_POLL_S)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
        self._httpd, self._thread = None, None

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(config: SimConfig, host: str, port: int) -> None:
    """Serve the simulator until the process is interrupted (the ``maker sim-server`` command)."""
    with SimServer(config, host, port) as sim:
        print(
            f"{TOOL_NAME} listening on {sim.base_url} (OpenAI format); Anthropic and Ollama clients "
            f"use {sim.root_url}",
            file=sys.stderr,
            flush=True,
        )
        threading.Event().wait()
