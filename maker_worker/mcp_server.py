"""``maker-mcp-server``: MAKER jobs as MCP tools over stdio (official MCP SDK).

An MCP client (an IDE agent, Claude Code, ...) can plan k, submit long jobs to the shared
Redis, follow them, read their ledgers and cancel or resume them. The server drives nothing
itself: ``maker coordinator`` and ``maker worker`` processes on the same Redis do the work, so a
job outlives the client session. Configuration is the usual one (``MAKER_*``, TOML file);
``MAKER_REDIS_URL`` is required. Tool results never carry secrets (job records hold none).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from itertools import islice
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from maker_worker import __version__
from maker_worker.config import Settings, load_settings
from maker_worker.core.scaling import plan
from maker_worker.domains import get_domain
from maker_worker.errors import ConfigError, JobError, MakerError
from maker_worker.runner import cancel, make_spec, requeue, resolve_k, submit
from maker_worker.store import JobState, RedisStore
from maker_worker.summary import summarize

PAGE_MAX = 1000
"""Most jobs or ledger entries one call returns (results stay small for the client)."""

P = ParamSpec("P")
R = TypeVar("R")

server: MCPServer[Any] = MCPServer(
    name="maker",
    version=__version__,
    instructions=(
        "Run very long step-by-step LLM tasks with zero errors (MAKER: one small call per step, "
        "first-to-ahead-by-k voting, red-flagging) on a Celery + Redis fleet. Plan k with "
        "plan_k, submit with submit_job, follow with job_status."
    ),
)


def tool_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the product's errors (bad input, unknown job, Redis down) into MCP tool errors."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (MakerError, ValueError) as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def settings(**overrides: Any) -> Settings:
    """The configuration (``MAKER_*``, TOML file) with ``overrides``; a shared Redis is required."""
    loaded = load_settings(None, **overrides)
    if not loaded.redis_url:
        raise ConfigError(
            "maker-mcp-server needs MAKER_REDIS_URL (the Redis of the coordinators and workers)"
        )
    return loaded


@contextmanager
def open_store(config: Settings) -> Iterator[RedisStore]:
    store = RedisStore.from_url(config.redis_url or "")
    try:
        yield store
    finally:
        store.client.close()


@server.tool()
@tool_errors
def plan_k(
    p: float,
    steps: Annotated[int, Field(ge=1)],
    target: float = 0.95,
    cost_per_sample_usd: Annotated[float, Field(ge=0)] = 0.0,
) -> dict[str, Any]:
    """The scaling-law plan for a task: k_min for a per-sample success p (> 0.5), the chance of
    solving all ``steps`` steps with it, expected votes per step and the expected cost."""
    return plan(p, steps, target, cost_per_sample_usd)


@server.tool()
@tool_errors
def submit_job(
    task: str,
    k: Annotated[int | None, Field(ge=1)] = None,
    target: float | None = None,
    p_estimate: float | None = None,
    provider: str | None = None,
    model: str | None = None,
    budget_usd: Annotated[float | None, Field(gt=0)] = None,
    max_samples_per_step: Annotated[int | None, Field(ge=1)] = None,
) -> dict[str, Any]:
    """Queue a job (e.g. task "hanoi-20disk") for the fleet's coordinators; returns its id.
    Give k, or target with p_estimate (k = k_min); provider and model default to the config."""
    config = settings(llm_provider=provider, model=model, max_samples_per_step=max_samples_per_step)
    domain = get_domain(task)
    spec = make_spec(config, domain, resolve_k(k, target, p_estimate, domain.total_steps))
    with open_store(config) as store:
        job_id = submit(store, domain, spec, budget_usd)
    return {"job_id": job_id, "task": domain.name, "steps": domain.total_steps, "k": spec.k}


@server.tool()
@tool_errors
def job_status(job_id: str) -> dict[str, Any]:
    """A job's JSON summary: status, steps done, samples, votes, red flags, cost, errors vs oracle."""
    config = settings()
    with open_store(config) as store:
        return summarize(store, store.load_job(job_id), config).model_dump(mode="json")


@server.tool()
@tool_errors
def list_jobs(limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 50) -> list[dict[str, Any]]:
    """The most recent jobs (newest first): id, task, status, reason and progress."""
    with open_store(settings()) as store:
        newest = store.job_ids(newest=limit)
        jobs = [job for job_id in newest if (job := _readable(store, job_id)) is not None]
    return [
        {
            "job_id": job.job_id,
            "task": job.spec.task,
            "status": job.status.value,
            "reason": job.reason,
            "steps_done": job.steps_done,
            "steps": job.steps,
        }
        for job in jobs
    ]


def _readable(store: RedisStore, job_id: str) -> JobState | None:
    try:
        return store.load_job(job_id)
    except JobError:
        return None  # a corrupt record; `maker list` shows it


@server.tool()
@tool_errors
def job_ledger(
    job_id: str,
    start: Annotated[int, Field(ge=0)] = 0,
    limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = 100,
) -> list[dict[str, Any]]:
    """Decided steps of a job in order (move, next state, votes), from step ``start``."""
    with open_store(settings()) as store:
        store.load_job(job_id)
        entries = islice(store.ledger(job_id, start=start, batch=limit), limit)
        return [entry.model_dump(mode="json") for entry in entries]


@server.tool()
@tool_errors
def cancel_job(job_id: str) -> dict[str, Any]:
    """Stop a job for good (its ledger is kept); a finished job is left as it is."""
    with open_store(settings()) as store:
        return {"job_id": job_id, "status": cancel(store, job_id).status.value}


@server.tool()
@tool_errors
def resume_job(
    job_id: str,
    budget_usd: Annotated[float | None, Field(gt=0)] = None,
    max_samples_per_step: Annotated[int | None, Field(ge=1)] = None,
) -> dict[str, Any]:
    """Queue a paused job again, optionally with a higher budget or per-step sample cap (what
    pauses a job); a coordinator continues it where it stopped."""
    with open_store(settings()) as store:
        requeue(store, job_id, max_samples_per_step, budget_usd)
        return {"job_id": job_id, "status": store.load_job(job_id).status.value}


def main() -> None:
    """Serve the tools on stdin/stdout until the client closes them."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(f"maker-mcp-server {__version__}")
        return
    if sys.argv[1:]:
        print("usage: maker-mcp-server [--version]  (MCP over stdio; configured by MAKER_*)", file=sys.stderr)
        sys.exit(2)
    server.run()
