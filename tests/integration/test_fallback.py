"""Quota exhausted on one provider: the job continues on the next configured one, or pauses."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.jobs import JobStatus, JobSummary
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

QUOTA_BODY = json.dumps(
    {
        "error": {
            "message": "You exceeded your current quota.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
).encode()


class _NoQuota(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose account has no quota left: every call is a 429."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(QUOTA_BODY)))
        self.end_headers()
        self.wfile.write(QUOTA_BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Down(BaseHTTPRequestHandler):
    """An OpenAI-compatible server in an outage: every call is a 503."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_quota_url() -> Iterator[str]:
    yield from serve(_NoQuota)


@pytest.fixture
def down_url() -> Iterator[str]:
    yield from serve(_Down)


def run(
    redis_url: str, tmp_path: Path, fallbacks: list[str], **settings_fields: float
) -> tuple[JobSummary, list[dict[str, object]]]:
    settings = Settings(
        redis_url=redis_url,
        llm_provider="openai",
        data_dir=tmp_path,
        fallback_providers=fallbacks,
        **settings_fields,  # type: ignore[arg-type]
    )
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=4)
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    job, events_path = drive(settings, redis_url, job_id)
    events = [json.loads(line) for line in Path(events_path).read_text().splitlines()]
    return finish(store, job, events_path), events


def test_exhausted_quota_falls_back_to_the_next_provider(
    redis_url: str,
    tmp_path: Path,
    no_quota_url: str,
    sim_server: Callable[..., str],
    workers: Callable[..., object],
) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": no_quota_url}
    workers(2, sim_url=sim_server(p=0.95, seed=10), extra_env=env)
    summary, events = run(redis_url, tmp_path, ["sim"])
    assert (summary.status, summary.errors_vs_oracle, summary.steps_done) == (JobStatus.SUCCEEDED, 0, 15)
    assert (summary.provider, summary.provider_fallbacks) == (
        "sim",
        ["openai:gpt-4.1-mini -> sim:sim-hanoi (quota_exhausted)"],
    )
    switches = [event for event in events if event["event"] == "ProviderFallback"]
    assert [(e["from_provider"], e["to_provider"]) for e in switches] == [("openai", "sim")]


def test_exhausted_quota_without_a_fallback_pauses_the_job(
    redis_url: str,
    tmp_path: Path,
    no_quota_url: str,
    sim_server: Callable[..., str],
    workers: Callable[..., object],
) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": no_quota_url}
    workers(1, sim_url=sim_server(), extra_env=env)
    summary, _events = run(redis_url, tmp_path, [])
    assert summary.status is JobStatus.PAUSED
    assert summary.reason is not None and summary.reason.startswith("quota_exhausted")


def test_a_provider_down_past_fallback_after_s_falls_back(
    redis_url: str,
    tmp_path: Path,
    down_url: str,
    sim_server: Callable[..., str],
    workers: Callable[..., object],
) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": down_url}
    workers(2, sim_url=sim_server(p=0.95, seed=12), extra_env=env)
    summary, events = run(redis_url, tmp_path, ["sim"], fallback_after_s=2.0)
    assert (summary.status, summary.errors_vs_oracle, summary.steps_done) == (JobStatus.SUCCEEDED, 0, 15)
    assert summary.provider_fallbacks == ["openai:gpt-4.1-mini -> sim:sim-hanoi (provider_unavailable)"]
    (switch,) = [event for event in events if event["event"] == "ProviderFallback"]
    assert (switch["step"], switch["reason"]) == (0, "provider_unavailable")
    assert summary.api_errors > 0  # the 503s were reported, not hidden
