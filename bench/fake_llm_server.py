"""`tests.fakes.llm.FakeLLM` as a process of its own, scripted over stdin (see `bench.common.FakeLLMProcess`).

Prints `{"port": N}` once listening, then answers each JSON command line with one JSON line:
- `{"op": "script", "model", "reply", "latency", "tokens_per_s", "sampler"}`: script a model (steady pace).
- `{"op": "reset"}`: forget recorded requests and the in-flight peak.
- `{"op": "stats"}`: requests seen, peak in flight, outcomes, and this process's CPU seconds.
It exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import sys
import time
from collections import Counter
from typing import Any

from tests.fakes.llm import FakeLLM, LatencySampler, last_user_text

_TRIAL = re.compile(r"\[trial (\d+)\]")


def heavy_tail(
    model: str, *, median: float, sigma: float, slow_p: float, slow_factor: float, seed: int
) -> LatencySampler:
    """Log-normal latency around `median`, and one call in 1/`slow_p` `slow_factor` times slower.

    The draw depends only on (seed, model, trial, layer), where the trial is `[trial N]` in the question and
    the layer is told apart by the request's messages, so two MoA implementations asked the same trial meet
    the same latencies.
    """

    def sample(body: dict[str, Any]) -> float:
        match = _TRIAL.search(last_user_text(body))
        trial = match.group(1) if match else "none"
        messages = body.get("messages") or []
        layer = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "system")
        rng = random.Random(f"{seed}:{model}:{trial}:{layer}")
        latency = median * math.exp(sigma * rng.gauss(0.0, 1.0))
        if rng.random() < slow_p:
            latency *= slow_factor
        return latency

    return sample


SAMPLERS = {"heavy_tail": heavy_tail}


async def main() -> None:
    llm = FakeLLM(any_model=True)
    await llm.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"port": llm.port})
    try:
        while line := await reader.readline():
            try:
                command = json.loads(line)
                op = command.pop("op")
                if op == "script":
                    spec = command.get("sampler")
                    sampler = None
                    if spec:
                        kind = spec.pop("kind")
                        sampler = SAMPLERS[kind](command["model"], **spec)
                    llm.script(
                        command["model"],
                        reply=command["reply"],
                        latency=command.get("latency") or 0.0,
                        tokens_per_s=command.get("tokens_per_s"),
                        latency_sampler=sampler,
                        steady_pace=True,
                    )
                    say({"ok": True})
                elif op == "reset":
                    llm.requests.clear()
                    llm.peak_in_flight = llm.in_flight
                    say({"ok": True})
                elif op == "stats":
                    outcomes = Counter(r.outcome for r in llm.requests)
                    say(
                        {
                            "requests": len(llm.requests),
                            "peak_in_flight": llm.peak_in_flight,
                            "in_flight": llm.in_flight,
                            "outcomes": dict(outcomes),
                            "cpu_s": time.process_time(),
                        }
                    )
                else:
                    say({"error": f"unknown op {op!r}"})
            except Exception as exc:  # noqa: BLE001 - report any bad command to the parent, keep serving
                say({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
