"""The simulator over real HTTP, called through OpenAIProvider."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from maker_worker.core.models import Completion, FinishReason, Prompt
from maker_worker.domains.hanoi import HanoiDomain, apply_move
from maker_worker.errors import ConfigError, ProviderRequestError
from maker_worker.providers.openai import OpenAIProvider
from maker_worker.sim import SimConfig, SimServer

RED_FLAG_MAX_TOKENS = 750
MAX_TOKENS = 2_000


def provider_for(sim: SimServer) -> OpenAIProvider:
    return OpenAIProvider(base_url=sim.base_url, api_key=None, timeout_s=10.0, max_retries=0, max_delay_ms=1)


@pytest.fixture
def hanoi() -> HanoiDomain:
    return HanoiDomain(4)


def step_prompts(
    domain: HanoiDomain, count: int
) -> Iterator[tuple[Prompt, list[list[int]], list[int] | None]]:
    """The first ``count`` step prompts of the true solution, with their state and previous move."""
    state, previous = domain.initial_state(), None
    for _ in range(count):
        yield domain.build_prompt(state, previous), state, previous
        truth = domain.oracle(state, previous)
        assert truth is not None
        state, previous = truth.next_state, truth.move


def ask(provider: OpenAIProvider, prompt: Prompt, temperature: float = 0.1) -> Completion:
    return provider.complete(prompt, model="sim", temperature=temperature, max_tokens=MAX_TOKENS)


def is_red_flag_worthy(completion: Completion, domain: HanoiDomain) -> bool:
    return (
        completion.tokens_out > RED_FLAG_MAX_TOKENS
        or completion.finish_reason is FinishReason.LENGTH
        or domain.parse(completion.text) is None
    )


def test_p1_answers_exactly_the_oracle(hanoi: HanoiDomain) -> None:
    with SimServer(SimConfig(p=1.0)) as sim, provider_for(sim) as provider:
        for prompt, state, previous in step_prompts(hanoi, 15):
            completion = ask(provider, prompt)
            assert completion.finish_reason is FinishReason.STOP
            assert completion.tokens_out == math.ceil(len(completion.text) / 4)
            assert hanoi.parse(completion.text) == hanoi.oracle(state, previous)
        assert sim.stats == {"correct": 15}


def test_p0_answers_parse_but_are_wrong(hanoi: HanoiDomain) -> None:
    with SimServer(SimConfig(p=0.0)) as sim, provider_for(sim) as provider:
        for prompt, state, previous in step_prompts(hanoi, 15):
            for _ in range(4):
                candidate = hanoi.parse(ask(provider, prompt).text)
                assert candidate is not None
                assert candidate != hanoi.oracle(state, previous)
        assert sim.stats == {"wrong": 60}


def test_wrong_answers_include_legal_other_moves_and_right_moves_with_wrong_states(
    hanoi: HanoiDomain,
) -> None:
    prompt, state, previous = next(step_prompts(hanoi, 1))
    truth = hanoi.oracle(state, previous)
    assert truth is not None
    kinds = set()
    with SimServer(SimConfig(p=0.0)) as sim, provider_for(sim) as provider:
        for _ in range(40):
            candidate = hanoi.parse(ask(provider, prompt).text)
            assert candidate is not None
            if candidate.move == truth.move:
                kinds.add("wrong state")
            else:
                assert candidate.next_state == apply_move(state, candidate.move)
                kinds.add("other legal move")
    assert kinds == {"wrong state", "other legal move"}


def test_red_flag_rate_1_gives_only_red_flag_worthy_responses(hanoi: HanoiDomain) -> None:
    with SimServer(SimConfig(p=1.0, red_flag_rate=1.0)) as sim, provider_for(sim) as provider:
        for prompt, _, _ in step_prompts(hanoi, 15):
            for _ in range(4):
                assert is_red_flag_worthy(ask(provider, prompt), hanoi)
        stats = sim.stats
    assert sum(stats.values()) == 60
    assert set(stats) == {"rambling", "broken", "cut_off"}


def test_rambling_is_cut_at_max_tokens(hanoi: HanoiDomain) -> None:
    prompt = hanoi.build_prompt(hanoi.initial_state(), None)
    with SimServer(SimConfig(red_flag_rate=1.0)) as sim, provider_for(sim) as provider:
        completions = [
            provider.complete(prompt, model="sim", temperature=0.1, max_tokens=100) for _ in range(30)
        ]
    assert all(completion.tokens_out <= 100 for completion in completions)
    assert any(
        completion.finish_reason is FinishReason.LENGTH and completion.tokens_out == 100
        for completion in completions
    )


def test_temperature_0_repeats_the_same_text_and_other_temperatures_vary(hanoi: HanoiDomain) -> None:
    prompts = [prompt for prompt, _, _ in step_prompts(hanoi, 10)]
    with SimServer(SimConfig(p=0.5, red_flag_rate=0.3, seed=7)) as sim, provider_for(sim) as provider:
        for prompt in prompts:
            assert ask(provider, prompt, temperature=0.0).text == ask(provider, prompt, temperature=0.0).text
        varied = {ask(provider, prompts[0], temperature=0.7).text for _ in range(20)}
    assert len(varied) > 1


def test_answers_are_reproducible_across_servers_and_thread_schedules(hanoi: HanoiDomain) -> None:
    prompts = [prompt for prompt, _, _ in step_prompts(hanoi, 6)] * 5

    def run() -> list[str]:
        with SimServer(SimConfig(p=0.6, red_flag_rate=0.2, seed=3)) as sim, provider_for(sim) as provider:
            with ThreadPoolExecutor(max_workers=8) as pool:
                return sorted(pool.map(lambda prompt: ask(provider, prompt).text, prompts))

    assert run() == run()


def test_non_hanoi_prompt_is_a_request_error() -> None:
    with SimServer(SimConfig()) as sim, provider_for(sim) as provider:
        with pytest.raises(ProviderRequestError) as caught:
            ask(provider, Prompt(system="You are helpful.", user="Write a poem about Redis."))
        assert caught.value.status == 400
        assert "Hanoi" in str(caught.value)
        assert sim.stats == {"bad_request": 1}


def test_malformed_json_and_unknown_routes_are_rejected_and_the_server_keeps_serving(
    hanoi: HanoiDomain,
) -> None:
    with SimServer(SimConfig(p=1.0)) as sim, httpx.Client(base_url=sim.base_url) as client:
        bad = client.post(
            "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and "error" in bad.json()
        wrong_shape = client.post("/chat/completions", json={"messages": "hello"})
        assert wrong_shape.status_code == 400
        assert client.post("/nowhere", json={}).status_code == 404
        health = httpx.get(sim.base_url.removesuffix("/v1") + "/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        prompt = hanoi.build_prompt(hanoi.initial_state(), None)
        body = {
            "model": "m",
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "max_completion_tokens": 300,
        }
        good = client.post("/chat/completions", json=body).json()
    assert good["object"] == "chat.completion" and good["model"] == "m"
    assert good["choices"][0]["message"]["role"] == "assistant"
    usage = good["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert json.dumps(good)


def test_correct_share_at_p_0_8_is_close_to_p(hanoi: HanoiDomain) -> None:
    samples = [
        (prompt, hanoi.oracle(state, previous)) for prompt, state, previous in step_prompts(hanoi, 15)
    ] * 27
    with SimServer(SimConfig(p=0.8, seed=11)) as sim, provider_for(sim) as provider:
        with ThreadPoolExecutor(max_workers=16) as pool:
            correct = sum(pool.map(lambda item: hanoi.parse(ask(provider, item[0]).text) == item[1], samples))
    share = correct / len(samples)
    tolerance = 4 * math.sqrt(0.8 * 0.2 / len(samples))  # four standard errors
    assert abs(share - 0.8) < tolerance


def test_start_returns_the_base_url_and_stop_frees_the_server() -> None:
    sim = SimServer(SimConfig())
    url = sim.start()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert sim.start() == url
    sim.stop()
    with pytest.raises(RuntimeError):
        _ = sim.base_url


@pytest.mark.parametrize(
    "kwargs",
    [{"p": 1.5}, {"p": -0.1}, {"red_flag_rate": 2.0}, {"latency_ms": -1.0}, {"latency_ms": math.inf}],
)
def test_sim_config_rejects_bad_ranges(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)  # type: ignore[arg-type]
