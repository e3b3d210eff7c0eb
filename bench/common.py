"""Pieces shared by the benchmarks: statistics, memory and CPU readings, the fake LLM in a subprocess, sinks."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa.answering import Answerer
from moa.conversation import ReplyView
from moa.events import Event
from moa.orchestrator import Orchestrator
from moa.policy import AccessPolicy, ConcurrencyGate, UserRate
from moa.presets import Catalog, Preset
from moa.providers.registry import ProviderRegistry
from moa.persistence import ConversationStore
from tests.fakes.llm import count_tokens

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


# --- statistics -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> dict[str, float | int]:
    """n, mean, p50, p95, p99, max of `values` times `scale` (1000: seconds to milliseconds)."""
    if not values:
        return {"n": 0}
    scaled = [v * scale for v in values]
    return {
        "n": len(scaled),
        "mean": round(sum(scaled) / len(scaled), digits),
        "p50": round(percentile(scaled, 50), digits),
        "p95": round(percentile(scaled, 95), digits),
        "p99": round(percentile(scaled, 99), digits),
        "max": round(max(scaled), digits),
    }


# --- the machine and the process ------------------------------------------------------------------------


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size now, in KiB (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (Linux /proc), or of this process anywhere."""
    if pid == "self":
        return time.process_time()
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return math.nan


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        rev, dirty = "", ""
    return {
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": f"{rev}{'+dirty' if dirty else ''}",
    }


# --- text ---------------------------------------------------------------------------------------------

_WORDS = (
    "the write ahead log records every change before it reaches the table pages so that a crash can be "
    "replayed from the last checkpoint and readers keep seeing a consistent snapshot while writers append"
).split()


def words(n: int, seed: int = 0) -> str:
    """`n` tokens of plausible filler (the fake counts one token per word)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def text_of_chars(chars: int, seed: int = 0) -> str:
    out = words(max(1, chars // 5), seed)
    while len(out) < chars:
        out += " " + words(50, seed + len(out))
    return out[:chars]


# --- the critical path the scripts allow ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelTiming:
    """What the fake is scripted to do for one model: seconds to the first byte, then streamed tokens."""

    latency: float
    tokens: int = 1
    tokens_per_s: float | None = None

    @property
    def stream_s(self) -> float:
        """Seconds from the first streamed token to the last (the fake sends token 0 at once)."""
        return (self.tokens - 1) / self.tokens_per_s if self.tokens_per_s else 0.0


def critical_path(preset: Preset, timings: dict[str, ModelTiming]) -> float:
    """The ideal end-to-end time: the slowest proposer of each proposer layer, then the whole aggregator."""
    proposer_layers = preset.layers - 1
    slowest = max(timings[m].latency for m in preset.proposers) if proposer_layers else 0.0
    agg = timings[preset.aggregator]
    return proposer_layers * slowest + agg.latency + agg.stream_s


def tokens_in(reply: str, max_tokens: int) -> int:
    return min(count_tokens(reply), max_tokens)


# --- the fake LLM server in a subprocess ---------------------------------------------------------------


class JsonLinesProcess:
    """A helper process (`python -m MODULE`) driven over its stdin with one JSON command per line, answering
    each with one JSON line on its stdout; its first line is a hello. It exits when its stdin closes."""

    module = ""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.hello: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self) -> JsonLinesProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        self.hello = await self._read()
        return self

    async def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.module} exited")
        return json.loads(line)

    async def command(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
            await self._proc.stdin.drain()
            answer = await self._read()
        if "error" in answer:
            raise RuntimeError(f"{self.module}: {answer['error']}")
        return answer

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class FakeLLMProcess(JsonLinesProcess):
    """`tests.fakes.llm.FakeLLM` running in its own process (`python -m bench.fake_llm_server`).

    The fake's CPU (JSON, SSE framing, timers) then runs on the other core and is not counted as moa-bot's
    overhead. It is scripted over its stdin with one JSON command per line.
    """

    module = "bench.fake_llm_server"

    @property
    def port(self) -> int:
        return int(self.hello["port"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def script(
        self,
        model: str,
        *,
        reply: str,
        latency: float = 0.0,
        tokens_per_s: float | None = None,
        sampler: dict[str, Any] | None = None,
    ) -> None:
        """Script `model`; `sampler` names a latency sampler of `bench.fake_llm_server` and its parameters."""
        await self.command(
            "script", model=model, reply=reply, latency=latency, tokens_per_s=tokens_per_s, sampler=sampler
        )

    async def reset(self) -> None:
        """Forget recorded requests (they hold every request body)."""
        await self.command("reset")

    async def stats(self) -> dict[str, Any]:
        return await self.command("stats")

    async def __aenter__(self) -> FakeLLMProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def registry_for(base_url: str) -> ProviderRegistry:
    return ProviderRegistry({}, together_api_key="bench-key", together_base_url=base_url)


def bench_answerer(
    registry: ProviderRegistry,
    store: ConversationStore,
    preset: Preset,
    *,
    gate: int,
    on_event: Callable[[str, Event], None] | None = None,
) -> Answerer:
    """An answerer for one preset, with no per-user limit: load tests ask far more than 20 questions an hour."""
    return Answerer(
        Orchestrator(registry),
        store,
        Catalog({preset.name: preset}),
        default_preset=preset.name,
        policy=AccessPolicy(user_rate=UserRate(0, 1.0)),
        gate=ConcurrencyGate(gate),
        on_event=on_event,
    )


# --- a sink that only takes times -----------------------------------------------------------------------


@dataclass
class TimingSink:
    """A ReplySink that costs nothing and notes when the placeholder and the final view arrived."""

    created: float = field(default_factory=time.monotonic)
    opened_at: float | None = None
    final_at: float | None = None
    final: ReplyView | None = None
    views: int = 0

    async def open(self, view: ReplyView) -> dict[str, str]:
        self.opened_at = time.monotonic()
        return {"bench": "1"}

    async def show(self, view: ReplyView) -> None:
        self.views += 1
        if view.final:
            self.final_at, self.final = time.monotonic(), view

    async def refuse(self, message: str) -> None:
        raise RuntimeError(f"refused: {message}")


def write_result(name: str, data: dict[str, Any], *, quick: bool) -> Path:
    folder = RESULTS / "quick" if quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
