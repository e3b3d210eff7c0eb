"""Benchmark 1: orchestration overhead, one answer at a time.

overhead = end-to-end time of `Orchestrator.run` (call to `AnswerDone`) minus the critical path the fake's
scripts allow (slowest proposer of each proposer layer + aggregator latency + its stream). The naive MoA of
`bench/naive.py` runs the same scripts as a floor: what the HTTP client, the fake's timers and localhost cost
anyway.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import together

from bench.common import FakeLLMProcess, ModelTiming, critical_path, registry_for, summary, tokens_in, words
from bench.naive import NaiveMoA
from moa.events import AnswerDone, RunFailed
from moa.orchestrator import Orchestrator
from moa.presets import BUILTIN_PRESETS, Preset

PROPOSER_BASE_S = 0.25  # proposer i answers after PROPOSER_BASE_S + i * PROPOSER_STEP_S
PROPOSER_STEP_S = 0.04
PROPOSER_TOKENS = 250  # words in each draft: the aggregator's prompt is realistic in size
AGG_LATENCY_S = 0.15
AGG_TOKENS = 80
AGG_TOKENS_PER_S = 100.0


async def script(llm: FakeLLMProcess, proposers: int) -> tuple[list[str], str, dict[str, ModelTiming]]:
    models = [f"bench/p{i}" for i in range(proposers)]
    timings: dict[str, ModelTiming] = {}
    for i, model in enumerate(models):
        latency = PROPOSER_BASE_S + PROPOSER_STEP_S * i
        await llm.script(model, reply=words(PROPOSER_TOKENS, seed=i), latency=latency)
        timings[model] = ModelTiming(latency)
    aggregator = "bench/agg"
    reply = words(AGG_TOKENS, seed=99)
    await llm.script(aggregator, reply=reply, latency=AGG_LATENCY_S, tokens_per_s=AGG_TOKENS_PER_S)
    timings[aggregator] = ModelTiming(AGG_LATENCY_S, tokens_in(reply, 1024), AGG_TOKENS_PER_S)
    return models, aggregator, timings


async def moa_once(orchestrator: Orchestrator, preset: Preset, question: str) -> float:
    started = time.monotonic()
    async for event in orchestrator.run(preset, [{"role": "user", "content": question}]):
        if isinstance(event, RunFailed):
            raise RuntimeError(event.message)
        if isinstance(event, AnswerDone):
            if event.fallback:
                raise RuntimeError(f"aggregator failed: {event.aggregator_error}")
            return time.monotonic() - started
    raise RuntimeError("no AnswerDone")


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    runs = 3 if quick else 10
    configs = [(2, 4), (3, 8)] if quick else [(2, 4), (2, 8), (3, 4), (3, 8)]
    registry = registry_for(llm.base_url)
    orchestrator = Orchestrator(registry)
    naive_client = together.AsyncTogether(api_key="bench-key", base_url=llm.base_url, max_retries=0)
    naive = NaiveMoA(naive_client)
    rows = []
    cold: float | None = None  # the very first answer of the process: the SDK's lazy imports and setup
    try:
        for layers, n in configs:
            models, aggregator, timings = await script(llm, n)
            preset = replace(
                BUILTIN_PRESETS["default"],
                name="bench",
                proposers=tuple(models),
                aggregator=aggregator,
                layers=layers,
            )
            ideal = critical_path(preset, timings)
            for i in range(1):  # warm the connection pools and code paths
                elapsed = await moa_once(orchestrator, preset, f"warm {i}")
                cold = cold if cold is not None else elapsed - ideal
                await naive.answer(f"warm {i}", models, aggregator, layers=layers)
            moa_times, naive_times = [], []
            for i in range(runs):
                moa_times.append(
                    await moa_once(orchestrator, preset, f"[run {i}] What is a write-ahead log?")
                )
                result = await naive.answer(
                    f"[run {i}] What is a write-ahead log?", models, aggregator, layers=layers
                )
                naive_times.append(result.elapsed_s)
            overhead = [t - ideal for t in moa_times]
            naive_overhead = [t - ideal for t in naive_times]
            # run i of moa-bot against run i of the naive MoA, back to back: what moa-bot's own code adds
            paired = [m - n for m, n in zip(moa_times, naive_times, strict=True)]
            s = summary(overhead, scale=1000)
            rows.append(
                {
                    "layers": layers,
                    "proposers": n,
                    "critical_path_ms": round(ideal * 1000, 1),
                    "overhead_ms": s,
                    "overhead_pct_p95": round(s["p95"] / (ideal * 1000) * 100, 2),
                    "naive_overhead_ms": summary(naive_overhead, scale=1000),
                    "moa_minus_naive_ms": summary(paired, scale=1000),
                    "samples_ms": {
                        "moa": [round(x * 1000, 1) for x in overhead],
                        "naive": [round(x * 1000, 1) for x in naive_overhead],
                    },
                    "target": "p95 < 20 ms and < 2% of the critical path",
                    "met": bool(s["p95"] < 20 and s["p95"] < 0.02 * ideal * 1000),
                }
            )
            await llm.reset()
    finally:
        await naive_client.close()
        await registry.aclose()
    return {
        "benchmark": "overhead",
        "runs_per_config": runs,
        "script": {
            "proposer_latency_s": f"{PROPOSER_BASE_S} + {PROPOSER_STEP_S} * i",
            "proposer_reply_tokens": PROPOSER_TOKENS,
            "aggregator_latency_s": AGG_LATENCY_S,
            "aggregator_tokens": AGG_TOKENS,
            "aggregator_tokens_per_s": AGG_TOKENS_PER_S,
        },
        "cold_first_answer_overhead_ms": round((cold or 0.0) * 1000, 1),
        "rows": rows,
    }
