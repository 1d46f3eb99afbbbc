"""The ``maker`` command as a user runs it: embedded default end to end, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maker_worker.core.scaling import k_min


def maker(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maker_worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )


def test_embedded_run_solves_8_disks_and_prints_the_summary_last(tmp_path: Path) -> None:
    done = maker(
        "run",
        "hanoi",
        "--disks",
        "8",
        "--provider",
        "sim",
        "--sim-p",
        "0.9",
        "--workers",
        "2",
        "--json",
        env={"MAKER_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["steps"], summary["steps_done"]) == ("succeeded", 255, 255)
    assert summary["errors_vs_oracle"] == 0
    assert "simulator" in done.stderr
    events = Path(summary["events_path"]).read_text().splitlines()
    assert sum('"event":"StepCompleted"' in line for line in events) == 255
    assert json.loads(events[-1])["event"] == "JobCompleted"


def test_short_task_name_and_k_from_target(tmp_path: Path) -> None:
    done = maker(
        "run",
        "hanoi-3disk",
        "--target",
        "0.99",
        "--p-estimate",
        "0.8",
        "--sim-p",
        "0.8",
        "--json",
        env={"MAKER_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["task"], summary["k"], summary["errors_vs_oracle"]) == (
        "hanoi-3disk",
        k_min(0.8, 7, 0.99),
        0,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["run", "hanoi", "--disks", "0"], {}, "between 1 and 30 disks"),
        (["run", "hanoi", "--disks", "40"], {}, "between 1 and 30 disks"),
        (["run", "hanoi", "--disks", "abc"], {}, "--disks"),
        (["run", "hanoi", "--disks", "3", "--k", "0"], {}, "--k"),
        (["run", "hanoi", "--disks", "3", "--provider", "gpt"], {}, "unknown provider 'gpt'"),
        (["run", "towers", "--disks", "3"], {}, "unknown task 'towers'"),
        (["run", "hanoi"], {}, "--disks"),
        (["run", "hanoi-3disk", "--target", "0.9"], {}, "--p-estimate"),
        (["run", "hanoi-3disk"], {"MAKER_REDIS_URL": "redis://127.0.0.1:1/0"}, "MAKER_REDIS_URL"),
        (
            ["run", "hanoi-3disk", "--provider", "openai"],
            {},
            "OPENAI_API_KEY",
        ),
        (["run", "hanoi-3disk", "--config", "/nonexistent.toml"], {}, "does not exist"),
        (["worker"], {}, "MAKER_REDIS_URL"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    done = maker(*args, env=env, timeout_s=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("maker: error:") and expected in lines[0]
    assert "Traceback" not in done.stderr


def test_version() -> None:
    done = maker("--version")
    assert done.returncode == 0 and done.stdout.startswith("maker_worker ")


def test_smoke_test_passes_on_the_embedded_default(tmp_path: Path) -> None:
    done = maker("test", "--json", env={"MAKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PASS hanoi-3disk on sim (sim-hanoi): 7/7 steps, errors vs oracle 0" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["errors_vs_oracle"]) == ("succeeded", 0)
    # The embedded Redis keeps its append-only file: `maker status` reads the job back later.
    status = maker("status", summary["job_id"], "--json", env={"MAKER_DATA_DIR": str(tmp_path)})
    assert status.returncode == 0, status.stderr[-2000:]
    again = json.loads(status.stdout.strip().splitlines()[-1])
    assert (again["steps_done"], again["events_path"]) == (7, summary["events_path"])


def test_smoke_test_fails_when_the_model_is_wrong_too_often(tmp_path: Path) -> None:
    done = maker("test", "hanoi-5disk", "--k", "1", "--sim-p", "0.6", env={"MAKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "FAIL hanoi-5disk" in done.stderr


def test_smoke_test_refuses_a_long_task() -> None:
    done = maker("test", "hanoi-12disk")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "maker: error: hanoi-12disk has 4095 steps; maker test takes at most 1023 "
        "(use maker run for long jobs)"
    )
