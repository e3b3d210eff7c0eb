"""`moa-bot run`'s lifecycle with an in-memory adapter: health, metrics, shutdown, recovery, jobs, logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_settings
from bot.jobs import build_scheduler
from bot.logs import JsonFormatter, RedactSecrets
from bot.metrics import Metrics
from bot.service import Service
from bot.wiring import open_core
from moa.conversation import ConversationKey, Phase, Question
from storage import Store
from tests.fakes.llm import FakeLLM
from tests.test_answering import RecordingSink
from tests.test_cli import moa_bot


class MemoryAdapter:
    """Implements adapters.base.Adapter in memory; sinks are RecordingSinks keyed by placeholder id."""

    name = "memory"

    def __init__(self) -> None:
        self.up = False
        self.starts = 0
        self.sinks: dict[str, RecordingSink] = {}
        self.fail_starts = 0

    async def start(self) -> None:
        self.starts += 1
        if self.fail_starts:
            self.fail_starts -= 1
            raise ConnectionError("cannot reach the platform")
        self.up = True

    async def aclose(self) -> None:
        self.up = False

    @property
    def connected(self) -> bool:
        return self.up

    def mount(self, app: web.Application) -> None:
        return None

    async def reopen(self, placeholder: dict[str, str]) -> RecordingSink | None:
        return self.sinks.setdefault(placeholder["id"], RecordingSink())


@pytest.fixture
def settings(fake_llm: FakeLLM, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a", "p/b"]\naggregator = "agg/x"\n')
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    return load_settings({
        "TOGETHER_API_KEY": "together-secret-key",
        "TOGETHER_BASE_URL": fake_llm.base_url,
        "MOA_CONFIG": str(config),
        "MOA_DB": str(tmp_path / "moa.sqlite3"),
        "MOA_HTTP_PORT": "0",
        "MOA_SHUTDOWN_GRACE_S": "1",
    })


class Running:
    def __init__(self, service: Service, task: asyncio.Task[int]) -> None:
        self.service, self.task = service, task

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url + path, timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status, await response.text()


async def start_service(core, adapter: MemoryAdapter, metrics: Metrics) -> Running:  # type: ignore[no-untyped-def]
    service = Service(core.settings, core, [adapter], metrics)
    task = asyncio.create_task(service.run())
    while service.port is None or not adapter.up:
        await asyncio.sleep(0.01)
        assert not task.done(), task
    return Running(service, task)


async def test_no_adapter_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = await moa_bot("run", env={"MOA_DB": str(tmp_path / "db.sqlite3")}, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "SLACK_BOT_TOKEN" in err and "DISCORD_BOT_TOKEN" in err


async def test_health_follows_the_adapter_and_metrics_count_answers(settings) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    adapter = MemoryAdapter()
    async with open_core(settings, on_event=metrics.on_event, on_finished=metrics.on_finished) as core:
        running = await start_service(core, adapter, metrics)
        status, body = await running.get("/healthz")
        assert status == 200
        assert json.loads(body)["components"] == {"database": "ok", "memory": "connected"}
        adapter.up = False
        status, body = await running.get("/healthz")
        assert status == 503 and json.loads(body)["components"]["memory"] == "disconnected"
        adapter.up = True

        sink = RecordingSink()
        await core.answerer.answer(Question(ConversationKey("memory", "W", "C", "1"), "U", "hi"), sink)
        assert sink.final.phase is Phase.DONE
        metrics.api_call("slack", "chat.update", "ratelimited")
        status, text = await running.get("/metrics")
        assert status == 200
        assert 'moa_runs_total{platform="memory",preset="default",status="done"} 1.0' in text
        assert 'moa_provider_calls_total{model="p/a",outcome="ok"} 1.0' in text
        assert 'moa_tokens_total{kind="completion",model="agg/x"}' in text
        assert 'moa_platform_rate_limited_total{platform="slack"} 1.0' in text
        assert "moa_run_duration_seconds_bucket" in text and "moa_answers_in_flight 0.0" in text
        running.service.stop()
        assert await running.task == 0
        assert not adapter.up


async def test_a_failing_adapter_is_restarted_with_backoff(settings) -> None:  # type: ignore[no-untyped-def]
    adapter = MemoryAdapter()
    adapter.fail_starts = 1
    metrics = Metrics()
    async with open_core(settings) as core:
        running = await start_service(core, adapter, metrics)
        assert adapter.starts == 2
        running.service.stop()
        assert await running.task == 0


async def test_shutdown_lets_answers_finish_then_interrupts_the_rest(settings, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    adapter = MemoryAdapter()
    async with open_core(settings) as core:
        running = await start_service(core, adapter, Metrics())
        for model in ("p/a", "p/b"):
            fake_llm.script(model, latency=0.3)
        quick, slow = RecordingSink(), RecordingSink()
        tasks = [asyncio.create_task(core.answerer.answer(
            Question(ConversationKey("memory", "W", "C", "q"), "U", "quick"), quick))]
        while len(fake_llm.requests) < 2:
            await asyncio.sleep(0.01)
        for model in ("p/a", "p/b"):
            fake_llm.script(model, latency=30)
        tasks.append(asyncio.create_task(core.answerer.answer(
            Question(ConversationKey("memory", "W", "C", "s"), "U2", "slow"), slow)))
        while len(fake_llm.requests) < 4:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        running.service.stop()
        assert await running.task == 0
        assert time.monotonic() - started < 5
        await asyncio.gather(*tasks, return_exceptions=True)
        assert quick.final.phase is Phase.DONE
        assert slow.final.phase is Phase.INTERRUPTED and "ask again" in slow.final.text
        assert await core.store.unfinished_runs() == []


async def test_recovery_resumes_young_runs_and_interrupts_old_ones(settings) -> None:  # type: ignore[no-untyped-def]
    async with Store(settings.db_path) as store:
        key = ConversationKey("memory", "W", "C", "t")
        young = await store.create_run(key, "U", "young question", "default", "e1")
        await store.set_placeholder(young, {"id": "young"})
        old = await store.create_run(key, "U", "old question", "default", "e2")
        await store.set_placeholder(old, {"id": "old"})
        await store.db.execute("UPDATE runs SET created_at = created_at - 3600 WHERE id = ?", (old,))
        orphan = await store.create_run(key, "U", "no placeholder", "default", "e3")
        cli = await store.create_run(ConversationKey("console", "local", "cli", "x"), "U", "cli", "default", "e4")
        await store.db.commit()
    adapter = MemoryAdapter()
    async with open_core(settings) as core:
        running = await start_service(core, adapter, Metrics())
        for _ in range(200):
            if {"young", "old"} <= set(adapter.sinks) and adapter.sinks["young"].views and \
                    adapter.sinks["young"].views[-1].final:
                break
            await asyncio.sleep(0.02)
        assert adapter.sinks["young"].final.phase is Phase.DONE
        assert adapter.sinks["young"].final.text == "[agg/x] answer to: young question"
        assert adapter.sinks["old"].final.phase is Phase.INTERRUPTED
        # the final view is shown a moment before the run record is closed; stopping waits for that
        running.service.stop()
        assert await running.task == 0
        statuses = {rid: (await core.store.get_run(rid))["status"] for rid in (young, old, orphan, cli)}
        assert statuses == {young: "done", old: "interrupted", orphan: "interrupted", cli: "pending"}


async def test_jobs_survive_a_failing_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def sweep() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("sweep broke")

    async with Store(tmp_path / "db.sqlite3") as store:
        scheduler = build_scheduler(store, retention_days=90, sweep=sweep, sweep_every_s=0.1)
        scheduler.start()
        with caplog.at_level(logging.INFO, logger="bot.jobs"):
            for _ in range(100):
                if calls >= 2:
                    break
                await asyncio.sleep(0.05)
        scheduler.shutdown(wait=False)
    assert calls >= 2
    assert "job recovery-sweep failed" in caplog.text and "job recovery-sweep done" in caplog.text


def test_secrets_never_reach_log_lines() -> None:
    record = logging.makeLogRecord({
        "msg": "calling with token %s", "args": ("xoxb-secret-token-123",), "levelname": "ERROR", "name": "t",
    })
    try:
        raise RuntimeError("auth failed for xoxb-secret-token-123")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactSecrets(["xoxb-secret-token-123"]).filter(record)
    line = JsonFormatter().format(record)
    assert "xoxb-secret-token-123" not in line and "***" in line
    assert json.loads(line)["level"] == "ERROR"


async def test_json_log_has_one_line_per_answer(fake_llm: FakeLLM, tmp_path: Path) -> None:
    for model in ("p/a", "agg/x"):
        fake_llm.script(model)
    config = tmp_path / "moa.toml"
    config.write_text('[presets.tiny]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    code, _, err = await moa_bot(
        "ask", "--preset", "tiny", "hello",
        env={"TOGETHER_API_KEY": "together-secret-key-42", "TOGETHER_BASE_URL": fake_llm.base_url,
             "MOA_CONFIG": str(config), "MOA_DB": str(tmp_path / "db.sqlite3"), "MOA_LOG_FORMAT": "json",
             "MOA_LOG_LEVEL": "INFO"},  # `ask` logs warnings only unless asked for more
        cwd=tmp_path,
    )
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    answers = [line for line in lines if line["logger"] == "moa.answer"]
    assert len(answers) == 1
    assert {"run_id", "platform", "preset", "status", "seconds", "tokens"} <= set(answers[0])
    assert answers[0]["status"] == "done" and answers[0]["platform"] == "console"
    assert "together-secret-key-42" not in err
