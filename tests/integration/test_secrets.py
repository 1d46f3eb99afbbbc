"""An API key set in the environment never reaches events, logs, task messages or summaries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import redis

from maker_worker.config import Settings
from maker_worker.domains import get_domain
from maker_worker.runner import drive, finish, make_spec, submit
from maker_worker.store import RedisStore

FAKE_KEY = "sk-test-DO-NOT-LEAK-4f9c2e"


def test_a_fake_key_never_appears_in_events_or_logs_of_a_run_with_errors(
    redis_url: str,
    tmp_path: Path,
    sim_server: Callable[..., str],
    workers: Callable[..., object],
) -> None:
    sim_url = sim_server(p=0.95, error_rate=0.3, seed=9)
    env = {
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": sim_url,
        "MAKER_MAX_RETRIES": "3",
        "MAKER_MAX_DELAY_MS": "50",
    }
    workers(2, sim_url=sim_url, extra_env=env)
    settings = Settings(redis_url=redis_url, llm_provider="openai", model="sim-hanoi", data_dir=tmp_path)
    store = RedisStore.from_url(redis_url)
    domain = get_domain("hanoi", disks=4)
    job_id = submit(store, domain, make_spec(settings, domain, 2))
    job, events_path = drive(settings, redis_url, job_id)
    summary = finish(store, job, events_path)
    events = Path(events_path).read_text()
    assert summary.errors_vs_oracle == 0
    assert '"event":"LlmApiError"' in events  # the run did hit errors, with their messages logged
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    assert logs
    for text in (events, logs, summary.model_dump_json(), _all_redis_values(redis_url)):
        assert FAKE_KEY not in text


def _all_redis_values(redis_url: str) -> str:
    """Every value in Redis as text: job records, ledgers, queued task messages."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    values = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == "string":
            values.append(client.get(key))
        elif kind == "hash":
            values.append(json.dumps(client.hgetall(key)))
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
    return "\n".join(str(value) for value in values)
