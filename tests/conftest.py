from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

SECRET_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's MAKER_* settings or real API keys."""
    for name in list(os.environ):
        if name.startswith("MAKER_") and name != "MAKER_TEST_REDIS_URL" or name in SECRET_ENV:
            monkeypatch.delenv(name)
    yield
