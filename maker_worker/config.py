"""Settings: CLI flags > environment (``MAKER_*``) > TOML file > defaults.

The TOML file is ``--config FILE``, else ``$MAKER_CONFIG``, else ``/etc/maker/config.toml`` if
it exists. API keys come only from the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``)
and are never shown in reprs, logs, events or task arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from maker_worker.core.redflags import DEFAULT_RED_FLAG_MAX_TOKENS
from maker_worker.errors import ConfigError

PROVIDERS = ("sim", "openai", "anthropic", "ollama")

DEFAULT_MODELS = {
    "sim": "sim-hanoi",
    "openai": "gpt-4.1-mini",
    "anthropic": "claude-haiku-4-5",
    "ollama": "llama3.1",
}
"""Model used when none is configured, per provider."""

SYSTEM_CONFIG_PATH = Path("/etc/maker/config.toml")


def default_data_dir() -> Path:
    """Where the embedded Redis data and the event files live by default."""
    return Path(platformdirs.user_data_dir("maker_worker", appauthor=False))


class Settings(BaseSettings):
    """Every tunable of maker_worker; see ``ops/config.example.toml`` for the file form."""

    model_config = SettingsConfigDict(env_prefix="MAKER_", extra="forbid", populate_by_name=True)

    redis_url: str | None = Field(default=None, description="unset: embedded private redis-server")
    llm_provider: str = "sim"
    model: str | None = None
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("OPENAI_BASE_URL", "MAKER_OPENAI_BASE_URL", "openai_base_url"),
    )
    openai_api_key: SecretStr | None = Field(
        default=None, repr=False, validation_alias=AliasChoices("OPENAI_API_KEY")
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com",
        validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "MAKER_ANTHROPIC_BASE_URL", "anthropic_base_url"),
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, repr=False, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    ollama_url: str = "http://localhost:11434"
    sim_url: str | None = Field(default=None, description="base URL of a running `maker sim-server`")
    max_retries: int = Field(default=5, ge=0, le=50)
    max_delay_ms: int = Field(default=60_000, ge=0)
    http_timeout_s: float = Field(default=60.0, gt=0)
    rpm_limits: dict[str, float] = Field(
        default_factory=dict, description="requests per minute per provider (or provider:model), cluster-wide"
    )
    fallback_providers: list[str] = Field(
        default_factory=list,
        description="provider[:model] to continue on when quota is exhausted or the provider is down",
    )
    fallback_after_s: float = Field(
        default=300.0, gt=0, description="fall back when every call has failed (unavailable) for this long"
    )
    tpm_limits: dict[str, float] = Field(
        default_factory=dict, description="tokens per minute per provider (or provider:model), cluster-wide"
    )
    prices_usd_per_mtok: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="model -> (input, output) USD per million tokens, over the defaults"
    )
    sample_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="replace a sample not back after this long (default: the longest a call can take)",
    )
    lease_s: float = Field(
        default=15.0, gt=0, description="coordinator lease on a job; a dead one's job waits this long"
    )
    red_flag_max_tokens: int = Field(default=DEFAULT_RED_FLAG_MAX_TOKENS, ge=1)
    max_output_tokens: int = Field(default=1000, ge=1)
    max_samples_per_step: int = Field(default=200, ge=1)
    speculate: bool = Field(
        default=True,
        description="ask the next step from the current step's leading answer before it is decided",
    )
    worker_threads: int = Field(default=16, ge=1, le=512)
    task_events: bool = Field(default=False, description="send Celery task events (for Flower)")
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve Prometheus /metrics on this port (workers, coordinators)",
    )
    events_path: Path | None = None
    data_dir: Path = Field(default_factory=default_data_dir)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("llm_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; choose one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("fallback_providers")
    @classmethod
    def _known_fallbacks(cls, values: list[str]) -> list[str]:
        for value in values:
            cls._known_provider(value.partition(":")[0])
        return values

    @property
    def resolved_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.llm_provider]

    @property
    def longest_sample_s(self) -> float:
        """Longest a sample can take: every attempt timing out plus every capped wait."""
        return (self.max_retries + 1) * self.http_timeout_s + self.max_retries * self.max_delay_ms / 1000

    @property
    def resolved_sample_timeout_s(self) -> float:
        return self.sample_timeout_s or self.longest_sample_s

    def resolved_events_path(self, job_id: str) -> Path:
        return self.events_path or self.data_dir / "events" / f"{job_id}.jsonl"

    toml_file: ClassVar[Path | None] = None
    """Set on a subclass by ``load_settings`` to read a TOML file below flags and environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if cls.toml_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))


def config_file_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``--config``, else ``$MAKER_CONFIG``, else the system file if it exists."""
    if explicit is not None:
        return explicit
    if environ.get("MAKER_CONFIG"):
        return Path(environ["MAKER_CONFIG"])
    return SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.exists() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``, None values ignored), env, TOML and defaults.

    Raises:
        ConfigError: naming the offending setting and what is wrong with it.
    """
    flags = {name: value for name, value in overrides.items() if value is not None}
    path = config_file_path(config_file, os.environ)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist; fix --config or MAKER_CONFIG")
    settings_class: type[Settings] = (
        Settings if path is None else type("FileSettings", (Settings,), {"toml_file": path})
    )
    try:
        return settings_class(**flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # TOML syntax errors
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    env_name = f"MAKER_{name.upper()}"
    return f"invalid setting {name} (flag, {env_name} or config file): {error['msg']}"


def secret_values(settings: Settings) -> Mapping[str, str]:
    """The configured secrets by name, for redaction."""
    found = {"OPENAI_API_KEY": settings.openai_api_key, "ANTHROPIC_API_KEY": settings.anthropic_api_key}
    return {name: value.get_secret_value() for name, value in found.items() if value}
