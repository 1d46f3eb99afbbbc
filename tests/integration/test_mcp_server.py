"""``maker-mcp-server`` as an MCP client sees it: JSON-RPC over stdio, real Redis, real workers."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maker_worker.config import Settings
from maker_worker.core.scaling import k_min
from maker_worker.jobs import JobStatus
from maker_worker.runner import drive
from maker_worker.store import RedisStore

SERVER = str(Path(sys.executable).with_name("maker-mcp-server"))
REPLY_TIMEOUT_S = 30.0


class McpClient:
    """A minimal MCP client: newline-delimited JSON-RPC on the server's stdin and stdout."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env
        )
        self._next_id = 0
        hello = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        }
        assert self.request("initialize", hello)["serverInfo"]["name"] == "maker"
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        assert self.process.stdout is not None
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT_S)
            assert ready, f"no reply to {method} within {REPLY_TIMEOUT_S} s"
            message = json.loads(self.process.stdout.readline())
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                return dict(message["result"])

    def call(self, tool: str, **arguments: Any) -> tuple[bool, Any]:
        """(is_error, structured result or error text) of one tool call."""
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        if result["isError"]:
            return True, result["content"][0]["text"]
        structured = result.get("structuredContent")
        return False, structured.get("result", structured) if set(structured) == {"result"} else structured

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()
        self._log.close()


@pytest.fixture
def mcp(redis_url: str, tmp_path: Path) -> Iterator[McpClient]:
    env = {
        **os.environ,
        "MAKER_REDIS_URL": redis_url,
        "MAKER_LLM_PROVIDER": "sim",
        "MAKER_DATA_DIR": str(tmp_path),
    }
    client = McpClient(env, tmp_path / "mcp.log")
    yield client
    client.close()


def test_tools_are_listed_with_their_schemas(mcp: McpClient) -> None:
    tools = {tool["name"]: tool for tool in mcp.request("tools/list", {})["tools"]}
    assert set(tools) == {
        "plan_k",
        "submit_job",
        "job_status",
        "list_jobs",
        "job_ledger",
        "cancel_job",
        "resume_job",
    }
    assert tools["submit_job"]["inputSchema"]["required"] == ["task"]


def test_plan_submit_follow_and_read_a_job(
    mcp: McpClient,
    redis_url: str,
    tmp_path: Path,
    sim_server: Callable[..., str],
    workers: Callable[..., None],
) -> None:
    assert mcp.call("plan_k", p=0.99, steps=2**20 - 1) == (
        False,
        mcp.call("plan_k", p=0.99, steps=2**20 - 1)[1],
    )
    _error, plan = mcp.call("plan_k", p=0.99, steps=2**20 - 1)
    assert plan["k_min"] == k_min(0.99, 2**20 - 1, 0.95)

    error, submitted = mcp.call("submit_job", task="hanoi-3disk", k=2)
    assert not error and (submitted["steps"], submitted["k"]) == (7, 2)
    job_id = submitted["job_id"]
    workers(1, sim_url=sim_server(p=0.9, seed=30))
    drive(Settings(redis_url=redis_url, llm_provider="sim", data_dir=tmp_path), redis_url, job_id)

    error, status = mcp.call("job_status", job_id=job_id)
    assert not error and (status["status"], status["steps_done"], status["errors_vs_oracle"]) == (
        "succeeded",
        7,
        0,
    )
    error, ledger = mcp.call("job_ledger", job_id=job_id, start=2, limit=3)
    assert not error and [entry["step"] for entry in ledger] == [2, 3, 4]
    error, jobs = mcp.call("list_jobs")
    assert not error and jobs[0]["job_id"] == job_id
    assert mcp.call("cancel_job", job_id=job_id) == (
        True,
        f"Error executing tool cancel_job: job {job_id} is already succeeded",
    )


def test_a_paused_job_resumes_with_a_higher_budget_and_a_queued_one_cancels(
    mcp: McpClient, redis_url: str
) -> None:
    _error, submitted = mcp.call("submit_job", task="hanoi-4disk", k=2, budget_usd=1.0)
    job_id = submitted["job_id"]
    RedisStore.from_url(redis_url).set_status(job_id, JobStatus.PAUSED, "budget_exhausted: test")
    assert mcp.call("resume_job", job_id=job_id, budget_usd=5.0) == (
        False,
        {"job_id": job_id, "status": "queued"},
    )
    assert RedisStore.from_url(redis_url).load_job(job_id).budget_usd == 5.0
    assert mcp.call("cancel_job", job_id=job_id) == (False, {"job_id": job_id, "status": "cancelled"})


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("submit_job", {"task": "hanoi-0disk"}, "hanoi needs between 1 and 30 disks"),
        ("submit_job", {"task": "chess"}, "unknown task 'chess'"),
        ("submit_job", {"task": "hanoi-3disk", "provider": "nope"}, "nope"),
        ("job_status", {"job_id": "nosuchjob"}, "no job with id 'nosuchjob'"),
        ("plan_k", {"p": 0.4, "steps": 10}, "per-sample success p must be in (0.5, 1]"),
        ("plan_k", {"p": 0.9, "steps": 0}, "steps"),
        ("resume_job", {"job_id": "x", "max_samples_per_step": 0}, "max_samples_per_step"),
        ("job_ledger", {"job_id": "x", "limit": 100000}, "limit"),
    ],
)
def test_bad_input_is_a_clear_tool_error(
    mcp: McpClient, tool: str, arguments: dict[str, Any], message: str
) -> None:
    error, text = mcp.call(tool, **arguments)
    assert error and message in text and "Traceback" not in text


def test_without_a_shared_redis_the_tools_say_what_to_set(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MAKER_REDIS_URL"}
    client = McpClient({**env, "MAKER_DATA_DIR": str(tmp_path)}, tmp_path / "mcp.log")
    try:
        error, text = client.call("list_jobs")
    finally:
        client.close()
    assert error and "needs MAKER_REDIS_URL" in text
