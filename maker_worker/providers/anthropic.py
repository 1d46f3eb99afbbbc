"""Adaptor for the Anthropic Messages API (``POST {base_url}/v1/messages``).

``base_url`` is the API root without ``/v1``, like ``ANTHROPIC_BASE_URL``
(``https://api.anthropic.com``). The client, retries and key redaction are
:class:`~maker_worker.providers.http.HttpProvider`'s; this module builds the request, reads the
response and classifies Anthropic's error bodies (``{"type": "error", "error": {"type": ...,
"message": ...}}``) in :meth:`AnthropicProvider._status_error`:

- 429 ``rate_limit_error``: retried after ``retry-after`` or the ``anthropic-ratelimit-*-reset``
  timestamps; but a 429 whose ``error.details.error_code`` is ``enforced_spend_limit_reached``,
  a 402 ``billing_error`` and a 400 about the credit balance or billing are quota: not retried.
- 529 ``overloaded_error``, 500 ``api_error`` and any 5xx (HTML pages from proxies too): retried.
- 401 ``authentication_error``, 403 ``permission_error``, 404 ``not_found_error``, other 4xx: not retried.
"""

from __future__ import annotations

import re
from typing import Any

from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.errors import ProviderError
from maker_worker.providers.http import ErrorResponse, HttpProvider, token_count

API_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent with every request."""

_STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
}
_UNAVAILABLE_TYPES = frozenset({"overloaded_error", "api_error"})
_SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached"})
_BILLING_WORDS = re.compile(r"credit balance|billing|spend(ing)? limit|purchase credits", re.IGNORECASE)


class AnthropicProvider(HttpProvider):
    """A ``Provider`` speaking the Anthropic Messages wire format.

    Constructor arguments: see :class:`~maker_worker.providers.http.HttpProvider`; the key is sent
    as ``x-api-key``.
    """

    default_name = "anthropic"
    path = "/v1/messages"
    api = "Messages API"

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        return (headers | {"x-api-key": api_key}) if api_key else headers

    def _request_body(
        self, prompt: Prompt, *, model: str, temperature: float, max_tokens: int
    ) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": max_tokens,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
            "temperature": temperature,
        }

    def _completion(self, body: Any, prompt: Prompt) -> Completion:
        if not isinstance(body, dict):
            raise self._malformed("body is not a JSON object")
        blocks = body.get("content")
        if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
            raise self._malformed("no content[] list of blocks")
        texts = [block.get("text") for block in blocks if block.get("type") == "text"]
        if not all(isinstance(text, str) for text in texts):
            raise self._malformed("a text block without a text string")
        text = "".join(texts)
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            text=text,
            tokens_in=token_count(usage, "input_tokens", prompt.system + prompt.user),
            tokens_out=token_count(usage, "output_tokens", text),
            finish_reason=_STOP_REASONS.get(str(body.get("stop_reason")), FinishReason.OTHER),
        )

    def _status_error(self, response: ErrorResponse) -> ProviderError:
        error = _error_object(response)
        error_type = str(error.get("type", ""))
        if _is_quota(response.status, error):
            return response.quota_exhausted()
        if response.status == 401 or error_type == "authentication_error":
            return response.rejected(
                "authentication failed",
                f"check the API key variable (ANTHROPIC_API_KEY) used for {response.url}",
            )
        if error_type in _UNAVAILABLE_TYPES:
            return response.unavailable()
        return response.by_status()


def _error_object(response: ErrorResponse) -> dict[str, Any]:
    """The ``error`` object of an Anthropic error body, or ``{}`` (HTML pages, empty bodies)."""
    body = response.json_body()
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _is_quota(status: int, error: dict[str, Any]) -> bool:
    """Billing trouble: 402 or ``billing_error``, a spend-limit 429, or a 400 about credits."""
    if status == 402 or error.get("type") == "billing_error":
        return True
    details = error.get("details")
    if status == 429 and isinstance(details, dict):
        return details.get("error_code") in _SPEND_LIMIT_CODES
    return status == 400 and bool(_BILLING_WORDS.search(str(error.get("message", ""))))
