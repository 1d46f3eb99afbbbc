"""The maker LLM simulator's HTTP server: a test and planning tool answering Hanoi step prompts.

Standard library only (a keep-alive ``ThreadingHTTPServer`` with daemon threads). Each provider
wire format is one :class:`_WireFormat` (parse the request, render the answer, render an error)
over the same pure answer generator in :mod:`maker_worker.sim.answers`. Only OpenAI chat
completions is served today; Anthropic Messages and Ollama ``/api/chat`` are further entries in
``_ROUTES``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maker_worker.sim.answers import (
    NotAStepPromptError,
    SimAnswer,
    SimConfig,
    count_tokens,
    generate_answer,
    rng_for,
)

__all__ = ["TOOL_NAME", "SimConfig", "SimServer", "serve"]

TOOL_NAME = "maker LLM simulator (test tool)"
MAX_REQUEST_BYTES = 1_000_000

_SHUTDOWN_POLL_S = 0.05
_ASK_MEMORY = 100_000
"""Distinct (prompt, temperature) pairs whose ask counts are remembered (least recent dropped)."""


# --- wire formats -------------------------------------------------------------------------


class BadRequestError(ValueError):
    """The request cannot be answered; the message is sent back to the client."""


@dataclass(frozen=True)
class ChatRequest:
    """A chat request, whatever the wire format it came in."""

    model: str
    prompt_text: str
    user_text: str
    temperature: float
    max_tokens: int | None


@dataclass(frozen=True)
class _WireFormat:
    parse: Callable[[Any], ChatRequest]
    render: Callable[[ChatRequest, SimAnswer, str], dict[str, Any]]
    error: Callable[[str], dict[str, Any]]


def _openai_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadRequestError("body must be a JSON object with a 'messages' list")
    messages = body["messages"]
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise BadRequestError("every message needs a string 'content'")
    users = [m["content"] for m in messages if m.get("role") == "user"]
    temperature = body.get("temperature", 1.0)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if not users or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise BadRequestError("need a user message and a temperature in 0..2")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequestError("max_tokens must be a positive integer")
    prompt_text = "\n".join(str(m.get("role")) + ": " + m["content"] for m in messages)
    return ChatRequest(str(body.get("model", "sim")), prompt_text, users[-1], float(temperature), max_tokens)


def _openai_response(request: ChatRequest, answer: SimAnswer, response_id: str) -> dict[str, Any]:
    prompt_tokens, completion_tokens = count_tokens(request.prompt_text), count_tokens(answer.text)
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _openai_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


_ROUTES = {"/v1/chat/completions": _WireFormat(_openai_request, _openai_response, _openai_error)}


# --- HTTP ---------------------------------------------------------------------------------


class _SimState:
    """What the request threads share: config, statistics and per-prompt ask counts."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
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
            self._send(404, _openai_error(f"no route {self.path}"), outcome="not_found")

    def do_POST(self) -> None:
        wire = _ROUTES.get(self.path.split("?")[0])
        if wire is None:
            self.close_connection = True  # the unread body would be taken for the next request
            self._send(404, _openai_error(f"no route {self.path}"), outcome="not_found")
            return
        try:
            self._answer(wire)
        except (BadRequestError, NotAStepPromptError) as exc:
            self._send(400, wire.error(str(exc)), outcome="bad_request")
        except Exception as exc:  # the server thread must survive any bug
            self.close_connection = True
            self._send(500, wire.error(f"simulator error: {type(exc).__name__}"), outcome="error")

    def _answer(self, wire: _WireFormat) -> None:
        request = wire.parse(self._read_json())
        state = self.server.state
        rng = rng_for(
            state.config.seed,
            request.prompt_text,
            request.temperature,
            state.ask_index(request.prompt_text, request.temperature),
        )
        answer = generate_answer(state.config, request.user_text, request.max_tokens, rng)
        if state.config.latency_ms:
            time.sleep(state.config.latency_ms / 1000.0)
        self._send(200, wire.render(request, answer, state.next_response_id()), outcome=answer.kind)

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise BadRequestError(f"need a Content-Length of at most {MAX_REQUEST_BYTES} bytes")
        try:
            return json.loads(self.rfile.read(int(length)))
        except ValueError as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from exc

    def _send(self, status: int, body: dict[str, Any], *, outcome: str | None = None) -> None:
        payload = json.dumps(body).encode()
        if outcome is not None:  # before replying, so a client that got its answer sees it counted
            self.server.state.record(outcome)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class SimServer:
    """The simulator serving HTTP from a background thread.

    Example::

        with SimServer(SimConfig(p=0.9)) as sim:
            provider = OpenAIProvider(base_url=sim.base_url, ...)
    """

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self._address = (host, port)
        self._state = _SimState(config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the URL to give an OpenAI-compatible client."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Requests served so far, by outcome (answer kinds, ``bad_request``, ``not_found``, ``error``)."""
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
        print(f"{TOOL_NAME} listening on {sim.base_url}", file=sys.stderr, flush=True)
        threading.Event().wait()
