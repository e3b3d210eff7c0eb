"""Small builders shared by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from moa.events import Event
from moa.orchestrator import Orchestrator
from moa.presets import BUILTIN_PRESETS, Preset
from moa.providers.registry import ProviderRegistry
from moa.retry import Backoff
from tests.fakes.llm import FakeLLM

FAST_BACKOFF = Backoff(base_s=0.05, max_s=0.2, max_retry_after_s=5.0)


def registry_for(llm: FakeLLM) -> ProviderRegistry:
    return ProviderRegistry({}, together_api_key="test-key", together_base_url=llm.base_url)


def preset(
    proposers: Sequence[str] = ("p/a", "p/b", "p/c", "p/d"), aggregator: str = "agg/x", **kw: object
) -> Preset:
    base = replace(BUILTIN_PRESETS["default"], name="test", proposers=tuple(proposers), aggregator=aggregator)
    return replace(base, **kw)  # type: ignore[arg-type]


async def collect(orchestrator: Orchestrator, p: Preset, question: str = "What is WAL?") -> list[Event]:
    return [e async for e in orchestrator.run(p, [{"role": "user", "content": question}])]


async def eventually(check: Callable[[], object], within: float = 5.0, what: str = "condition") -> object:
    """Poll `check` until it returns something truthy (returned), or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.01)
