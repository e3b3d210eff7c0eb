"""`moa-bot` as a user runs it, against the fake chat-completions server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from bot import cli
from bot.config import load_settings
from bot.db import migrate_to
from moa.conversation import ConversationKey
from moa.errors import ConfigError, StorageError
from moa.events import Usage
from moa.knowledge import Audience, Cursor, Document, Kind, Librarian
from moa.knowledge.privacy import shelves
from moa.presets import BUILTIN_PRESETS
from moa.persistence import HistoryBudget, ProposalRecord
from storage import PostgresStore, Store
from storage.lock import DatabaseInUse
from storage.migrations import MIGRATIONS
from storage.postgres.connection import PostgresUrl
from tests.fakes.llm import FakeLLM, Failure
from tests.helpers import eventually
from tests.postgres_server import PostgresServer

REPO = Path(__file__).resolve().parents[1]


async def moa_bot(*args: str, env: dict[str, str], cwd: Path, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def env_for(llm: FakeLLM, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "TOGETHER_API_KEY": "test-key-123456",
        "TOGETHER_BASE_URL": llm.base_url,
        "MOA_DB": str(tmp_path / "data" / "moa.sqlite3"),
        **extra,
    }


async def test_ask_seed_streams_an_answer_built_on_all_drafts(fake_llm: FakeLLM, tmp_path: Path) -> None:
    seed = BUILTIN_PRESETS["seed"]
    for model in seed.proposers:
        fake_llm.script(model, latency=0.4, reply=f"draft by {model}")
    fake_llm.fail(seed.proposers[0], Failure.rate_limit(retry_after=0.2))

    def synthesize(body: dict) -> str:  # type: ignore[type-arg]
        if body["messages"][0]["role"] != "system":  # Mixtral is a proposer and the aggregator in `seed`
            return f"draft by {seed.aggregator}"
        system = body["messages"][0]["content"]
        drafts = sum(f"draft by {m}" in system for m in seed.proposers)
        return f"Synthesis of {drafts} drafts for: {body['messages'][-1]['content']}"

    fake_llm.script(seed.aggregator, reply=synthesize, latency=0.4, tokens_per_s=200)
    started = time.monotonic()
    code, out, err = await moa_bot(
        "ask",
        "--preset",
        "seed",
        "--thread",
        "t1",
        "What is a WAL?",
        env=env_for(fake_llm, tmp_path),
        cwd=tmp_path,
    )
    assert code == 0, err
    assert out.strip() == "Synthesis of 4 drafts for: What is a WAL?"
    assert "Asking 4 models" in err and "after 2 attempts" in err and "seed ·" in err
    # the proposers' first attempts (0.4 s each, the 429 included) were in flight together
    proposer_calls = [fake_llm.requests_for(m)[0] for m in seed.proposers]
    assert all(a.overlaps(b) for a in proposer_calls for b in proposer_calls if a is not b)
    assert time.monotonic() - started < 10

    code, out, err = await moa_bot(
        "ask",
        "--preset",
        "seed",
        "--thread",
        "t1",
        "And its size?",
        env=env_for(fake_llm, tmp_path),
        cwd=tmp_path,
    )
    assert code == 0, err
    second = fake_llm.requests_for(seed.aggregator)[-1].messages
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "What is a WAL?" and second[3]["content"] == "And its size?"


async def test_ask_json_prints_the_run_record(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a", "p/b"]\naggregator = "agg/x"\n')
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    code, out, err = await moa_bot(
        "ask",
        "--json",
        "--preset",
        "tiny",
        "--thread",
        "t9",
        "hello",
        env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)),
        cwd=tmp_path,
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "done" and record["answer"] == "[agg/x] answer to: hello"
    assert (record["thread"], record["question"], record["preset"], record["error"]) == ("t9", "hello", "tiny", "")
    assert sorted(p["model"] for p in record["proposals"]) == ["p/a", "p/b"]  # in the order they finished
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["started_at"].endswith("Z") and record["elapsed_s"] > 0


async def test_ask_json_leaves_out_storage_internals(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    code, out, err = await moa_bot(
        "ask", "--json", "--preset", "tiny", "hello", env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)),
        cwd=tmp_path,
    )
    assert code == 0, err
    record = json.loads(out)
    assert set(record) == {
        "run_id", "thread", "question", "preset", "status", "answer", "error", "started_at", "finished_at",
        "elapsed_s", "prompt_tokens", "completion_tokens", "sources", "proposals",
    }
    assert set(record["proposals"][0]) == {
        "model", "layer", "text", "latency_s", "prompt_tokens", "completion_tokens", "error", "cut_off",
    }


async def test_bad_config_is_one_clear_line(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.team]\nproposers = ["local:llama3"]\naggregator = "agg/x"\nlayerz = 2\n')
    code, _, err = await moa_bot("presets", env={"MOA_CONFIG": str(config)}, cwd=tmp_path)
    assert code == 2
    assert err.strip() == (
        f"moa-bot: configuration error: {config}: [presets.team]: unknown key 'layerz'; allowed keys: proposers, "
        "aggregator, layers, temperature, proposer_max_tokens, aggregator_max_tokens, timeout_s, retries, "
        "min_proposers, straggler_grace_s, aggregator_prompt"
    )
    code, _, err = await moa_bot("ask", "hi", env={"MOA_HTTP_PORT": "eighty"}, cwd=tmp_path)
    assert code == 2 and "MOA_HTTP_PORT: 'eighty' is not a whole number" in err


async def test_all_models_failing_exits_1_with_the_reason(fake_llm: FakeLLM, tmp_path: Path) -> None:
    code, out, err = await moa_bot(
        "ask", "--preset", "lite", "hi", env=env_for(fake_llm, tmp_path), cwd=tmp_path
    )
    assert code == 1 and out == ""
    assert "No model could answer: model not found" in err
    assert "test-key-123456" not in err
    # the advice is for the person at the terminal, who runs the bot, not for people in a chat
    assert "Run `moa-bot doctor`" in err and "An operator" not in err


async def test_chat_keeps_history(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    code, out, err = await moa_bot(
        "chat",
        "--preset",
        "tiny",
        env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)),
        cwd=tmp_path,
        stdin=b"first question\nsecond question\n/exit\n",
    )
    assert code == 0, err
    assert out.count("[agg/x] answer to:") == 2
    last = fake_llm.requests_for("agg/x")[-1].messages
    assert [m["content"] for m in last[1:]] == [
        "first question",
        "[agg/x] answer to: first question",
        "second question",
    ]


async def test_presets_lists_builtins(tmp_path: Path) -> None:
    code, out, _ = await moa_bot("presets", env={}, cwd=tmp_path)
    assert code == 0
    for name in ("default", "seed", "lite", "self"):
        assert f"\n{name}" in f"\n{out}"


async def test_doctor_checks_together_models(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    fake_llm.script("p/a")
    code, out, _ = await moa_bot(
        "doctor", env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)), cwd=tmp_path
    )
    assert code == 1  # the other built-in presets name models the fake does not serve
    assert "FAIL provider together: models not found:" in out
    assert "agg/x (used by preset: default)" in out
    assert "meta-llama/Llama-3.3-70B-Instruct-Turbo (used by presets: lite, seed)" in out
    assert "ok   database" in out


async def test_doctor_lists_each_channels_effective_settings(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text(
        'system_prompt = "Answer briefly."\n'
        '[presets.default]\nproposers = ["p/a"]\naggregator = "agg/x"\n'
        '[channels."C0SUPPORT"]\npreset = "lite"\nknowledge = true\nsuggested_prompts = ["Who owns billing?"]\n'
        '[channels."discord:123456789012"]\nsystem_prompt = "Thread rules."\n'
    )
    _, out, _ = await moa_bot("doctor", env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)), cwd=tmp_path)
    assert "ok   system prompt: 15 characters" in out
    assert (
        "ok   channel C0SUPPORT: preset lite; the deployment's system prompt; knowledge channel; "
        "1 suggested prompts"
    ) in out
    assert (
        "ok   channel discord:123456789012: preset default (the default); its own system prompt (13 characters); "
        "answers when asked"
    ) in out
    assert "ok   api: off (MOA_API_KEYS or [api.keys.NAME] in the MOA_CONFIG file turns it on)" in out


async def test_doctor_names_the_api_keys_never_the_keys_and_what_sets_each_apart(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = tmp_path / "moa.toml"
    config.write_text(
        '[api.keys.webui]\nkey_env = "KEY_WEBUI"\nrate = "200/hour"\n'
        '[api.keys.ops]\nkey_env = "KEY_OPS"\nscope = "C0OPS"\n'
    )
    secrets = {"KEY_WEBUI": "webui-0123456789abcdef", "KEY_OPS": "ops-0123456789abcdef"}
    env = env_for(fake_llm, tmp_path, MOA_CONFIG=str(config), **secrets)
    _, out, _ = await moa_bot("doctor", env=env, cwd=tmp_path)
    assert "ok   api: /v1 with 2 keys: webui (its own rate), ops (also C0OPS's team knowledge)" in out
    assert not any(secret in out for secret in secrets.values())


async def test_missing_together_key_is_one_clear_line(tmp_path: Path) -> None:
    code, out, err = await moa_bot("ask", "hi", env={"MOA_DB": str(tmp_path / "db.sqlite3")}, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().startswith("moa-bot: configuration error: TOGETHER_API_KEY: not set")
    assert len(err.strip().splitlines()) == 1


async def test_dotenv_in_the_working_directory_is_read(fake_llm: FakeLLM, tmp_path: Path) -> None:
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    (tmp_path / "moa.toml").write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    (tmp_path / ".env").write_text(
        f"TOGETHER_API_KEY=from-dotenv-key\nTOGETHER_BASE_URL={fake_llm.base_url}\nMOA_CONFIG=moa.toml\n"
        "MOA_PRESET=tiny\n"
    )
    code, out, err = await moa_bot("ask", "hi", env={"MOA_DB": str(tmp_path / "db.sqlite3")}, cwd=tmp_path)
    assert code == 0, err
    assert out.strip() == "[agg/x] answer to: hi"
    assert fake_llm.requests[0].authorization == "Bearer from-dotenv-key"


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pyproject_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


async def test_version_prints_the_package_version(tmp_path: Path) -> None:
    code, out, _ = await moa_bot("--version", env={}, cwd=tmp_path)
    assert code == 0
    assert out.strip() == f"moa-bot {pyproject_version()}"


def test_version_of_a_checkout_that_was_never_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.version() == pyproject_version()


async def test_ask_demo_answers_offline_and_its_thread_continues(tmp_path: Path) -> None:
    env = {"MOA_DB": str(tmp_path / "moa.sqlite3"), "TOGETHER_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    code, out, err = await moa_bot("ask", "--demo", "What is a WAL?", env=env, cwd=tmp_path)
    assert code == 0, err
    assert "demo answer: no language model was called" in out and "What is a WAL?" in out
    assert all(f"✓ demo:{m}" in err for m in ("alpha", "beta", "gamma"))
    # the README's example: the id printed by the first ask, reused
    thread = re.search(r"--thread (\w+)", err)
    assert thread is not None, err
    code, out, err = await moa_bot("ask", "--demo", "--thread", thread[1], "And its size?", env=env, cwd=tmp_path)
    assert code == 0, err
    assert "And its size?" in out and "1 earlier question" in out
    assert "starting a new one" not in err


async def test_ask_with_an_unknown_thread_says_it_starts_one(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    env = env_for(fake_llm, tmp_path, MOA_CONFIG=str(config), MOA_PRESET="tiny")
    code, _, err = await moa_bot("ask", "--thread", "wal", "hi", env=env, cwd=tmp_path)
    assert code == 0, err
    assert "No conversation 'wal' yet: starting a new one with that id." in err
    code, _, err = await moa_bot("ask", "--thread", "wal", "again", env=env, cwd=tmp_path)
    assert code == 0 and "starting a new one" not in err


async def test_ask_prints_no_info_log_lines_by_default(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    env = env_for(fake_llm, tmp_path, MOA_CONFIG=str(config), MOA_PRESET="tiny")
    code, _, err = await moa_bot("ask", "hi", env=env, cwd=tmp_path)
    # with MOA_LOG_LEVEL set the answer's INFO line appears (tests/test_service.py reads it)
    assert code == 0 and " INFO " not in err, err


async def test_failed_model_line_names_the_model_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a", "p/b"]\naggregator = "agg/x"\nretries = 0\n')
    fake_llm.fail("p/a", Failure.server_error(503))
    for model in ("p/b", "agg/x"):
        fake_llm.script(model)
    code, _, err = await moa_bot(
        "ask", "--preset", "tiny", "hi", env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)), cwd=tmp_path
    )
    assert code == 0, err
    line = next(row for row in err.splitlines() if "✗" in row)
    assert line.count("p/a") == 1 and "HTTP 503" in line and "ProviderUnavailable" not in line, line


async def test_unreachable_provider_names_the_url_and_why(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\nretries = 0\n')
    env = {"TOGETHER_API_KEY": "k", "TOGETHER_BASE_URL": url, "MOA_DB": str(tmp_path / "db"),
           "MOA_CONFIG": str(config)}
    code, _, err = await moa_bot("ask", "--preset", "tiny", "hi", env=env, cwd=tmp_path)
    assert code == 1
    assert "✗ p/a (layer 1)" in err and f"cannot connect to {url} (connection refused)" in err
    assert f"No model could answer: cannot connect to {url} (connection refused) (2 models)" in err
    assert "Check your network and TOGETHER_BASE_URL" in err


async def test_doctor_names_an_unreachable_provider(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = {"TOGETHER_API_KEY": "k", "TOGETHER_BASE_URL": url, "MOA_DB": str(tmp_path / "db")}
    code, out, _ = await moa_bot("doctor", env=env, cwd=tmp_path)
    assert code == 1
    assert f"FAIL provider together: cannot connect to {url} (connection refused)" in out
    assert "ok   provider demo: reachable" in out


async def test_chat_demo_answers_offline_until_end_of_input(tmp_path: Path) -> None:
    code, out, err = await moa_bot(
        "chat", "--demo", env={"MOA_DB": str(tmp_path / "db")}, cwd=tmp_path, stdin=b"What is a WAL?\n"
    )
    assert code == 0, err
    assert "demo answer" in out and "What is a WAL?" in out
    assert "Traceback" not in err


class Chat:
    """`moa-bot chat` on pipes, read as it goes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.err = ""

    @classmethod
    async def start(cls, env: dict[str, str], cwd: Path, *args: str) -> Chat:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "chat", *args,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
            cwd=cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def wait_for(self, text: str, within: float = 20.0) -> None:
        assert self.process.stderr is not None
        async with asyncio.timeout(within):
            while text not in self.err:
                line = await self.process.stderr.readline()
                assert line, f"chat ended before {text!r}: {self.err}"
                self.err += line.decode()

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def finish(self) -> tuple[int, str, str]:
        """Close the input (end of file, as Ctrl-D) and wait for the end."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        out, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode is not None
        return self.process.returncode, out.decode(), self.err + err.decode()


async def test_chat_ctrl_c_stops_the_answer_and_the_prompt_comes_back(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async def slow_for_the_first(body: dict) -> str:  # type: ignore[type-arg]
        if "first" in body["messages"][-1]["content"]:
            await asyncio.sleep(30)
        return f"answer to {body['messages'][-1]['content']}"

    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    fake_llm.script("p/a", reply=slow_for_the_first)
    fake_llm.script("agg/x")
    chat = await Chat.start(env_for(fake_llm, tmp_path, MOA_CONFIG=str(config), MOA_PRESET="tiny"), tmp_path)
    await chat.say("first question")
    await eventually(lambda: fake_llm.in_flight == 1, within=20, what="the first question reaching the model")
    chat.process.send_signal(signal.SIGINT)
    await chat.wait_for("Stopped.")
    await eventually(lambda: fake_llm.in_flight == 0, what="the stopped call to be dropped")
    await chat.say("second question")
    code, out, err = await chat.finish()
    assert code == 0, err
    assert "[agg/x] answer to: second question" in out and "first question" not in out
    assert "restarted" not in err and "Traceback" not in err
    assert fake_llm.requests_for("p/a")[0].outcome == "client_gone"


async def test_chat_ctrl_c_at_the_prompt_leaves_at_once(tmp_path: Path) -> None:
    chat = await Chat.start({"MOA_DB": str(tmp_path / "db")}, tmp_path, "--demo")
    await chat.wait_for("Ctrl-C stops an answer")
    started = time.monotonic()
    chat.process.send_signal(signal.SIGINT)
    # at once: no second Ctrl-C, no input awaited; the bound leaves room for closing on a loaded machine
    code = await asyncio.wait_for(chat.process.wait(), 10)
    assert code in (0, 130) and time.monotonic() - started < 10
    _, _, err = await chat.finish()
    assert "Traceback" not in err


async def test_knowledge_commands_add_list_search_remove_and_stats(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "ops").mkdir(parents=True)
    (docs / "ops" / "deploy.md").write_text("# Deploys\n\nThe billing service ships with make ship on Tuesdays.")
    (docs / "page.html").write_text("<h1>Rollback</h1><p>Billing rollbacks use make back.</p>")
    (docs / "logo.png").write_bytes(b"\x89PNG")
    env = {"MOA_DB": str(tmp_path / "moa.sqlite3")}  # no API key: knowledge needs none
    code, out, err = await moa_bot("knowledge", "add", str(docs), env=env, cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        f"added: {docs / 'page.html'}",
        f"added: {docs / 'ops' / 'deploy.md'}",
        f"skipped: {docs / 'logo.png'}: not a supported type (Markdown, plain text, CSV, JSON, source code, HTML, PDF)",
    ]
    code, out, err = await moa_bot("knowledge", "add", str(docs / "ops"), "--scope", "C9", env=env, cwd=tmp_path)
    assert (code, out.strip(), err.strip()) == (
        0, f"replaced: {docs / 'ops' / 'deploy.md'}", "0 added, 1 replaced, 0 unchanged, 0 removed, 0 skipped")
    code, out, _ = await moa_bot("knowledge", "list", env=env, cwd=tmp_path)
    assert out.splitlines() == [
        f"local:{docs / 'ops' / 'deploy.md'}\tlocal\tprivate\tlocal C9\t1 chunks\tdeploy.md",
        f"local:{docs / 'page.html'}\tlocal\tpublic\tdeployment-wide\t1 chunks\tpage.html",
    ]
    # the terminal sees what `ask` would: the scoped file is for channel C9 only
    code, out, _ = await moa_bot("knowledge", "search", "billing", "rollbacks", env=env, cwd=tmp_path)
    assert code == 0 and out.startswith("1. [") and "page.html (" in out and "deploy.md" not in out
    assert "Billing rollbacks use make back." in out and f"local:{docs / 'page.html'}" in out
    code, out, _ = await moa_bot("knowledge", "remove", str(docs / "page.html"), env=env, cwd=tmp_path)
    assert (code, out.strip()) == (0, "removed 1 document")
    code, out, _ = await moa_bot("knowledge", "stats", env=env, cwd=tmp_path)
    assert code == 0 and out.splitlines()[:2] == ["documents: 1 (1 local)", "chunks: 1 (0.00 M characters)"]
    assert f"MB ({tmp_path / 'moa.sqlite3'})\n" in out
    assert "embeddings: off (set MOA_EMBEDDING_MODEL for semantic search)" in out


@pytest.mark.postgres
async def test_knowledge_commands_on_postgresql_search_full_text_and_say_semantic_search_is_off(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    (tmp_path / "deploy.md").write_text("Billing ships with make ship on Tuesdays.")
    url = await postgres_server.emptied_database()
    env = {"MOA_DB": url, "MOA_EMBEDDING_MODEL": "emb/e5"}
    code, _, err = await moa_bot("knowledge", "add", str(tmp_path / "deploy.md"), env=env, cwd=tmp_path)
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if "MOA_EMBEDDING_MODEL" in line]
    assert "semantic search needs SQLite (sqlite-vec): on PostgreSQL team knowledge is searched by full text" in warning
    code, out, _ = await moa_bot("knowledge", "search", "billing", "ships", env=env, cwd=tmp_path)
    assert code == 0 and out.startswith("1. [") and f"local:{tmp_path / 'deploy.md'}" in out
    code, out, _ = await moa_bot("knowledge", "stats", env=env, cwd=tmp_path)
    assert code == 0 and out.splitlines()[0] == "documents: 1 (1 local)"
    assert f"MB ({PostgresUrl(url).location})\n" in out
    assert "embeddings: off (semantic search needs SQLite; on PostgreSQL, full-text search only)" in out


async def test_ask_json_shows_the_sources_given_and_cited(fake_llm: FakeLLM, tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    fake_llm.script("p/a")
    fake_llm.script("agg/x", reply="Ship with make ship [1].")
    (tmp_path / "deploy.md").write_text("Billing ships with make ship on Tuesdays.")
    env = env_for(fake_llm, tmp_path, MOA_CONFIG=str(config))
    assert (await moa_bot("knowledge", "add", str(tmp_path / "deploy.md"), env=env, cwd=tmp_path))[0] == 0
    code, out, err = await moa_bot("ask", "--json", "--preset", "tiny", "How does billing ship?", env=env,
                                   cwd=tmp_path)
    assert code == 0, err
    record = json.loads(out)
    [source] = record["sources"]
    assert (source["number"], source["source"], source["title"], source["cited"]) == (
        1, f"local:{tmp_path / 'deploy.md'}", "deploy.md", True)
    assert source["link"] == str(tmp_path / "deploy.md") and source["date"].endswith("Z")
    assert record["answer"] == f"Ship with make ship [1].\n\n**Sources**\n- [1] deploy.md (`{tmp_path / 'deploy.md'}`)" \
        f" — {source['date'][:10]}"
    assert "Team sources" in fake_llm.requests_for("p/a")[-1].messages[0]["content"]
    code, out, err = await moa_bot("ask", "--json", "--no-knowledge", "--preset", "tiny", "How does billing ship?",
                                   env=env, cwd=tmp_path)
    assert code == 0, err and json.loads(out)["sources"] == []
    assert fake_llm.requests_for("p/a")[-1].messages[0]["role"] == "user"


# the database -----------------------------------------------------------------------------------------------

SLACK = ConversationKey("slack", "T1", "C1", "1700000000.000100")
DISCORD = ConversationKey("discord", "G1", "C2", "")


async def sqlite_with_data(path: Path) -> tuple[str, str]:
    """A SQLite database with a bit of everything; (a finished run, a run in flight)."""
    async with Store(path) as store:
        await store.seed_history(SLACK, [{"role": "user", "content": "read"}, {"role": "assistant", "content": "it"}])
        done = await store.create_run(SLACK, "U1", "What is WAL?", "default", "Ev1")
        await store.set_placeholder(done, {"channel": "C1", "ts": "1.2"})
        await store.add_proposals(done, [ProposalRecord(1, "p/a", "draft", 0.5, Usage(10, 20)),
                                         ProposalRecord(1, "p/b", "", 3.0, Usage(), "cut off", True)])
        await store.append_turn(SLACK, "What is WAL?", "A log.", done)
        await store.finish_run(done, status="done", answer="A log.", elapsed_s=1.5, usage=Usage(30, 40))
        assert await store.record_feedback(done, "U2", "up")
        live = await store.create_run(DISCORD, "U3", "still answering", "default", "Ev2")
        await store.seed_history(DISCORD, [{"role": "user", "content": "twice"}] * 2)  # a repeat is kept twice
        for event in ("Ev1", "Ev2"):
            assert await store.first_time("slack", event)
        # team knowledge: two messages, a backfill cursor, the sources given to the run, an embedding model's vector
        librarian = Librarian(store)
        await librarian.index_messages([note(1, "WAL is a write-ahead log."), note(2, "Checkpoints fold the log back.")])
        await librarian.save_cursor(Cursor("slack", "T1", "C1", "abc", messages=2, oldest=1_700_000_001))
        given = await librarian.find("the log", [], IN_C1)
        await librarian.record_given(done, given)
        await librarian.record_cited(done, [2])
        await store.prepare_vectors("emb/e5")
        await store.db.execute("INSERT INTO chunk_embeddings (chunk_id, vector) SELECT id, x'0000803f' FROM chunks")
        await store.db.commit()
    return done, live


IN_C1 = Audience("slack", "T1", frozenset({"C1"}))


def note(n: int, text: str) -> Document:
    return Document(f"slack:T1:C1:{n}", Kind.MESSAGE, "slack", "T1", "C1", text, author="ann",
                    created_at=1_700_000_000 + n)


def copied(out: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^ +(\w+) +([\d,]+) copied", out, re.M)}


@pytest.mark.postgres
async def test_db_migrate_to_copies_sqlite_into_postgresql(tmp_path: Path, postgres_server: PostgresServer) -> None:
    source, url = tmp_path / "moa.sqlite3", await postgres_server.new_database()
    done, live = await sqlite_with_data(source)
    code, out, err = await moa_bot("db", "migrate-to", url, env={"MOA_DB": str(source)}, cwd=tmp_path)
    assert code == 0, err
    assert copied(out) == {
        "conversations": 2, "messages": 6, "runs": 2, "proposals": 2, "feedback": 1, "processed_events": 2,
        "documents": 2, "chunks": 2, "backfill_cursors": 1, "knowledge_meta": 1, "run_sources": 2,
    }
    assert "Done: 23 rows copied." in out and "chunk_embeddings" not in out
    async with Store(source) as sqlite, PostgresStore(url) as postgres:
        assert await postgres.documents() == await sqlite.documents()
        assert await postgres.get_cursor("slack", "T1", "C1") == await sqlite.get_cursor("slack", "T1", "C1")
        found = await postgres.search_text(["checkpoints"], shelves(IN_C1), 5)  # PostgreSQL made the tsvector
        assert [p.source for p in found] == ["slack:T1:C1:2"]
        async with postgres.pool.acquire() as conn:
            assert [tuple(r) for r in await conn.fetch("SELECT key, value FROM knowledge_meta")] == [
                ("embedding_model", "emb/e5")]
            assert await conn.fetchval("SELECT count(*) FROM chunk_embeddings") == 0
            # each given source names the target's chunk of its document
            assert await conn.fetchval(
                "SELECT count(*) FROM run_sources r JOIN chunks c ON c.id = r.chunk_id"
                " JOIN documents d ON d.id = c.document_id AND d.source = r.source"
            ) == 2
        for key in (SLACK, DISCORD):
            history = await postgres.load_history(key, HistoryBudget())
            assert history == await sqlite.load_history(key, HistoryBudget()) and history
        assert await postgres.unfinished_runs() == await sqlite.unfinished_runs()
        assert [r.id for r in await postgres.unfinished_runs()] == [live]
        assert await postgres.drafts(done) == await sqlite.drafts(done)
        record, original = await postgres.get_run(done), await sqlite.get_run(done)
        assert record is not None and original is not None
        assert {**record, "conversation_id": 0} == {**original, "conversation_id": 0}
        assert not await postgres.first_time("slack", "Ev1")


@pytest.mark.postgres
async def test_db_migrate_to_again_copies_only_what_is_new(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source, url = tmp_path / "moa.sqlite3", await postgres_server.new_database()
    await sqlite_with_data(source)
    settings = load_settings({"MOA_DB": str(source)})  # in this process: the command's first test runs it whole

    async def migrate() -> str:
        capsys.readouterr()
        assert await migrate_to(settings, url) == 0
        return capsys.readouterr().out

    await migrate()
    out = await migrate()
    assert set(copied(out).values()) == {0}
    assert "Nothing new to copy: PostgreSQL at " in out and "already has everything in" in out
    async with Store(source) as sqlite:  # the bot went on answering, and indexing, on SQLite after the first copy
        await sqlite.append_turn(SLACK, "And its size?", "Small.", "r2")
        librarian = Librarian(sqlite)
        await librarian.index_messages([note(2, "Checkpoints fold the log back, edited."), note(3, "Vacuum.")])
        await librarian.save_cursor(Cursor("slack", "T1", "C1", "def", messages=3, oldest=1_600_000_000))
    out = await migrate()
    assert {table: n for table, n in copied(out).items() if n} == {
        "messages": 2, "documents": 2, "chunks": 2, "backfill_cursors": 1}
    async with Store(source) as sqlite, PostgresStore(url) as postgres:
        history = await postgres.load_history(SLACK, HistoryBudget())
        assert await postgres.documents() == await sqlite.documents()
        [edited] = await postgres.search_text(["edited"], shelves(IN_C1), 5)
        cursor = await postgres.get_cursor("slack", "T1", "C1")
    assert [m["content"] for m in history] == ["read", "it", "What is WAL?", "A log.", "And its size?", "Small."]
    assert edited.text == "Checkpoints fold the log back, edited." and cursor is not None and cursor.cursor == "def"


# the refusals, in this process: how the command prints an error and exits is tested above for every command


async def test_db_migrate_to_refuses_a_target_that_is_not_postgresql(tmp_path: Path) -> None:
    async with Store(tmp_path / "moa.sqlite3"):
        pass
    settings = load_settings({"MOA_DB": str(tmp_path / "moa.sqlite3")})
    with pytest.raises(ConfigError) as raised:
        await migrate_to(settings, "mysql://moa:hunter2@db/moa")
    assert str(raised.value) == (
        "db migrate-to: the target is not a PostgreSQL URL; give one like postgresql://user:password@host:5432/database"
    )


async def test_db_migrate_to_names_an_unreachable_server(tmp_path: Path) -> None:
    async with Store(tmp_path / "moa.sqlite3"):
        pass
    settings, port = load_settings({"MOA_DB": str(tmp_path / "moa.sqlite3")}), closed_port()
    with pytest.raises(StorageError) as raised:
        await migrate_to(settings, f"postgresql://moa:hunter2@127.0.0.1:{port}/moa")
    assert str(raised.value) == (
        f"db migrate-to: cannot open PostgreSQL at 127.0.0.1:{port}/moa: cannot connect to PostgreSQL "
        "(connection refused)"
    )


async def test_db_migrate_to_waits_for_the_service_to_stop(tmp_path: Path) -> None:
    source = tmp_path / "moa.sqlite3"
    service = await Store(source).start(exclusive=True)
    try:
        with pytest.raises(DatabaseInUse, match="is in use by another `moa-bot run`"):
            await migrate_to(load_settings({"MOA_DB": str(source)}), "postgresql://moa@127.0.0.1/moa")
    finally:
        await service.aclose()


async def test_db_migrate_to_without_a_sqlite_database_says_so(tmp_path: Path) -> None:
    settings = load_settings({"MOA_DB": str(tmp_path / "none.sqlite3")})
    with pytest.raises(ConfigError) as raised:
        await migrate_to(settings, "postgresql://moa@127.0.0.1/moa")
    assert str(raised.value) == f"MOA_DB: no SQLite database at {tmp_path}/none.sqlite3 to copy"
    assert not (tmp_path / "none.sqlite3").exists()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_doctor_names_the_database_and_its_schema(
    fake_llm: FakeLLM, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        database, where = str(tmp_path / "moa.sqlite3"), rf"SQLite [\d.]+ at {re.escape(str(tmp_path))}/moa\.sqlite3"
    else:
        database = await request.getfixturevalue("postgres_server").new_database()
        where = rf"PostgreSQL \d+\.\d+ at 127\.0\.0\.1:\d+/{database.rsplit('/', 1)[1]}"
    _, out, _ = await moa_bot("doctor", env=env_for(fake_llm, tmp_path, MOA_DB=database), cwd=tmp_path)
    latest = MIGRATIONS[-1].__name__.split("_")[0]  # "m003"
    assert re.search(rf"^ok   database: {where}, schema {latest} \(up to date\)$", out, re.M), out


async def test_doctor_names_an_unreachable_postgresql(fake_llm: FakeLLM, tmp_path: Path) -> None:
    port = closed_port()
    env = env_for(fake_llm, tmp_path, MOA_DB=f"postgresql://moa:pw@127.0.0.1:{port}/moa")
    code, out, _ = await moa_bot("doctor", env=env, cwd=tmp_path)
    assert code == 1
    assert (
        f"FAIL database: MOA_DB: cannot open PostgreSQL at 127.0.0.1:{port}/moa: cannot connect to PostgreSQL "
        "(connection refused)"
    ) in out
