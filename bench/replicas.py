"""Benchmark 9: storage backends and replicas: real `moa-bot run` processes under load, and a takeover.

Every moa-bot here is a real `moa-bot run` process (as `tests/test_run_process.py` starts them), with the
OpenAI-compatible API as its adapter, so that the load is not paced by a chat platform's rate limits. The fake LLM
runs in its own process, and the clients in this one; PostgreSQL is a throwaway server of Debian's binaries (as the
tests start it: fsync off) or `MOA_TEST_POSTGRES_URL`.

- Load: 10, then 100 clients, each streaming a new request as soon as its previous answer ended (10 or 100 in
  flight all the time), spread round-robin over the replicas as a load balancer would; the answers started in the measuring
  window are timed, and the ones that ended in it counted. Overhead = end-to-end time minus the critical path the
  script allows. CPU per answer: the replicas' user + system time over the window (from /proc), and the
  PostgreSQL server's (its postmaster and backends) when it is the throwaway one. Each replica's concurrency gate
  is at 100 and the per-user rate is on but high, so every answer is counted against it in the database. Each
  answer running holds a connection for its conversation's turn, so a replica opens up to 110: the throwaway
  server takes 300 (PostgreSQL's default of 100 refuses the second replica's).
  Cases: SQLite with one replica, PostgreSQL with one, PostgreSQL with two.
- Takeover: two replicas on PostgreSQL in Socket Mode against the fake Slack (each holds one connection); a slow
  answer on the first, SIGKILL while it streams, and the time until the second writes into the same placeholder
  and until the answer there is complete. MOA_HEARTBEAT_S=1, MOA_TAKEOVER_AFTER_S=5: the survivor takes over once
  the dead replica's last heartbeat is 5 s old, at its next look (every heartbeat).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.api import KEY, api_once, closed_loop
from bench.common import FakeLLMProcess, ModelTiming, cpu_seconds, critical_path, summary, words
from moa.presets import load_catalog
from tests.fakes import slack_payloads as sp
from tests.fakes.slack import FakeSlack
from tests.postgres_server import PostgresServer, Throwaway, newest_binaries
from tests.test_run_process import REPO, BotProcess, bot_env, free_port, thread_texts

CLIENTS = 100
LEVELS = (10, CLIENTS)  # answers in flight: 10, where the CPU is not yet the queue, and 100
PROPOSERS = 4
PROPOSER_LATENCY_S = 0.1
PROPOSER_TOKENS = 60
AGG_LATENCY_S = 0.05
AGG_TOKENS = 60
AGG_TOKENS_PER_S = 100.0
HEARTBEAT_S, TAKEOVER_AFTER_S = 1.0, 5.0
LONG_ANSWER = " ".join(f"word{i}" for i in range(60))


def write_config(folder: Path) -> Path:
    proposers = ", ".join(f'"bench/api{i}"' for i in range(PROPOSERS))
    path = folder / "bench.toml"
    path.write_text(f'[presets.bench]\nproposers = [{proposers}]\naggregator = "bench/apiagg"\nlayers = 2\n'
                    "retries = 0\n")
    return path


async def script(llm: FakeLLMProcess) -> None:
    for i in range(PROPOSERS):
        await llm.script(f"bench/api{i}", reply=words(PROPOSER_TOKENS, seed=i), latency=PROPOSER_LATENCY_S)
    await llm.script("bench/apiagg", reply=words(AGG_TOKENS, seed=99), latency=AGG_LATENCY_S,
                     tokens_per_s=AGG_TOKENS_PER_S)


def path_s(config: Path) -> float:
    preset = load_catalog(config).get("bench")
    timings = {f"bench/api{i}": ModelTiming(PROPOSER_LATENCY_S) for i in range(PROPOSERS)}
    timings["bench/apiagg"] = ModelTiming(AGG_LATENCY_S, AGG_TOKENS, AGG_TOKENS_PER_S)
    return critical_path(preset, timings)


def api_env(llm: FakeLLMProcess, config: Path, database: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "TOGETHER_API_KEY": "bench-together-key",
        "TOGETHER_BASE_URL": llm.base_url,
        "MOA_CONFIG": str(config),
        "MOA_PRESET": "bench",
        "MOA_DB": database,
        "MOA_LOG_FORMAT": "json",
        "MOA_API_KEYS": KEY,
        "MOA_MAX_CONCURRENT": str(CLIENTS),
        "MOA_USER_RATE": "1000000/hour",
        "MOA_HEARTBEAT_S": str(HEARTBEAT_S),
        "MOA_TAKEOVER_AFTER_S": str(TAKEOVER_AFTER_S),
    }


@asynccontextmanager
async def processes(env: dict[str, str], folder: Path, count: int, **extra: str) -> AsyncIterator[list[BotProcess]]:
    """`count` replicas, healthy; killed on the way out."""
    bots: list[BotProcess] = []
    try:
        for _ in range(count):
            port = free_port()
            bot = BotProcess({**env, "MOA_HTTP_PORT": str(port), **extra}, folder, port)
            bots.append(bot)
            await bot.start()
        yield bots
    finally:
        for bot in bots:
            await bot.kill()


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings, of the processes alive at both (a backend may come or go)."""
    return sum(after[pid] - before[pid] for pid in before if pid in after and after[pid] == after[pid])


