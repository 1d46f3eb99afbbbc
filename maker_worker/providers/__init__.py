"""LLM provider adaptors and the factory that builds one from settings."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from maker_worker.config import PROVIDERS, Settings
from maker_worker.errors import ConfigError
from maker_worker.providers.base import Provider
from maker_worker.providers.http import OnRetry

RetryHook = OnRetry
"""Called before each retry sleep with the error, the failed attempt number and the wait in seconds."""


def build_provider(name: str, settings: Settings, on_retry: RetryHook | None = None) -> Provider:
    """The provider adaptor for ``name``, configured from ``settings``.

    Raises:
        ConfigError: the provider is unknown or lacks its URL or API key.
    """
    from maker_worker.providers.anthropic import AnthropicProvider
    from maker_worker.providers.ollama import OllamaProvider
    from maker_worker.providers.openai import OpenAIProvider

    common: dict[str, Any] = {
        "timeout_s": settings.http_timeout_s,
        "max_retries": settings.max_retries,
        "max_delay_ms": settings.max_delay_ms,
        "on_retry": on_retry,
    }
    if name == "sim":
        if not settings.sim_url:
            raise ConfigError("provider 'sim' needs MAKER_SIM_URL (start one with `maker sim-server`)")
        return OpenAIProvider(base_url=settings.sim_url, api_key=None, name="sim", **common)
    if name == "openai":
        key = _required_key(settings.openai_api_key, "openai", "OPENAI_API_KEY")
        return OpenAIProvider(base_url=settings.openai_base_url, api_key=key, name="openai", **common)
    if name == "anthropic":
        key = _required_key(settings.anthropic_api_key, "anthropic", "ANTHROPIC_API_KEY")
        return AnthropicProvider(base_url=settings.anthropic_base_url, api_key=key, **common)
    if name == "ollama":
        return OllamaProvider(base_url=settings.ollama_url, **common)
    raise ConfigError(f"unknown provider {name!r}; use one of {', '.join(PROVIDERS)}")


def _required_key(secret: SecretStr | None, provider: str, variable: str) -> str:
    if secret is None:
        raise ConfigError(f"provider {provider!r} needs {variable} in the environment")
    return secret.get_secret_value()


def check_embedded_provider(name: str, settings: Settings) -> None:
    """Fail before an embedded run starts if its local workers would lack a URL or API key.

    Workers of a shared deployment hold their own configuration; they report a missing key
    as a non-retryable sample error, which pauses the job with that reason.
    """
    if settings.redis_url or name == "sim":
        return  # shared workers: not ours to check; sim: the embedded run starts one
    build_provider(name, settings).close()
