"""The core for the tests, built the way `moa-bot run` builds it: `Settings` read from an environment (presets
from the TOML file MOA_CONFIG names), then `bot.wiring.open_core`.

    settings = core_settings(fake_llm, tmp_path, MOA_USER_RATE="3/minute")
    async with open_test_core(settings) as core:
        await core.answerer.answer(question, sink)

The default preset is `test`: proposers p/a and p/b, aggregator agg/x, all on the fake LLM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bot.config import Settings, load_settings
from bot.wiring import Core, open_core
from moa.answering import RunSummary
from moa.events import Event
from tests.fakes.llm import FakeLLM
from tests.helpers import FAST_BACKOFF

TEST_PRESET: Mapping[str, object] = {"proposers": ["p/a", "p/b"], "aggregator": "agg/x"}
TOGETHER_KEY = "together-test-key"

TomlValue = str | int | float | Sequence[str]


def core_settings(
    llm: FakeLLM,
    tmp_path: Path,
    *,
    presets: Mapping[str, Mapping[str, TomlValue]] | None = None,
    channels: Mapping[str, Mapping[str, TomlValue | bool]] | None = None,
    system_prompt: str = "",
    **env: str,
) -> Settings:
    """Settings as the service reads them, for a core on `llm` with its database under `tmp_path`.

    `presets`: [presets.NAME] tables for MOA_CONFIG; a `test` table is merged over the default test preset.
    `channels`: [channels."ID"] tables; `system_prompt`: the file's standing instructions.
    `env`: further variables, as an operator sets them (MOA_USER_RATE="off", MOA_MAX_CONCURRENT="2", ...).
    """
    tables = {"test": {**TEST_PRESET, **(presets or {}).get("test", {})}}
    tables.update({name: table for name, table in (presets or {}).items() if name != "test"})
    config = tmp_path / "moa.toml"
    head = f"system_prompt = {json.dumps(system_prompt)}\n" if system_prompt else ""
    rooms = {f'channels."{name}"': table for name, table in (channels or {}).items()}
    config.write_text(head + _toml({f"presets.{n}": t for n, t in tables.items()}) + _toml(rooms), encoding="utf-8")
    environ = {
        "TOGETHER_API_KEY": TOGETHER_KEY,
        "TOGETHER_BASE_URL": llm.base_url,
        "MOA_CONFIG": str(config),
        "MOA_DB": str(tmp_path / "moa.sqlite3"),
        "MOA_PRESET": "test",
        **env,
    }
    return load_settings(environ, dotenv=None)


def open_test_core(
    settings: Settings,
    *,
    on_event: Callable[[str, Event], None] | None = None,
    on_finished: Callable[[RunSummary], None] | None = None,
    on_feedback: Callable[[str], None] | None = None,
) -> AbstractAsyncContextManager[Core]:
    """`open_core` as the service calls it, with provider retries that wait milliseconds, not seconds."""
    return open_core(
        settings, on_event=on_event, on_finished=on_finished, on_feedback=on_feedback, backoff=FAST_BACKOFF
    )


def _toml(tables: Mapping[str, Mapping[str, object]]) -> str:
    # JSON strings, numbers, booleans and lists of strings are valid TOML values
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
        for name, table in tables.items()
    )
