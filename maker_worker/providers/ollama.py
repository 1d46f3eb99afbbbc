"""Adaptor for Ollama's native chat API (``POST {base_url}/api/chat`` with ``stream: false``).

``base_url`` is the server root, like ``MAKER_OLLAMA_URL`` (``http://localhost:11434``). Ollama
has no API key; one given anyway is sent as a bearer token (for an authenticating proxy). The
client and retries are :class:`~maker_worker.providers.http.HttpProvider`'s; this module builds
the request, reads the response and classifies Ollama's ``{"error": "..."}`` bodies in
:meth:`OllamaProvider._status_error`: a 404 for a model never pulled says to run ``ollama pull``;
429 is retried after its wait; 5xx and connection failures are retried as unavailable.
"""

from __future__ import annotations

from typing import Any

from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import ProviderError
from maker_worker.providers.http import ErrorResponse, HttpProvider, chat_messages, token_count

_DONE_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OllamaProvider(HttpProvider):
    """A ``Provider`` speaking Ollama's native ``/api/chat`` format.

    Constructor arguments: see :class:`~maker_worker.providers.http.HttpProvider`.
    """

    default_name = "ollama"
    path = "/api/chat"
    api = "Ollama /api/chat"

    def _request_body(
        self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": chat_messages(prompt),
            "stream": False,
            "options": {"temperature": temperature, "num_predict": max_tokens},
        }

    def _completion(self, body: Any, prompt: Prompt) -> Completion:
        if not isinstance(body, dict):
            raise self._malformed("body is not a JSON object")
        message = body.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise self._malformed("no message.content string")
        return Completion(
            text=text,
            tokens_in=token_count(body, "prompt_eval_count", prompt.system + prompt.user),
            tokens_out=token_count(body, "eval_count", text),
            finish_reason=_DONE_REASONS.get(str(body.get("done_reason")), FinishReason.OTHER),
        )

    def _status_error(self, response: ErrorResponse) -> ProviderError:
        message = _error_message(response)
        if response.status == 404 and "model" in message.lower() and "not found" in message.lower():
            model = response.request.get("model")
            return response.rejected(
                "model not found",
                f"{response.excerpt()}; run `ollama pull {model}` on the Ollama server at {response.url}",
            )
        return response.by_status()


def _error_message(response: ErrorResponse) -> str:
    """The ``error`` string of an Ollama error body, or ``""``."""
    body = response.json_body()
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else ""
