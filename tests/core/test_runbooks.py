"""ops/runbooks use only what the product has: maker subcommands and options, metrics, alerts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from prometheus_client import REGISTRY

import maker_worker.metrics  # noqa: F401  (registers the metrics)
from maker_worker.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = sorted((ROOT / "ops" / "runbooks").glob("RB-*.md"))
COMMAND = re.compile(r"\bmaker ([a-z][a-z-]*)((?: +[^\s|;&#`)]+)*)")
METRIC = re.compile(r"\b(maker_[a-z_]+)\b")
ALERT = re.compile(r"\b(Maker[A-Z][A-Za-z]+)\b")
SUFFIXES = {"counter": ["_total"], "histogram": ["", "_bucket", "_sum", "_count"], "gauge": [""]}


def subcommands() -> dict[str, Any]:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def rules() -> list[dict[str, object]]:
    loaded = yaml.safe_load((ROOT / "ops" / "prometheus" / "rules.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_there_are_runbooks_and_an_index() -> None:
    assert len(RUNBOOKS) >= 13
    index = (ROOT / "ops" / "runbooks" / "README.md").read_text()
    assert all(runbook.name in index for runbook in RUNBOOKS)


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda path: path.name)
def test_runbook_commands_and_options_exist(runbook: Path) -> None:
    commands = subcommands()
    for name, rest in COMMAND.findall(runbook.read_text()):
        if name not in commands:
            continue  # prose such as "maker run it", checked by the next test
        known = {opt for param in commands[name].params for opt in getattr(param, "opts", [])}
        used = {token.split("=")[0] for token in rest.split() if token.startswith("--")}
        assert used <= known | {"--help"}, f"{runbook.name}: maker {name} {sorted(used - known)}"


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda path: path.name)
def test_runbook_shell_commands_name_real_subcommands(runbook: Path) -> None:
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", runbook.read_text(), flags=re.S)
    named = {name for block in blocks for name, _rest in COMMAND.findall(block)}
    assert named <= set(subcommands()), f"{runbook.name}: {sorted(named - set(subcommands()))}"


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda path: path.name)
def test_runbook_metrics_and_alerts_exist(runbook: Path) -> None:
    exported = {
        family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES.get(family.type, [""])
    }
    recorded = {str(rule["record"]) for rule in rules() if "record" in rule}
    alerts = {str(rule["alert"]) for rule in rules() if "alert" in rule}
    text = runbook.read_text()
    metrics = set(METRIC.findall(text)) - {"maker_worker"}
    assert metrics <= exported | recorded, f"{runbook.name}: {sorted(metrics - exported - recorded)}"
    assert set(ALERT.findall(text)) <= alerts, f"{runbook.name}: {sorted(set(ALERT.findall(text)) - alerts)}"
