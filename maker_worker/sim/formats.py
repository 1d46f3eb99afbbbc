"""The provider wire formats the simulator speaks, one :class:`WireFormat` per route in :data:`ROUTES`.

Each format parses its request into a neutral :class:`ChatRequest`, renders an answer of the
pure generator in :mod:`maker_worker.sim.answers`, renders an error body, and renders the
rate-limit headers the real service sends:

- OpenAI chat completions (``POST /v1/chat/completions``): ``x-ratelimit-limit-requests``,
  ``-remaining-requests``, ``-reset-requests`` (a duration such as ``1.2s`` or ``6m0s``) and the
  same for tokens; errors ``{"error": {"message", "type", "param", "code"}}``.
- Anthropic Messages (``POST /v1/messages``): ``anthropic-ratelimit-requests-limit``,
  ``-remaining``, ``-reset`` (RFC 3339) and the same for tokens; errors
  ``{"type": "error", "error": {"type", "message"}}``; overload is 529 ``overloaded_error``.
- Ollama (``POST /api/chat``, ``stream: false`` only): no rate-limit headers; errors ``{"error": "..."}``.

Requests of every format with the same system and user text share one ``prompt_text``, so a
seed gives the same answers whichever format asks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from maker_worker.sim.answers import SimAnswer, count_tokens
from maker_worker.sim.limits import LimitStatus

BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
"""The page a reverse proxy sends when the service behind it fails: injected 502s carry it."""


class BadRequestError(ValueError):
    """The request cannot be answered; the message is sent back to the client."""


class Failure(StrEnum):
    """What went wrong, whatever the format; each format names it in its own error body."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    RATE_LIMITED_REQUESTS = "rate_limited_requests"
    RATE_LIMITED_TOKENS = "rate_limited_tokens"


@dataclass(frozen=True)
class ChatRequest:
    """A chat request, whatever the wire format it came in."""

    model: str
    prompt_text: str
    user_text: str
    temperature: float
    max_tokens: int | None


@dataclass(frozen=True)
class WireFormat:
    """One provider format: request parser, answer and error renderers, rate-limit headers.

    Attributes:
        injected_statuses: the statuses ``error_rate`` picks from for this format.
    """

    parse: Callable[[Any], ChatRequest]
    render: Callable[[ChatRequest, SimAnswer, str], dict[str, Any]]
    error: Callable[[Failure, str], dict[str, Any]]
    limit_headers: Callable[[LimitStatus, float], dict[str, str]]
    injected_statuses: tuple[int, ...] = (500, 502, 503)


