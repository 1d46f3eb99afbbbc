"""Each provider client over real HTTP against the simulator speaking its format.

The simulator's clocks are injected, so its rate-limit window moves by hand; the clients use
``max_retries=0`` or a recording sleep, so nothing waits on the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from maker_worker.core.backoff import parse_retry_after
from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.domains.hanoi import HanoiDomain
from maker_worker.errors import ProviderUnavailableError, RateLimitedError
from maker_worker.providers.anthropic import AnthropicProvider
from maker_worker.providers.http import HttpProvider
from maker_worker.providers.ollama import OllamaProvider
from maker_worker.providers.openai import OpenAIProvider
from maker_worker.sim import SimConfig, SimServer

FORMATS = ("openai", "anthropic", "ollama")
WALL_S = 1_700_000_000.0
MAX_TOKENS = 2_000


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def client(
    fmt: str, sim: SimServer, max_retries: int = 0, sleeps_s: list[float] | None = None
) -> HttpProvider:
    """The provider for ``fmt`` pointed at ``sim``; retry sleeps are recorded, never taken."""
    recorded = sleeps_s if sleeps_s is not None else []
    common: dict[str, Any] = {
        "timeout_s": 10.0,
        "max_retries": max_retries,
        "max_delay_ms": 1,
        "sleep": recorded.append,
    }
    if fmt == "openai":
        return OpenAIProvider(base_url=sim.base_url, api_key=None, name="sim", **common)
    if fmt == "anthropic":
        return AnthropicProvider(base_url=sim.root_url, api_key="sk-ant-sim-key", **common)
    return OllamaProvider(base_url=sim.root_url, **common)


def raw_request(fmt: str, prompt: Prompt) -> tuple[str, dict[str, Any]]:
    """The path and JSON body a client of ``fmt`` would send, for reading raw responses."""
    chat = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]
    if fmt == "openai":
        return "/v1/chat/completions", {"model": "m", "messages": chat, "temperature": 0.1}
    if fmt == "anthropic":
        body = {"model": "m", "max_tokens": 500, "system": prompt.system, "messages": chat[1:]}
        return "/v1/messages", body
    return "/api/chat", {"model": "m", "messages": chat, "stream": False}


def raw_post(http: httpx.Client, fmt: str, prompt: Prompt) -> httpx.Response:
    """POST what a client of ``fmt`` would send, with ``http`` based at the simulator's root URL."""
    path, body = raw_request(fmt, prompt)
    return http.post(path, json=body)


@pytest.fixture
def hanoi() -> HanoiDomain:
    return HanoiDomain(4)


def step_prompts(
    domain: HanoiDomain, count: int
) -> Iterator[tuple[Prompt, list[list[int]], list[int] | None]]:
    state, previous = domain.initial_state(), None
    for _ in range(count):
        yield domain.build_prompt(state, previous), state, previous
        truth = domain.oracle(state, previous)
        assert truth is not None
        state, previous = truth.next_state, truth.move


def ask(provider: HttpProvider, prompt: Prompt, max_tokens: int = MAX_TOKENS) -> Completion:
    return provider.complete(prompt, model="sim-model", temperature=0.1, max_tokens=max_tokens)


