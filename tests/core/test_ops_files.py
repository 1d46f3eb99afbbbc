"""compose.yaml and ops/config.example.toml are checked against the code (no Docker here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from maker_worker.cli.main import app
from maker_worker.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_example_config_loads_with_the_runbook_keys() -> None:
    settings = load_settings(ROOT / "ops" / "config.example.toml")
    assert (settings.max_retries, settings.max_delay_ms) == (5, 60_000)
    assert settings.rpm_limits["openai"] == 500


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"redis", "worker", "coordinator", "flower", "simulator", "prometheus"}


def test_compose_redis_is_persistent_and_password_protected(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert "--appendonly yes" in command and "--requirepass" in command


def test_compose_flower_is_behind_basic_auth(compose: dict[str, Any]) -> None:
    assert any(arg.startswith("--basic-auth=") for arg in compose["services"]["flower"]["command"])


@pytest.mark.parametrize("service", ["worker", "coordinator", "simulator"])
def test_compose_commands_are_maker_commands(compose: dict[str, Any], service: str) -> None:
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert compose["services"][service]["command"][0] in names


def test_compose_environment_names_are_settings(compose: dict[str, Any]) -> None:
    environment = compose["x-maker"]["environment"]
    known = {f"MAKER_{name.upper()}" for name in Settings.model_fields} | {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    }
    assert set(environment) <= known
