"""The Dockerfile, checked the way the image would run it (no Docker engine here)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
from pathlib import Path

from bot.metrics import Metrics
from bot.wiring import open_core
from tests.test_service import MemoryAdapter, settings, start_service  # noqa: F401 - `settings` is a fixture

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """Every instruction `name`, with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in instruction("ENV"):
        for part in shlex.split(spec):
            if "=" in part:
                key, value = part.split("=", 1)
                env[key] = value
    return env


def test_install_step_is_the_readmes() -> None:
    readme = (REPO / "README.md").read_text()
    assert "python3 -m pip install . && moa-bot --help" in readme
    assert "python3 -m pip install ." in instruction("RUN")
    assert len([line for line in DOCKERFILE.splitlines() if line.startswith("FROM ")]) == 2  # multi-stage


def test_runtime_shape() -> None:
    assert instruction("USER") == ["moa"]
    assert instruction("EXPOSE") == ["8080"]
    assert json.loads(instruction("CMD")[-1]) == ["moa-bot", "run"]
    assert json.loads(instruction("VOLUME")[0]) == ["/data"]
    env = image_env()
    assert env["MOA_DB"] == "/data/moa.sqlite3" and env["MOA_HTTP_HOST"] == "0.0.0.0"


async def test_entry_command_without_tokens_says_what_to_set(tmp_path: Path) -> None:
    env = {**image_env(), "MOA_DB": str(tmp_path / "moa.sqlite3"), "PATH": os.environ["PATH"],
           "PYTHONPATH": str(REPO)}
    command = json.loads(instruction("CMD")[-1])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *command[1:], env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "no adapter configured" in err.decode()


async def test_healthcheck_command_follows_healthz(settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    healthcheck = instruction("HEALTHCHECK")[0]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    adapter = MemoryAdapter()
    async with open_core(settings) as core:
        running = await start_service(core, adapter, Metrics())

        async def probe() -> int:
            process = await asyncio.create_subprocess_exec(
                *command, env={**os.environ, "MOA_HTTP_PORT": str(running.service.port)},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            return await asyncio.wait_for(process.wait(), 30)

        assert await probe() == 0
        adapter.up = False
        assert await probe() != 0
        running.service.stop()
        assert await running.task == 0