def postgres_pids(data: Path | None) -> list[int]:
    """The throwaway server's postmaster and its children (the backends serving the replicas)."""
    if data is None:
        return []
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return [postmaster, *children]


async def load(urls: Sequence[str], replica_pids: Sequence[int], pg_data: Path | None, *, clients: int,
               ramp_s: float, window_s: float) -> dict[str, Any]:
    turn = itertools.count()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        task = asyncio.ensure_future(closed_loop(
            lambda question: api_once(session, urls[next(turn) % len(urls)], question),
            clients=clients, ramp_s=ramp_s, window_s=window_s,
        ))
        await asyncio.sleep(ramp_s)
        db_pids = postgres_pids(pg_data)
        before = cpu_of([*replica_pids, *db_pids])
        await asyncio.sleep(window_s)
        after = cpu_of([*replica_pids, *db_pids])
        cpu = cpu_used({p: before[p] for p in replica_pids}, after)
        db_cpu = cpu_used({p: before[p] for p in db_pids}, after)
        result = await task
    answers = max(1, result["ended_in_window"])
    result["replica_cpu_ms_per_answer"] = round(cpu * 1000 / answers, 1)
    result["database_cpu_ms_per_answer"] = round(db_cpu * 1000 / answers, 1) if db_pids else None
    return result


async def load_case(llm: FakeLLMProcess, folder: Path, config: Path, database: str, replicas: int,
                    pg_data: Path | None, *, ramp_s: float, window_s: float) -> list[dict[str, Any]]:
    """Each level of `LEVELS` in turn, on the same processes."""
    env = api_env(llm, config, database)
    path_ms = path_s(config) * 1000
    results = []
    async with processes(env, folder, replicas) as bots:
        urls = [f"http://127.0.0.1:{bot.port}/v1/chat/completions" for bot in bots]
        async with aiohttp.ClientSession() as session:
            for url in urls:  # warm each replica's pools and code paths
                await api_once(session, url, "warm-up")
        pids = [bot.process.pid for bot in bots if bot.process is not None]
        for clients in LEVELS:
            result = await load(urls, pids, pg_data, clients=clients, ramp_s=ramp_s, window_s=window_s)
            await llm.reset()
            answer = result["answer_ms"]
            result["critical_path_ms"] = round(path_ms, 1)
            result["overhead_ms"] = ({q: round(answer[q] - path_ms, 1) for q in ("p50", "p95", "p99")}
                                     if answer["n"] else {})
            results.append(result)
    return results


