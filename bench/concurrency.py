"""Benchmark 5: many answers in flight in one process: throughput, overhead, memory, SQLite write latency.

Each level runs in a fresh worker process (`python -m bench.concurrency WORKER_JSON`), so its RSS is its own:
an `Answerer` with a real `storage.Store` in a temporary folder, the concurrency gate raised to 500, the sink a
no-op that only notes times. The fake LLM runs in another process (see `bench.common.FakeLLMProcess`), so its
CPU is not counted here.

Load model: a closed loop of N simulated users. Each starts at a random moment within the first answer's
duration, then asks again in its own thread as soon as its previous answer is final, so N answers are in
flight at every moment, in every phase (drafting, streaming, storing). Answers that start inside the measuring
window count. overhead = final view shown - `answer()` called - the critical path of the scripts.
"""

from __future__ import annotations

import asyncio
import gc
import os
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import sdk_cost
from bench.common import (
    ROOT,
    FakeLLMProcess,
    ModelTiming,
    TimingSink,
    bench_answerer,
    cpu_seconds,
    critical_path,
    percentile,
    registry_for,
    rss_kb,
    summary,
    tokens_in,
    words,
)
from moa.conversation import ConversationKey, Question
from moa.presets import BUILTIN_PRESETS, Preset
from moa.providers.registry import ProviderRegistry
from moa.events import Usage
from moa.providers.base import Completion, Delta
from storage import Store
from tests.fakes.llm import tokenize

PROPOSERS = 4
PROPOSER_LATENCY_S = (1.0, 1.1, 1.2, 1.3)
PROPOSER_TOKENS = 250
AGG_LATENCY_S = 0.3
AGG_TOKENS = 120
AGG_TOKENS_PER_S = 60.0
WRITES = ("create_run", "set_placeholder", "mark_running", "add_proposals", "append_turn", "finish_run")


def bench_preset() -> Preset:
    return replace(
        BUILTIN_PRESETS["default"],
        name="bench",
        proposers=tuple(f"bench/c{i}" for i in range(PROPOSERS)),
        aggregator="bench/cagg",
    )


def timings(preset: Preset) -> dict[str, ModelTiming]:
    out = {m: ModelTiming(lat) for m, lat in zip(preset.proposers, PROPOSER_LATENCY_S, strict=True)}
    out[preset.aggregator] = ModelTiming(
        AGG_LATENCY_S, tokens_in(words(AGG_TOKENS, 5), preset.aggregator_max_tokens), AGG_TOKENS_PER_S
    )
    return out


async def script(llm: FakeLLMProcess, preset: Preset) -> None:
    for i, (model, latency) in enumerate(zip(preset.proposers, PROPOSER_LATENCY_S, strict=True)):
        await llm.script(model, reply=words(PROPOSER_TOKENS, seed=i), latency=latency)
    await llm.script(
        preset.aggregator, reply=words(AGG_TOKENS, 5), latency=AGG_LATENCY_S, tokens_per_s=AGG_TOKENS_PER_S
    )


