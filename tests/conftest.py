"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.llm import FakeLLM


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A running fake chat-completions server with no models yet: add them with `script()` or `fail()`."""
    async with FakeLLM() as llm:
        yield llm
