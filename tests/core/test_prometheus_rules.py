"""ops/prometheus: every metric the rules use exists in the code, and the runbook alerts are there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import maker_worker.metrics  # noqa: F401  (registers the metrics)

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b(maker_[a-z_]+)\b")


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((ROOT / "ops" / "prometheus" / "rules.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def exported_names() -> set[str]:
    """Series names the registry exposes, also for labelled metrics that have no series yet."""
    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES.get(family.type, [""])
    }


def test_every_metric_in_the_rules_is_exported_or_recorded(rules: list[dict[str, Any]]) -> None:
    known = exported_names() | {rule["record"] for rule in rules if "record" in rule}
    used = {name for rule in rules for name in NAME.findall(rule["expr"])}
    assert used and used <= known, used - known


def test_the_runbook_alerts_use_the_runbook_thresholds(rules: list[dict[str, Any]]) -> None:
    alerts = {rule["alert"]: rule["expr"] for rule in rules if "alert" in rule}
    assert alerts["MakerApiRetrySuccessRateLow"] == "maker_api_retry_success_rate < 0.95"
    assert alerts["MakerVoteConvergenceLow"] == "maker_vote_convergence_rate < 0.70"


def test_prometheus_scrapes_workers_and_coordinators_on_the_compose_port() -> None:
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    port = int(compose["x-maker"]["environment"]["MAKER_METRICS_PORT"])
    for name, service in [("maker-workers", "worker"), ("maker-coordinators", "coordinator")]:
        (target,) = jobs[name]["dns_sd_configs"]
        assert (target["names"], target["port"]) == ([service], port)


def test_every_alert_links_an_existing_runbook(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        if "alert" in rule:
            assert (ROOT / rule["annotations"]["runbook"]).is_file(), rule["alert"]


def test_the_grafana_dashboard_queries_only_existing_series(rules: list[dict[str, Any]]) -> None:
    dashboard = json.loads((ROOT / "ops" / "grafana" / "dashboards" / "maker.json").read_text())
    known = exported_names() | {rule["record"] for rule in rules if "record" in rule}
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert len(dashboard["panels"]) >= 10 and used and used <= known, used - known
    assert {"maker_api_retry_success_rate", "maker_vote_convergence_rate"} <= used


def test_grafana_in_compose_needs_an_admin_password_and_loads_the_dashboard() -> None:
    grafana = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    mounts = {volume.split(":")[0] for volume in grafana["volumes"]}
    assert {"./ops/grafana/provisioning", "./ops/grafana/dashboards"} <= mounts
    assert all((ROOT / mount).is_dir() for mount in mounts if mount.startswith("./"))