class TimedStore(Store):
    """The real store, noting how long each write takes as its caller sees it (queueing included)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.write_s: dict[str, list[float]] = {name: [] for name in WRITES}
        self.recording = False

    async def _timed(self, name: str, call: Any) -> Any:
        started = time.perf_counter()
        result = await call
        if self.recording:
            self.write_s[name].append(time.perf_counter() - started)
        return result

    async def create_run(self, *args: Any, **kwargs: Any) -> str:
        return await self._timed("create_run", super().create_run(*args, **kwargs))  # type: ignore[no-any-return]

    async def set_placeholder(self, *args: Any, **kwargs: Any) -> None:
        await self._timed("set_placeholder", super().set_placeholder(*args, **kwargs))

    async def mark_running(self, *args: Any, **kwargs: Any) -> None:
        await self._timed("mark_running", super().mark_running(*args, **kwargs))

    async def add_proposals(self, *args: Any, **kwargs: Any) -> None:
        await self._timed("add_proposals", super().add_proposals(*args, **kwargs))

    async def append_turn(self, *args: Any, **kwargs: Any) -> None:
        await self._timed("append_turn", super().append_turn(*args, **kwargs))

    async def finish_run(self, *args: Any, **kwargs: Any) -> None:
        await self._timed("finish_run", super().finish_run(*args, **kwargs))


class InProcessProvider:
    """No HTTP at all: sleeps the scripted latency and yields the scripted tokens at the scripted pace.

    Used for one decomposition row only ("the core alone"): what the orchestrator, the answerer and SQLite
    cost per answer when the together SDK, httpx and the sockets are taken out.
    """

    def __init__(self, name: str, preset: Preset) -> None:
        self.name = name
        self._timings = timings(preset)
        self._replies = {m: words(PROPOSER_TOKENS, seed=i) for i, m in enumerate(preset.proposers)}
        self._replies[preset.aggregator] = words(AGG_TOKENS, 5)

    async def complete(self, model: str, messages: Any, **_: Any) -> Completion:
        await asyncio.sleep(self._timings[model].latency)
        return Completion(self._replies[model], Usage(100, PROPOSER_TOKENS))

    async def stream(self, model: str, messages: Any, **_: Any) -> AsyncIterator[Delta]:
        timing = self._timings[model]
        await asyncio.sleep(timing.latency)
        pieces = tokenize(self._replies[model])
        first = time.monotonic()
        for i, piece in enumerate(pieces):
            wait = first + i / (timing.tokens_per_s or 1e9) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            last = i == len(pieces) - 1
            yield Delta(piece, Usage(100, len(pieces)) if last else None)

    async def list_models(self, timeout_s: float) -> list[str]:
        return list(self._timings)

    async def aclose(self) -> None:
        return None


def in_process_registry(preset: Preset) -> ProviderRegistry:
    def factory(config: Any, api_key: str | None) -> Any:
        return InProcessProvider(config.name, preset)

    return ProviderRegistry({}, together_api_key=None, together_base_url=None, factory=factory)


async def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One level, in this (fresh) process. Answers still running `drain_s` after the window are not waited for:
    they count as unfinished, with the time they had taken so far (so overhead figures are then lower bounds).
    """
    n: int = cfg["n"]
    preset = bench_preset()
    ideal = critical_path(preset, timings(preset))
    window_s: float = cfg["window_s"]
    if cfg.get("provider") == "in-process":
        registry = in_process_registry(preset)
    else:
        registry = registry_for(cfg["base_url"])
    rng = random.Random(n)
    store = TimedStore(Path(cfg["folder"]) / "moa.sqlite3")
    await store.start()
    answerer = bench_answerer(registry, store, preset, gate=500)
    failed: list[str] = []  # answers that ended without the synthesized answer (timeouts under load)
    running: dict[int, float] = {}  # answers in flight: id -> started

    async def ask(user: int, turn: int) -> tuple[float, float]:
        key = ConversationKey("slack", "T-bench", f"C{user % 50}", f"{user}.0")
        sink = TimingSink()
        started = time.monotonic()
        running[id(sink)] = started
        try:
            await answerer.answer(Question(key, f"U{user}", f"[u{user} t{turn}] What is a WAL?"), sink)
        finally:
            del running[id(sink)]
        if sink.final is None or sink.final.status != "Done" or sink.final_at is None:
            failed.append(sink.final.status if sink.final else "no final view")
            return started, time.monotonic() - started
        return started, sink.final_at - started

    for i in range(cfg.get("warm", 2)):  # warm the SDK, the pool and SQLite
        await ask(10_000 + i, 0)
    gc.collect()
    base_rss = rss_kb()
    peak_rss = base_rss
    results: list[tuple[float, float]] = []
    begin = time.monotonic()
    measure_from = begin + ideal  # after every user's first start
    stop_at = measure_from + window_s
    store.recording = True

    async def user(u: int) -> None:
        await asyncio.sleep(rng.uniform(0, ideal))
        turn = 0
        while time.monotonic() < stop_at:
            results.append(await ask(u, turn))
            turn += 1

    lag: list[float] = []

    async def sample() -> None:
        # peak RSS, and how late a 50 ms timer fires: the event loop's own queueing delay
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, rss_kb())
            due = time.monotonic() + 0.05
            await asyncio.sleep(0.05)
            if measure_from <= due < stop_at:
                lag.append(time.monotonic() - due)

    cpu0, sampler = cpu_seconds(), asyncio.create_task(sample())
    users = [asyncio.create_task(user(u)) for u in range(n)]
    await asyncio.wait(users, timeout=stop_at + cfg["drain_s"] - time.monotonic())
    deadline = time.monotonic()
    unfinished = [(started, deadline - started) for started in running.values()]
    sampler.cancel()
    wall = deadline - begin
    cpu = cpu_seconds() - cpu0
    store.recording = False
    measured = [(s, e) for s, e in results + unfinished if measure_from <= s < stop_at]
    finished_in_window = [s + e for s, e in results if measure_from <= s + e < stop_at]
    overhead = [e - ideal for _, e in measured]
    writes = [t for name in WRITES for t in store.write_s[name]]
    out = {
        "n": n,
        "provider": cfg.get("provider", "fake LLM over HTTP"),
        "critical_path_ms": round(ideal * 1000, 1),
        "answers_measured": len(measured),
        "answers_unfinished": sum(1 for s, _ in unfinished if measure_from <= s < stop_at),
        "answers_not_done": len(failed),
        "throughput_per_s": round(len(finished_in_window) / window_s, 2),
        "overhead_ms": summary(overhead, scale=1000, digits=1),
        "overhead_is_lower_bound": bool(unfinished),
        # CPU time over answers finished; meaningless when the loop could not finish them (None then)
        "cpu_ms_per_answer": None if unfinished else round(cpu / max(1, len(results)) * 1000, 1),
        "cpu_utilisation": round(cpu / wall, 2),
        "loop_lag_ms": summary(lag, scale=1000, digits=1),
        "base_rss_mb": round(base_rss / 1024, 1),
        "peak_rss_mb": round(peak_rss / 1024, 1),
        "rss_kb_per_in_flight": round((peak_rss - base_rss) / n, 1),
        "sqlite_write_ms": summary(writes, scale=1000, digits=2),
        "sqlite_write_p99_ms_by_call": {
            name: round(percentile(store.write_s[name], 99) * 1000, 2)
            for name in WRITES
            if store.write_s[name]
        },
    }
    if unfinished:
        return out  # the loop is saturated: the caller exits without waiting for the rest
    await store.aclose()
    await registry.aclose()
    return out


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    preset = bench_preset()
    await script(llm, preset)
    http = "fake LLM over HTTP"
    levels: list[tuple[int, str]] = [(10, http), (100, http)]
    if not quick:
        levels = [(1, http), *levels, (500, http), (500, "in-process")]
    window_s = 3.0 if quick else 8.0
    rows = []
    for n, provider in levels:
        with tempfile.TemporaryDirectory(prefix="moa-bench-") as folder:
            cfg = {
                "n": n,
                "base_url": llm.base_url,
                "window_s": window_s,
                "provider": provider,
                "warm": 1 if quick else 2,
                "drain_s": 10.0 if quick else 20.0,
                "folder": folder,
            }
            fake_cpu0, t0 = cpu_seconds(llm.pid), time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.concurrency",
                json.dumps(cfg),
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
            )
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"concurrency worker n={n} failed (exit {proc.returncode})")
            row = json.loads(out.decode().strip().splitlines()[-1])
            elapsed = time.monotonic() - t0
            row["fake_llm_cpu_utilisation"] = round((cpu_seconds(llm.pid) - fake_cpu0) / elapsed, 2)
            rows.append(row)
        await llm.reset()
    cost = None if quick else await sdk_cost.run(llm, quick=False)
    return {
        "benchmark": "concurrency",
        "sdk_cost": cost,
        "window_s": window_s,
        "script": {
            "proposers": f"{PROPOSERS}, latencies {PROPOSER_LATENCY_S} s, {PROPOSER_TOKENS} tokens each",
            "aggregator": f"{AGG_LATENCY_S} s + {AGG_TOKENS} tokens at {AGG_TOKENS_PER_S:g}/s, one SSE chunk per token",
        },
        "rows": rows,
        "targets": "overhead p99 < 50 ms at 500; < 200 KB RSS per in-flight answer beyond the base",
    }


def _worker_main() -> None:
    async def main() -> None:
        result = await worker(json.loads(sys.argv[1]))
        print(json.dumps(result), flush=True)
        if result["answers_unfinished"] or result["overhead_is_lower_bound"]:
            os._exit(0)  # answers still running on a saturated loop: do not wait for them

    asyncio.run(main())


if __name__ == "__main__":
    _worker_main()
