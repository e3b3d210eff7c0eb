"""The Dockerfile and docker-compose.yml, checked the way the image would run them (no Docker engine here)."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from bot.metrics import Metrics
from tests.core import open_test_core
from tests.test_service import MemoryAdapter, settings, start_service  # noqa: F401 - `settings` is a fixture

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """Every instruction in order as (keyword, arguments), with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in joined.splitlines() if line[:1].isupper()]


def instruction(name: str) -> list[str]:
    """Every instruction `name`, in order."""
    return [rest for keyword, rest in instructions() if keyword == name]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in instruction("ENV"):
        for part in shlex.split(spec):
            if "=" in part:
                key, value = part.split("=", 1)
                env[key] = value
    return env


CACHE_MOUNT = "--mount=type=cache,target=/root/.cache/pip"


def pip_installs() -> list[str]:
    """The RUN instructions that install with pip, in order, without their cache mount."""
    return [run.removeprefix(CACHE_MOUNT).strip() for run in instruction("RUN") if "pip install" in run]


def test_install_step_is_the_readmes() -> None:
    readme = (REPO / "README.md").read_text()
    assert "python3 -m pip install . && moa-bot --help" in readme
    assert pip_installs()[-1] == "python3 -m pip install --no-deps ."  # the dependencies are in place by then
    assert len([line for line in DOCKERFILE.splitlines() if line.startswith("FROM ")]) == 2  # multi-stage


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    steps = instructions()
    install_deps = next(i for i, (kind, rest) in enumerate(steps) if kind == "RUN" and "-r requirements.txt" in rest)
    copies_before = [rest for kind, rest in steps[:install_deps] if kind == "COPY"]
    assert copies_before == ["pyproject.toml ./"]
    assert any(kind == "COPY" and rest.startswith("moa ") for kind, rest in steps[install_deps:])


def test_the_dependency_list_is_read_from_pyproject(tmp_path: Path) -> None:
    words = shlex.split(pip_installs()[0])
    script = words[words.index("-c") + 1]
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    listed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed.stdout.splitlines() == declared


def test_pip_downloads_are_cached_between_builds() -> None:
    assert DOCKERFILE.startswith("# syntax=docker/dockerfile:1\n")  # RUN --mount needs BuildKit's syntax
    assert all(run.startswith(CACHE_MOUNT) for run in instruction("RUN") if "pip install" in run)
    assert "PIP_NO_CACHE_DIR" not in DOCKERFILE


def test_base_image_is_pinned_to_a_patch_release() -> None:
    bases = [spec.split()[0] for spec in instruction("FROM")]
    assert len(bases) == 2 and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base) for base in bases), bases


def test_dockerignore_keeps_secrets_and_data_out_but_not_what_the_image_copies() -> None:
    ignored = [line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".env", "data", ".venv"} <= set(ignored)
    copied = [path for spec in instruction("COPY") if not spec.startswith("--from")
              for path in spec.split()[:-1]]
    assert copied and not [path for path in copied if any(fnmatch.fnmatch(path, pattern) for pattern in ignored)]


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
    async with open_test_core(settings) as core:
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


def test_the_replicas_profile_runs_two_replicas_on_its_own_postgresql() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services, volumes = compose["services"], compose["volumes"]
    assert "profiles" not in services["moa-bot"], "plain `docker compose up` still runs the one SQLite service"
    postgres = services["postgres"]
    assert postgres["profiles"] == ["replicas"] and "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in volumes, "the database lives on a named volume"
    replicas = [services[name] for name in services if name.startswith("replica-")]
    assert len(replicas) == 2
    env = postgres["environment"]
    url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
    for replica in replicas:
        assert replica["profiles"] == ["replicas"]
        assert replica["environment"]["MOA_DB"] == url, "each replica is on the profile's PostgreSQL"
        assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert "/healthz" in " ".join(replica["healthcheck"]["test"])
    assert len({replica["ports"][0] for replica in replicas}) == 2, "each replica's /healthz on a port of its own"
