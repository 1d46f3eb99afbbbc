"""``maker calibrate`` as a user runs it: real Redis (shared limiter), real HTTP to the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from maker_worker.core.scaling import k_min


def calibrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maker_worker", "calibrate", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def last_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_estimates_p_and_red_flag_rate_of_the_simulator(
    redis_url: str, sim_server: Callable[..., str]
) -> None:
    sim_url = sim_server(p=0.8, red_flag_rate=0.1, seed=5)
    env = {"MAKER_REDIS_URL": redis_url, "MAKER_SIM_URL": sim_url, "MAKER_LLM_PROVIDER": "sim"}
    done = calibrate("--task", "hanoi-4disk", "--samples", "400", "--for-task", "hanoi-20disk", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = last_json(done)
    correct, wrong, red_flags = (int(str(summary[key])) for key in ("correct", "wrong", "red_flags"))
    assert (correct + wrong + red_flags, summary["samples"], summary["errors"]) == (400, 400, 0)
    # p is the success rate among answers that survive red-flagging (they are re-sampled).
    assert summary["p_estimate"] == round(correct / (correct + wrong), 6)
    assert summary["red_flag_rate"] == round(red_flags / 400, 6)
    assert abs(float(summary["p_estimate"]) - 0.8) < 0.08  # ~4 standard errors
    assert abs(float(summary["red_flag_rate"]) - 0.1) < 0.06
    assert float(summary["p_low"]) < float(summary["p_estimate"]) < float(summary["p_high"])
    assert summary["steps"] == 2**20 - 1
    assert summary["k_recommended"] == k_min(float(summary["p_low"]), 2**20 - 1, 0.95)
    assert "use k = " in done.stderr


def test_embedded_default_starts_its_own_redis_and_simulator(tmp_path: Path) -> None:
    done = calibrate("--samples", "60", "--sim-p", "1.0", env={"MAKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = last_json(done)
    assert (summary["correct"], summary["wrong"], summary["p_estimate"]) == (60, 0, 1.0)
    assert summary["task"] == summary["for_task"] == "hanoi-3disk"


def test_a_model_at_chance_gets_no_k_and_exit_1(redis_url: str, sim_server: Callable[..., str]) -> None:
    env = {
        "MAKER_REDIS_URL": redis_url,
        "MAKER_SIM_URL": sim_server(p=0.3, seed=6),
        "MAKER_LLM_PROVIDER": "sim",
    }
    done = calibrate("--samples", "100", env=env)
    assert done.returncode == 1, done.stderr[-2000:]
    assert last_json(done)["k_recommended"] is None
    assert "no k can be planned" in done.stderr


def test_an_unreachable_model_is_one_clear_line_and_exit_2(redis_url: str) -> None:
    env = {
        "MAKER_REDIS_URL": redis_url,
        "MAKER_SIM_URL": "http://127.0.0.1:9/v1",
        "MAKER_LLM_PROVIDER": "sim",
        "MAKER_MAX_RETRIES": "1",
        "MAKER_MAX_DELAY_MS": "100",
    }
    done = calibrate("--samples", "5", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("maker: error: no sample gave an answer to judge (5 failed)")
    assert "Traceback" not in done.stderr and done.stdout == ""