def prompt_tokens(prompt: Prompt) -> int:
    return math.ceil(len(f"system: {prompt.system}\nuser: {prompt.user}") / 4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_p1_answers_the_oracle_with_token_counts_in_every_format(fmt: str, hanoi: HanoiDomain) -> None:
    with SimServer(SimConfig(p=1.0)) as sim, client(fmt, sim) as provider:
        for prompt, state, previous in step_prompts(hanoi, 10):
            completion = ask(provider, prompt)
            assert hanoi.parse(completion.text) == hanoi.oracle(state, previous)
            assert completion.finish_reason is FinishReason.STOP
            assert completion.tokens_in == prompt_tokens(prompt)
            assert completion.tokens_out == math.ceil(len(completion.text) / 4)
        assert sim.stats == {"correct": 10}


@pytest.mark.parametrize("fmt", FORMATS)
def test_cut_off_answers_finish_with_length_in_every_format(fmt: str, hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    with SimServer(SimConfig(red_flag_rate=1.0)) as sim, client(fmt, sim) as provider:
        completions = [ask(provider, prompt, max_tokens=100) for _ in range(30)]
    assert all(completion.tokens_out <= 100 for completion in completions)
    cut = [completion for completion in completions if completion.finish_reason is FinishReason.LENGTH]
    assert any(completion.tokens_out == 100 for completion in cut)


def test_one_seed_gives_the_same_answers_whichever_format_asks(hanoi: HanoiDomain) -> None:
    prompts = [prompt for prompt, _, _ in step_prompts(hanoi, 6)] * 3
    texts = {}
    for fmt in FORMATS:
        with SimServer(SimConfig(p=0.5, red_flag_rate=0.3, seed=7)) as sim, client(fmt, sim) as provider:
            texts[fmt] = [ask(provider, prompt).text for prompt in prompts]
    assert texts["openai"] == texts["anthropic"] == texts["ollama"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rpm_limit_answers_429_and_each_client_reads_the_wait(fmt: str, hanoi: HanoiDomain) -> None:
    clock = Clock()
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    config = SimConfig(p=1.0, rpm_limit=60)
    with SimServer(config, clock=clock, wall_clock=lambda: WALL_S) as sim, client(fmt, sim) as provider:
        for index in range(60):
            clock.now_s = index * 0.5
            ask(provider, prompt)
        clock.now_s = 30.0
        with pytest.raises(RateLimitedError) as caught:
            ask(provider, prompt)
        assert caught.value.status == 429 and caught.value.retry_after_s == 30.0
        clock.now_s = 60.0  # the request made at 0 s leaves the window
        assert ask(provider, prompt).finish_reason is FinishReason.STOP
        assert sim.stats == {"correct": 61, "rate_limited": 1}


def exhaust_rpm(
    sim: SimServer, clock: Clock, fmt: str, prompt: Prompt
) -> tuple[httpx.Response, httpx.Response]:
    """Spend the 60-request budget over 29.5 s; the first answer and the raw 429 at 30 s."""
    answers = []
    with httpx.Client(base_url=sim.root_url) as http:
        for index in range(60):
            clock.now_s = index * 0.5
            answers.append(raw_post(http, fmt, prompt))
        clock.now_s = 30.0
        limited = raw_post(http, fmt, prompt)
    assert {answer.status_code for answer in answers} == {200}
    return answers[0], limited


def test_openai_format_429_carries_openai_headers_and_body(hanoi: HanoiDomain) -> None:
    clock = Clock()
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    with SimServer(SimConfig(p=1.0, rpm_limit=60), clock=clock) as sim:
        first, limited = exhaust_rpm(sim, clock, "openai", prompt)
    assert first.headers["x-ratelimit-remaining-requests"] == "59"
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert limited.headers["x-ratelimit-limit-requests"] == "60"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.headers["x-ratelimit-reset-requests"] == "59.5s"
    assert "x-ratelimit-limit-tokens" not in limited.headers
    error = limited.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    resets_only = {"x-ratelimit-reset-requests": limited.headers["x-ratelimit-reset-requests"]}
    assert parse_retry_after(resets_only, now_s=WALL_S) == 59.5


def test_anthropic_format_429_carries_anthropic_headers_and_body(hanoi: HanoiDomain) -> None:
    clock = Clock()
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    with SimServer(SimConfig(p=1.0, rpm_limit=60), clock=clock, wall_clock=lambda: WALL_S) as sim:
        _, limited = exhaust_rpm(sim, clock, "anthropic", prompt)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert limited.headers["anthropic-ratelimit-requests-limit"] == "60"
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = limited.headers["anthropic-ratelimit-requests-reset"]
    assert reset == datetime.fromtimestamp(math.ceil(WALL_S + 59.5), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert limited.json()["type"] == "error"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert parse_retry_after({"anthropic-ratelimit-requests-reset": reset}, now_s=WALL_S) == 60.0


def test_tpm_limit_answers_429_of_type_tokens(hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    limit = 2 * prompt_tokens(prompt)
    with (
        SimServer(SimConfig(p=1.0, tpm_limit=limit), clock=Clock()) as sim,
        client("openai", sim) as provider,
    ):
        answered = [ask(provider, prompt) for _ in range(2)]
        assert sum(c.tokens_in + c.tokens_out for c in answered) >= limit
        with pytest.raises(RateLimitedError) as caught:
            ask(provider, prompt)
        with httpx.Client(base_url=sim.root_url) as http:
            limited = raw_post(http, "openai", prompt)
    assert caught.value.retry_after_s == 60.0
    assert limited.json()["error"]["type"] == "tokens"
    assert limited.headers["x-ratelimit-limit-tokens"] == str(limit)
    assert limited.headers["x-ratelimit-remaining-tokens"] == "0"


@pytest.mark.parametrize(
    ("fmt", "statuses"),
    [("openai", {500, 502, 503}), ("anthropic", {500, 502, 503, 529}), ("ollama", {500, 502, 503})],
)
def test_injected_errors_come_back_as_unavailable(fmt: str, statuses: set[int], hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    seen: set[int | None] = set()
    with SimServer(SimConfig(p=1.0, error_rate=1.0, seed=5)) as sim, client(fmt, sim) as provider:
        for _ in range(40):
            with pytest.raises(ProviderUnavailableError) as caught:
                ask(provider, prompt)
            seen.add(caught.value.status)
            assert caught.value.status != 502 or "Bad Gateway" in str(caught.value)
        stats = sim.stats
    assert seen == statuses
    assert set(stats) == {f"error_{status}" for status in statuses} and sum(stats.values()) == 40


@pytest.mark.parametrize("fmt", FORMATS)
def test_injected_errors_are_retried_away(fmt: str, hanoi: HanoiDomain) -> None:
    sleeps_s: list[float] = []
    with SimServer(SimConfig(p=1.0, error_rate=0.5, seed=2)) as sim:
        with client(fmt, sim, max_retries=30, sleeps_s=sleeps_s) as provider:
            for prompt, state, previous in step_prompts(hanoi, 10):
                assert hanoi.parse(ask(provider, prompt).text) == hanoi.oracle(state, previous)
        stats = sim.stats
    injected = sum(count for outcome, count in stats.items() if outcome.startswith("error_"))
    assert stats["correct"] == 10 and injected > 0
    assert len(sleeps_s) == injected


def test_slow_answers_are_delayed_by_slow_ms(hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    delays_s: list[float] = []
    config = SimConfig(p=1.0, latency_ms=5.0, slow_rate=0.5, slow_ms=2000.0, seed=1)
    with SimServer(config, sleep=delays_s.append) as sim, client("openai", sim) as provider:
        for _ in range(20):
            ask(provider, prompt)
        stats = sim.stats
    assert sorted(set(delays_s)) == [0.005, 2.005]
    assert delays_s.count(2.005) == stats["slow"] and 0 < stats["slow"] < 20
    assert stats["correct"] == 20


def test_format_specific_bad_requests_get_the_formats_error_shape(hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    _, ollama_body = raw_request("ollama", prompt)
    _, anthropic_body = raw_request("anthropic", prompt)
    del anthropic_body["max_tokens"]
    blocks = {"role": "user", "content": [{"type": "text", "text": prompt.user}]}
    with SimServer(SimConfig(p=1.0)) as sim, httpx.Client(base_url=sim.root_url) as http:
        streaming = http.post("/api/chat", json=ollama_body | {"stream": True})
        no_max_tokens = http.post("/v1/messages", json=anthropic_body)
        with_blocks = http.post(
            "/v1/messages", json=anthropic_body | {"max_tokens": 300, "messages": [blocks]}
        )
    assert streaming.status_code == 400 and "stream" in streaming.json()["error"]
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"]["type"] == "invalid_request_error"
    assert with_blocks.status_code == 200 and with_blocks.json()["content"][0]["type"] == "text"
