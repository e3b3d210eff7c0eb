"""`moa-bot run`'s lifecycle with an in-memory adapter: health, metrics, shutdown, recovery, jobs, logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import Settings
from bot.jobs import build_scheduler
from bot.logs import JsonFormatter, RedactSecrets
from bot.metrics import Metrics
from bot.service import Service
from bot.wiring import Core
from moa.conversation import ConversationKey, Phase, Question
from moa.persistence import RunRecord
from storage import Store
from tests.core import core_settings, open_test_core
from tests.fakes.llm import FakeLLM
from tests.test_answering import RecordingSink
from tests.test_cli import moa_bot


class MemoryAdapter:
    """Implements adapters.base.Adapter in memory; sinks are RecordingSinks keyed by placeholder id."""

    name = "memory"

    def __init__(self) -> None:
        self.up = False
        self.starts = 0
        self.start_times: list[float] = []
        self.sinks: dict[str, RecordingSink] = {}
        self.fail_starts = 0

    async def start(self) -> None:
        self.starts += 1
        self.start_times.append(time.monotonic())
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
def settings(fake_llm: FakeLLM, tmp_path: Path) -> Settings:
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    return core_settings(
        fake_llm, tmp_path, TOGETHER_API_KEY="together-secret-key", MOA_HTTP_PORT="0", MOA_SHUTDOWN_GRACE_S="1"
    )


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


async def start_service(core: Core, adapter: MemoryAdapter, metrics: Metrics) -> Running:
    service = Service(core.settings, core, [adapter], metrics)
    task = asyncio.create_task(service.run())
    while service.port is None or not adapter.up:
        await asyncio.sleep(0.01)
        assert not task.done(), task
    return Running(service, task)


@dataclass
class Served:
    core: Core
    adapter: MemoryAdapter
    metrics: Metrics
    running: Running


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    """`moa-bot run` in this process, with one in-memory adapter, metrics wired as the service wires them."""
    metrics = Metrics()
    adapter = MemoryAdapter()
    async with open_test_core(settings, on_event=metrics.on_event, on_finished=metrics.on_finished) as core:
        running = await start_service(core, adapter, metrics)
        try:
            yield Served(core, adapter, metrics, running)
        finally:
            running.service.stop()
            await running.task


async def test_no_adapter_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = await moa_bot("run", env={"MOA_DB": str(tmp_path / "db.sqlite3")}, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "SLACK_BOT_TOKEN" in err and "DISCORD_BOT_TOKEN" in err


# --- health and metrics -----------------------------------------------------------------------------------


async def test_health_is_200_with_every_component_while_the_adapter_is_connected(served: Served) -> None:
    status, body = await served.running.get("/healthz")
    assert status == 200
    assert json.loads(body)["components"] == {"database": "ok", "memory": "connected"}


async def test_health_is_503_naming_the_adapter_while_it_is_disconnected(served: Served) -> None:
    served.adapter.up = False
    status, body = await served.running.get("/healthz")
    assert status == 503 and json.loads(body)["components"]["memory"] == "disconnected"


async def test_metrics_count_answers_provider_calls_and_tokens(served: Served) -> None:
    sink = RecordingSink()
    await served.core.answerer.answer(Question(ConversationKey("memory", "W", "C", "1"), "U", "hi"), sink)
    assert sink.final.phase is Phase.DONE
    status, text = await served.running.get("/metrics")
    assert status == 200
    assert 'moa_runs_total{platform="memory",preset="test",status="done"} 1.0' in text
    assert 'moa_provider_calls_total{model="p/a",outcome="ok"} 1.0' in text
    assert 'moa_tokens_total{kind="completion",model="agg/x"}' in text
    assert "moa_run_duration_seconds_bucket" in text and "moa_answers_in_flight 0.0" in text


async def test_metrics_count_platform_rate_limits(served: Served) -> None:
    served.metrics.api_call("slack", "chat.update", "ratelimited")
    _, text = await served.running.get("/metrics")
    assert 'moa_platform_rate_limited_total{platform="slack"} 1.0' in text


async def test_stop_exits_0_and_closes_the_adapter(served: Served) -> None:
    served.running.service.stop()
    assert await served.running.task == 0
    assert not served.adapter.up


# --- lifecycle ---------------------------------------------------------------------------------------------


async def test_a_failing_adapter_is_restarted_after_a_backoff(settings: Settings) -> None:
    adapter = MemoryAdapter()
    adapter.fail_starts = 1
    async with open_test_core(settings) as core:
        running = await start_service(core, adapter, Metrics())
        assert adapter.starts == 2
        # the first restart waits 1 s, give or take a fifth (jitter)
        assert adapter.start_times[1] - adapter.start_times[0] >= 0.8, adapter.start_times
        running.service.stop()
        assert await running.task == 0


@dataclass
class ShutDown:
    code: int
    seconds: float
    quick: RecordingSink
    slow: RecordingSink
    unfinished: list[RunRecord]


@pytest.fixture
async def shut_down(settings: Settings, fake_llm: FakeLLM) -> ShutDown:
    """A stop (grace 1 s) with one answer about to finish and one whose drafts take 30 s."""
    adapter = MemoryAdapter()
    async with open_test_core(settings) as core:
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
        code = await running.task
        seconds = time.monotonic() - started
        await asyncio.gather(*tasks, return_exceptions=True)
        return ShutDown(code, seconds, quick, slow, await core.store.unfinished_runs())


async def test_shutdown_exits_0_soon_after_the_grace(shut_down: ShutDown) -> None:
    assert shut_down.code == 0
    assert shut_down.seconds < 5


async def test_shutdown_lets_answers_in_flight_finish_within_the_grace(shut_down: ShutDown) -> None:
    assert shut_down.quick.final.phase is Phase.DONE


async def test_shutdown_interrupts_answers_still_running_after_the_grace(shut_down: ShutDown) -> None:
    assert shut_down.slow.final.phase is Phase.INTERRUPTED and "ask again" in shut_down.slow.final.text


async def test_shutdown_leaves_no_run_unfinished_in_the_database(shut_down: ShutDown) -> None:
    assert shut_down.unfinished == []


@dataclass
class Recovered:
    sinks: dict[str, RecordingSink]
    statuses: dict[str, str]  # run status by name: young, old, orphan, cli


@pytest.fixture
async def recovered(settings: Settings) -> Recovered:
    """A start on a database a crash left with four runs in flight: young and old ones with a placeholder, one
    that never got its placeholder, and a terminal `ask`'s."""
    async with Store(settings.db_path) as store:
        key = ConversationKey("memory", "W", "C", "t")
        young = await store.create_run(key, "U", "young question", "test", "e1")
        await store.set_placeholder(young, {"id": "young"})
        old = await store.create_run(key, "U", "old question", "test", "e2")
        await store.set_placeholder(old, {"id": "old"})
        await store.db.execute("UPDATE runs SET created_at = created_at - 3600 WHERE id = ?", (old,))
        orphan = await store.create_run(key, "U", "no placeholder", "test", "e3")
        cli = await store.create_run(ConversationKey("console", "local", "cli", "x"), "U", "cli", "test", "e4")
        await store.db.commit()
    adapter = MemoryAdapter()
    async with open_test_core(settings) as core:
        running = await start_service(core, adapter, Metrics())
        for _ in range(200):
            if {"young", "old"} <= set(adapter.sinks) and adapter.sinks["young"].views and \
                    adapter.sinks["young"].views[-1].final:
                break
            await asyncio.sleep(0.02)
        # the final view is shown a moment before the run record is closed; stopping waits for that
        running.service.stop()
        assert await running.task == 0
        runs = {"young": young, "old": old, "orphan": orphan, "cli": cli}
        statuses = {name: (await core.store.get_run(rid))["status"] for name, rid in runs.items()}
    return Recovered(adapter.sinks, statuses)


async def test_recovery_answers_a_young_run_again_in_its_placeholder(recovered: Recovered) -> None:
    assert recovered.sinks["young"].final.phase is Phase.DONE
    assert recovered.sinks["young"].final.text == "[agg/x] answer to: young question"
    assert recovered.statuses["young"] == "done"


async def test_recovery_marks_an_old_run_interrupted_in_its_placeholder(recovered: Recovered) -> None:
    assert recovered.sinks["old"].final.phase is Phase.INTERRUPTED
    assert recovered.statuses["old"] == "interrupted"


async def test_recovery_marks_a_run_without_placeholder_interrupted(recovered: Recovered) -> None:
    assert recovered.statuses["orphan"] == "interrupted"


async def test_recovery_leaves_a_terminal_asks_run_alone(recovered: Recovered) -> None:
    assert recovered.statuses["cli"] == "pending"


# --- jobs and logs -----------------------------------------------------------------------------------------


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
