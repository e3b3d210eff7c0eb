"""`moa-bot` as a user runs it, against the fake chat-completions server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from moa.presets import BUILTIN_PRESETS
from tests.fakes.llm import FakeLLM, Failure

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
        "hello",
        env=env_for(fake_llm, tmp_path, MOA_CONFIG=str(config)),
        cwd=tmp_path,
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "done" and record["answer"] == "[agg/x] answer to: hello"
    assert sorted(p["model"] for p in record["proposals"]) == ["p/a", "p/b"]  # in the order they finished
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0


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
    assert "FAIL provider together: models not found:" in out and "agg/x" in out
    assert "ok   database" in out


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