def go_duration(seconds: float) -> str:
    """A duration the way OpenAI's reset headers write it: ``20ms``, ``1.2s``, ``6m0s``, ``1m9.696s``."""
    total_ms = max(round(seconds * 1000), 0)
    if total_ms == 0:
        return "0s"
    if total_ms < 1000:
        return f"{total_ms}ms"
    minutes, rest_ms = divmod(total_ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _rfc3339(epoch_s: float) -> str:
    """Whole seconds, rounded up so a client waiting until then never comes back early."""
    return datetime.fromtimestamp(math.ceil(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(limit: float) -> str:
    return f"{limit:g}"


# --- shared request parsing -----------------------------------------------------------------


def _chat_messages(messages: Any) -> tuple[str, str]:
    """``(prompt_text, last user text)`` of an OpenAI-style ``messages`` list of string contents."""
    if not isinstance(messages, list):
        raise BadRequestError("body must be a JSON object with a 'messages' list")
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise BadRequestError("every message needs a string 'content'")
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if not users:
        raise BadRequestError("need a user message")
    prompt_text = "\n".join(str(m.get("role")) + ": " + m["content"] for m in messages)
    return prompt_text, users[-1]


def _temperature(value: Any, highest: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= highest:
        raise BadRequestError(f"temperature must be a number in 0..{highest:g}")
    return float(value)


def _max_tokens(value: Any, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BadRequestError(f"{name} must be a positive integer")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    return body


# --- OpenAI chat completions ----------------------------------------------------------------


def _openai_request(body: Any) -> ChatRequest:
    body = _object(body)
    prompt_text, user_text = _chat_messages(body.get("messages"))
    temperature = _temperature(body.get("temperature", 1.0), 2.0)
    max_tokens = _max_tokens(body.get("max_completion_tokens", body.get("max_tokens")), "max_tokens")
    return ChatRequest(str(body.get("model", "sim")), prompt_text, user_text, temperature, max_tokens)


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


_OPENAI_ERRORS: dict[Failure, tuple[str, str | None]] = {
    Failure.BAD_REQUEST: ("invalid_request_error", None),
    Failure.NOT_FOUND: ("invalid_request_error", "unknown_url"),
    Failure.SERVER_ERROR: ("server_error", None),
    Failure.UNAVAILABLE: ("server_error", None),
    Failure.OVERLOADED: ("server_error", None),
    Failure.RATE_LIMITED_REQUESTS: ("requests", "rate_limit_exceeded"),
    Failure.RATE_LIMITED_TOKENS: ("tokens", "rate_limit_exceeded"),
}


def openai_error(failure: Failure, message: str) -> dict[str, Any]:
    """An OpenAI error body."""
    error_type, code = _OPENAI_ERRORS[failure]
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _openai_limit_headers(status: LimitStatus, wall_now_s: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, quota in (("requests", status.requests), ("tokens", status.tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{name}"] = _number(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(quota.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(quota.reset_s)
    return headers


# --- Anthropic Messages ---------------------------------------------------------------------


def _anthropic_text(content: Any) -> str:
    """A string content, or the text of a list of ``{"type": "text", "text": ...}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        for block in content
    ):
        return "".join(block["text"] for block in content)
    raise BadRequestError("content must be a string or a list of text blocks")


def _anthropic_request(body: Any) -> ChatRequest:
    body = _object(body)
    if not isinstance(body.get("messages"), list) or not all(isinstance(m, dict) for m in body["messages"]):
        raise BadRequestError("messages: a list of message objects is required")
    if body.get("max_tokens") is None:
        raise BadRequestError("max_tokens: field required")
    system = _anthropic_text(body.get("system", ""))
    turns = [{"role": m.get("role"), "content": _anthropic_text(m.get("content"))} for m in body["messages"]]
    prompt_text, user_text = _chat_messages(
        ([{"role": "system", "content": system}] if system else []) + turns
    )
    temperature = _temperature(body.get("temperature", 1.0), 1.0)
    max_tokens = _max_tokens(body["max_tokens"], "max_tokens")
    return ChatRequest(str(body.get("model", "sim")), prompt_text, user_text, temperature, max_tokens)


def _anthropic_response(request: ChatRequest, answer: SimAnswer, response_id: str) -> dict[str, Any]:
    return {
        "id": f"msg_{response_id}",
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": "max_tokens" if answer.finish_reason == "length" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": count_tokens(request.prompt_text),
            "output_tokens": count_tokens(answer.text),
        },
    }


_ANTHROPIC_ERRORS = {
    Failure.BAD_REQUEST: "invalid_request_error",
    Failure.NOT_FOUND: "not_found_error",
    Failure.SERVER_ERROR: "api_error",
    Failure.UNAVAILABLE: "api_error",
    Failure.OVERLOADED: "overloaded_error",
    Failure.RATE_LIMITED_REQUESTS: "rate_limit_error",
    Failure.RATE_LIMITED_TOKENS: "rate_limit_error",
}


def _anthropic_error(failure: Failure, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS[failure], "message": message}}


def _anthropic_limit_headers(status: LimitStatus, wall_now_s: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, quota in (("requests", status.requests), ("tokens", status.tokens)):
        if quota is not None:
            headers[f"anthropic-ratelimit-{name}-limit"] = _number(quota.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(quota.remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(wall_now_s + quota.reset_s)
    return headers


# --- Ollama /api/chat -----------------------------------------------------------------------


def _ollama_request(body: Any) -> ChatRequest:
    body = _object(body)
    if body.get("stream", True) is not False:
        raise BadRequestError('the simulator answers non-streaming requests only; send "stream": false')
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise BadRequestError("options must be an object")
    prompt_text, user_text = _chat_messages(body.get("messages"))
    temperature = _temperature(options.get("temperature", 0.8), 2.0)
    num_predict = options.get("num_predict")
    max_tokens = None if num_predict in (-1, -2) else _max_tokens(num_predict, "num_predict")
    return ChatRequest(str(body.get("model", "sim")), prompt_text, user_text, temperature, max_tokens)


def _ollama_response(request: ChatRequest, answer: SimAnswer, response_id: str) -> dict[str, Any]:
    return {
        "model": request.model,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "message": {"role": "assistant", "content": answer.text},
        "done_reason": answer.finish_reason,
        "done": True,
        "prompt_eval_count": count_tokens(request.prompt_text),
        "eval_count": count_tokens(answer.text),
    }


def _ollama_error(failure: Failure, message: str) -> dict[str, Any]:
    return {"error": message}


def _no_limit_headers(status: LimitStatus, wall_now_s: float) -> dict[str, str]:
    return {}


ROUTES = {
    "/v1/chat/completions": WireFormat(
        _openai_request, _openai_response, openai_error, _openai_limit_headers
    ),
    "/v1/messages": WireFormat(
        _anthropic_request,
        _anthropic_response,
        _anthropic_error,
        _anthropic_limit_headers,
        injected_statuses=(500, 502, 503, 529),
    ),
    "/api/chat": WireFormat(_ollama_request, _ollama_response, _ollama_error, _no_limit_headers),
}
"""The chat routes by path."""