async def takeover(llm: FakeLLMProcess, folder: Path, database: str, trials: int) -> dict[str, Any]:
    await llm.script("p/a", reply="draft a")
    await llm.script("p/b", reply="draft b")
    first_write: list[float] = []
    complete: list[float] = []
    async with FakeSlack() as slack, AsyncExitStack() as stack:
        env = bot_env(llm, slack, folder, 0, MOA_DB=database, MOA_HEARTBEAT_S=str(HEARTBEAT_S),  # type: ignore[arg-type]
                      MOA_TAKEOVER_AFTER_S=str(TAKEOVER_AFTER_S))

        async def start() -> tuple[BotProcess, int]:
            seen = {c.id for c in slack.connections}
            bots = await stack.enter_async_context(processes(env, folder, 1))
            [new] = [c.id for c in slack.live_connections if c.id not in seen]
            return bots[0], new

        answering, survivor = await start(), await start()
        for trial in range(trials):
            await llm.script("agg/x", reply=LONG_ANSWER, tokens_per_s=6)  # 10 s of streaming
            event = sp.event_callback(sp.app_mention(f"trial {trial}: what survives a crash?"))
            await asyncio.wait_for(slack.push_event(event, connection=answering[1]), 10)
            ts = event["event"]["ts"]
            while not any("word3" in t for t in thread_texts(slack, ts)):
                await asyncio.sleep(0.02)
            await llm.script("agg/x", reply=LONG_ANSWER, tokens_per_s=200)  # the survivor's is quick
            shown = thread_texts(slack, ts)
            await answering[0].kill()
            killed = time.monotonic()
            while thread_texts(slack, ts) == shown:
                await asyncio.sleep(0.02)
            first_write.append(time.monotonic() - killed)
            while not any(t.strip() == LONG_ANSWER for t in thread_texts(slack, ts)):
                await asyncio.sleep(0.02)
            complete.append(time.monotonic() - killed)
            answering, survivor = survivor, await start()  # the next trial kills the survivor of this one
        for bot in (answering[0], survivor[0]):
            assert bot.process is not None
            bot.process.send_signal(signal.SIGTERM)
    await llm.reset()
    return {
        "trials": trials,
        "heartbeat_s": HEARTBEAT_S,
        "takeover_after_s": TAKEOVER_AFTER_S,
        "first_write_s": summary(first_write, digits=2),
        "complete_s": summary(complete, digits=2),
    }


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    ramp_s, window_s = (2.0, 4.0) if quick else (3.0, 10.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder)
        await script(llm)
        async with start_postgres() as (server, pg_data):
            cases = [("sqlite", str(folder / "bench.sqlite3"), 1), ("postgresql", None, 1), ("postgresql", None, 2)]
            for backend, database, replicas in cases:
                database = database or await server.new_database()
                results = await load_case(llm, folder, config, database, replicas,
                                          pg_data if backend == "postgresql" else None,
                                          ramp_s=ramp_s, window_s=window_s)
                rows.extend({"backend": backend, "replicas": replicas, **result} for result in results)
                await script(llm)
            took = await takeover(llm, folder, await server.new_database(), 1 if quick else 3)
    return {"benchmark": "replicas", "rows": rows, "takeover": took}


@asynccontextmanager
async def start_postgres() -> AsyncIterator[tuple[PostgresServer, Path | None]]:
    """MOA_TEST_POSTGRES_URL's server, or a throwaway one (then also its data folder, to find its processes)."""
    url = os.environ.get("MOA_TEST_POSTGRES_URL", "").strip()
    if url:
        server = PostgresServer(url)
        try:
            yield server, None
        finally:
            await server.drop_created()
        return
    binaries = newest_binaries()
    if binaries is None:
        raise RuntimeError("benchmark 9 needs PostgreSQL: apt-get install postgresql, or set MOA_TEST_POSTGRES_URL")
    # each replica holds up to MOA_MAX_CONCURRENT + 10 connections (see README, "Several replicas")
    throwaway = Throwaway(binaries, max_connections=300)
    try:
        server = await asyncio.to_thread(throwaway.start)
        yield server, throwaway.data
    finally:
        await asyncio.to_thread(throwaway.stop)
