"""Prometheus metrics from a real worker process and an in-process coordinator agree with the job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.embedded import Embedded, free_port
from maker_worker.jobs import JobStatus
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

SETTLE_S = 15.0


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (series_name, got), value in series.items() if series_name == name and wanted <= got)


def test_worker_and_coordinator_metrics_count_the_job(
    redis_url: str, tmp_path: Path, sim_server: Callable[..., str], workers: Callable[..., None]
) -> None:
    port = free_port()
    workers(
        1, sim_url=sim_server(p=0.9, red_flag_rate=0.1, seed=4), extra_env={"MAKER_METRICS_PORT": str(port)}
    )
    settings = Settings(redis_url=redis_url, llm_provider="sim", data_dir=tmp_path)
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=4)
    decided = {"task": domain.name}
    steps_before = REGISTRY.get_sample_value("maker_steps_decided_total", decided) or 0.0
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    summary = finish(store, *drive(settings, redis_url, job_id))
    assert (summary.status, summary.errors_vs_oracle) == (JobStatus.SUCCEEDED, 0)
    assert REGISTRY.get_sample_value("maker_steps_decided_total", decided) == steps_before + 15
    first_round = REGISTRY.get_sample_value("maker_steps_decided_first_round_total", decided)
    assert first_round is not None and 0 < first_round <= steps_before + 15

    deadline_s = time.monotonic() + SETTLE_S  # samples still in flight at the end land as late ones
    while True:
        series, counters = scrape(port), store.load_job(job_id).counters
        answered = sum(total(series, "maker_samples_total", outcome=o) for o in ("vote", "red_flag", "error"))
        if answered == counters["samples"] or time.monotonic() > deadline_s:
            break
        time.sleep(0.2)
    assert answered == counters["samples"]
    assert total(series, "maker_samples_total", outcome="red_flag") == total(series, "maker_red_flags_total")
    assert total(series, "maker_llm_calls_total") == answered
    assert total(series, "maker_llm_calls_total", result="ok") == answered  # no failed attempt here
    assert total(series, "maker_llm_tokens_total", direction="in") == counters["tokens_in"]
    assert total(series, "maker_llm_latency_seconds_count") == answered


def test_a_busy_metrics_port_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "maker_worker", "run", "hanoi-2disk", "--provider", "sim"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MAKER_DATA_DIR": str(tmp_path), "MAKER_METRICS_PORT": str(port)},
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"maker: error: cannot serve metrics on port {port} (MAKER_METRICS_PORT)")
    assert "Traceback" not in done.stderr


def test_embedded_workers_serve_on_the_ports_after_the_runs_own(tmp_path: Path) -> None:
    port = free_port()
    with Embedded(tmp_path) as embedded:
        embedded.start_redis()
        embedded.start_workers(2, threads=2, metrics_port=port)
        deadline_s = time.monotonic() + 30
        served: set[int] = set()
        while served != {port + 1, port + 2} and time.monotonic() < deadline_s:
            for worker_port in (port + 1, port + 2):
                try:
                    if (
                        "maker_samples"
                        in httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=1).text
                    ):
                        served.add(worker_port)
                except httpx.HTTPError:
                    time.sleep(0.2)
    assert served == {port + 1, port + 2}


def test_an_empty_metrics_port_means_none() -> None:
    assert Settings(metrics_port="").metrics_port is None  # type: ignore[arg-type]
