"""Adaptor for any OpenAI-compatible chat-completions server.

Works with OpenAI, vLLM, llama.cpp's server, Ollama's ``/v1`` and the maker simulator: the
``base_url`` includes the ``/v1`` part, like ``OPENAI_BASE_URL``. The client, retries and
key redaction are :class:`~maker_worker.providers.http.HttpProvider`'s; this module builds the
request, reads the response and classifies OpenAI's error bodies in :meth:`OpenAIProvider._status_error`.
"""

from __future__ import annotations

from typing import Any

from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import ProviderError
from maker_worker.providers.http import ErrorResponse, HttpProvider, chat_messages, token_count

_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OpenAIProvider(HttpProvider):
    """A ``Provider`` speaking the OpenAI chat-completions wire format (``POST {base_url}/chat/completions``).

    Constructor arguments: see :class:`~maker_worker.providers.http.HttpProvider`; without an API
    key no ``Authorization`` header is sent (local servers, the simulator).
    """

    default_name = "openai"
    path = "/chat/completions"
    api = "chat-completions"

    def _request_body(
        self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": chat_messages(prompt),
            "temperature": temperature,
            "max_tokens": max_tokens,
        }

    def _completion(self, body: Any, prompt: Prompt) -> Completion:
        if not isinstance(body, dict):
            raise self._malformed("body is not a JSON object")
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._malformed("no choices[0]")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise self._malformed("no choices[0].message.content string")
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            text=text,
            tokens_in=token_count(usage, "prompt_tokens", prompt.system + prompt.user),
            tokens_out=token_count(usage, "completion_tokens", text),
            finish_reason=_FINISH_REASONS.get(str(choices[0].get("finish_reason")), FinishReason.OTHER),
        )

    def _status_error(self, response: ErrorResponse) -> ProviderError:
        """402 and 429 ``insufficient_quota`` are quota; 401 names the key variable; else by status."""
        if response.status == 402 or (response.status == 429 and _QUOTA_CODES & _error_codes(response)):
            return response.quota_exhausted()
        if response.status == 401:
            return response.rejected(
                "authentication failed",
                f"check the API key variable (OPENAI_API_KEY for OpenAI) used for {response.url}",
            )
        return response.by_status()


def _error_codes(response: ErrorResponse) -> set[str]:
    """The ``code`` and ``type`` of an OpenAI-style ``{"error": {...}}`` body, if any."""
    body = response.json_body()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    return {value for value in (error.get("code"), error.get("type")) if isinstance(value, str)}
