"""Benchmark 7: the OpenAI-compatible API: what it adds over the core, and 50 streaming clients at once.

Both parts use one `Answerer` with a real `storage.Store` (SQLite in a temporary folder) and the adapter mounted
on the service's HTTP app (`bot.http.build_app`) on a free port of this process; the fake LLM runs in its own
process, and so do the API's clients (`python -m bench.api`, driven over stdin like the fake): plain aiohttp
reading the server-sent events line by line, as any client in another process would. A client in the server's
own process would be served only when the server's loop let it run, and would wait out whole bursts of deltas.

- Time to first content token, one request at a time: through the API, from sending the request to reading
  the first chunk with content; through the core, from `Answerer.answer` to the first streamed view at a sink
  that only notes the time. The two alternate, run i of one next to run i of the other. What the API adds is
  measured within each API request, so that the models' latency and the machine's noise between runs cancel
  out: (request sent -> `Answerer.answer` called) + (first streamed view -> client has the chunk), the stamps
  taken by a wrapper around the answerer; both processes read the same monotonic clock. For scale, the floor
  of any HTTP API between two processes on this machine: the round trip of `GET /v1/models`.
- Throughput: 50 clients, each streaming a new request as soon as its previous stream ended (so 50 are in
  flight all the time), for a measuring window after a ramp; the same load through the core alone for
  comparison. The concurrency gate is raised to 50, so that the figure is the process's, not the gate's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from adapters.openai_api.app import OpenAIAdapter
from adapters.openai_api.keys import ApiKey
from bench.common import FakeLLMProcess, JsonLinesProcess, bench_answerer, registry_for, summary, words
from bot.http import build_app, start_site
from bot.metrics import Metrics
from moa.answering import Answerer
from moa.conversation import ConversationKey, Phase, Question, ReplyView
from moa.presets import BUILTIN_PRESETS, Preset
from storage import Store

KEY = "bench-api-key-0123456789abcdef"
PROPOSERS = 4
PROPOSER_LATENCY_S = 0.1
PROPOSER_TOKENS = 60
AGG_LATENCY_S = 0.05
AGG_TOKENS = 60
AGG_TOKENS_PER_S = 100.0  # streamed as users see it; the first token comes with the first byte
FIRST_TOKEN_AGG_TOKENS = 10  # the first-token runs end soon after it
CLIENTS = 50


def bench_preset() -> Preset:
    return replace(
        BUILTIN_PRESETS["default"],
        name="bench",
        proposers=tuple(f"bench/api{i}" for i in range(PROPOSERS)),
        aggregator="bench/apiagg",
    )


async def script(llm: FakeLLMProcess, preset: Preset, *, answer_tokens: int) -> None:
    for i, model in enumerate(preset.proposers):
        await llm.script(model, reply=words(PROPOSER_TOKENS, seed=i), latency=PROPOSER_LATENCY_S)
    await llm.script(preset.aggregator, reply=words(answer_tokens, seed=99), latency=AGG_LATENCY_S,
                     tokens_per_s=AGG_TOKENS_PER_S)


class FirstTokenSink:
    """Notes when the first streamed text and the final view arrive; costs nothing else."""

    def __init__(self) -> None:
        self.first_token_at: float | None = None
        self.final: ReplyView | None = None

    async def open(self, view: ReplyView) -> dict[str, str]:
        return {"bench": "1"}

    async def show(self, view: ReplyView) -> None:
        if self.first_token_at is None and view.phase in (Phase.STREAMING, Phase.DONE) and view.text:
            self.first_token_at = time.monotonic()
        if view.final:
            self.final = view

    async def refuse(self, message: str) -> None:
        raise RuntimeError(f"refused: {message}")


Times = tuple[float, float, float]  # asked, first token, end (time.monotonic(), shared by the processes)


async def core_once(answerer: Answerer, question: str) -> Times:
    """One answer through the core."""
    sink = FirstTokenSink()
    started = time.monotonic()
    key = ConversationKey("bench", "w", "c", question)
    await answerer.answer(Question(key, "u", question, history=()), sink)
    if sink.final is None or sink.final.phase is not Phase.DONE or sink.first_token_at is None:
        raise RuntimeError(f"no answer through the core: {sink.final}")
    return started, sink.first_token_at, time.monotonic()


class StampingAnswerer:
    """The answerer as the adapter sees it, noting when each question reaches the core and when the first piece
    of its answer leaves the core for the API's sink (by question text)."""

    def __init__(self, answerer: Answerer) -> None:
        self.inner = answerer
        self.stamps: dict[str, list[float]] = {}

    @property
    def catalog(self) -> Any:
        return self.inner.catalog

    def stop(self, run_id: str, *, by: str, status: str = "stopped") -> Any:
        return self.inner.stop(run_id, by=by, status=status)

    async def answer(self, question: Question, sink: Any) -> str | None:
        stamp = self.stamps[question.text] = [time.monotonic()]
        return await self.inner.answer(question, _FirstViewStamp(sink, stamp))


class _FirstViewStamp:
    def __init__(self, sink: Any, stamp: list[float]) -> None:
        self._sink, self._stamp = sink, stamp

    async def open(self, view: ReplyView) -> dict[str, str]:
        return dict(await self._sink.open(view))

    async def show(self, view: ReplyView) -> None:
        if len(self._stamp) == 1 and view.phase in (Phase.STREAMING, Phase.DONE) and view.text:
            self._stamp.append(time.monotonic())
        await self._sink.show(view)

    async def refuse(self, message: str) -> None:
        await self._sink.refuse(message)


async def api_once(session: aiohttp.ClientSession, url: str, question: str) -> Times:
    """One streamed answer through the API, as its client sees it."""
    body = {"model": "bench", "messages": [{"role": "user", "content": question}], "stream": True}
    started = time.monotonic()
    first: float | None = None
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"API answered {response.status}: {await response.text()}")
        async for raw in response.content:
            if first is None and raw.startswith(b"data: {"):
                chunk = json.loads(raw[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.monotonic()
    if first is None:
        raise RuntimeError("the stream carried no content")
    return started, first, time.monotonic()


async def get_once(session: aiohttp.ClientSession, url: str) -> float:
    started = time.monotonic()
    async with session.get(url, headers={"Authorization": f"Bearer {KEY}"}) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
    return time.monotonic() - started


async def closed_loop(
    ask: Callable[[str], Awaitable[Times]], *, clients: int, ramp_s: float, window_s: float
) -> dict[str, Any]:
    """`clients` asking again as soon as their answer ends: the answers started in the window, timed, and how
    many ended in the window (the throughput)."""
    errors: list[str] = []
    measured: list[Times] = []
    begin = time.monotonic()
    window = (begin + ramp_s, begin + ramp_s + window_s)
    ended_in_window = 0

    async def client(c: int) -> None:
        nonlocal ended_in_window
        await asyncio.sleep(random.Random(c).uniform(0, ramp_s / 2))
        n = 0
        while time.monotonic() < window[1]:
            started = time.monotonic()
            n += 1
            try:
                result = await ask(f"[client {c} question {n}] What is a write-ahead log?")
            except Exception as exc:  # noqa: BLE001 - counted and reported, the load goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if window[0] <= started < window[1]:
                measured.append(result)
            if window[0] <= time.monotonic() < window[1]:
                ended_in_window += 1

    await asyncio.gather(*(client(c) for c in range(clients)))
    return {
        "clients": clients,
        "window_s": window_s,
        "answers_per_s": round(ended_in_window / window_s, 1),
        "ended_in_window": ended_in_window,
        "first_token_ms": summary([first - asked for asked, first, _ in measured], scale=1000, digits=1),
        "answer_ms": summary([end - asked for asked, _, end in measured], scale=1000, digits=1),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
    }


async def with_cpu(load: Awaitable[dict[str, Any]], *, ramp_s: float, window_s: float) -> dict[str, Any]:
    """Run `load` and add this process's CPU per answer over its measuring window."""
    task = asyncio.ensure_future(load)
    await asyncio.sleep(ramp_s)
    cpu = time.process_time()
    await asyncio.sleep(window_s)
    cpu = time.process_time() - cpu
    result = await task
    result["server_cpu_ms_per_answer"] = round(cpu * 1000 / max(1, result["ended_in_window"]), 2)
    return result


class ApiClientProcess(JsonLinesProcess):
    """The API's clients in a process of their own (this module's `main`)."""

    module = "bench.api"

    async def ask(self, url: str, question: str) -> Times:
        answer = await self.command("ask", url=url, question=question)
        return answer["asked"], answer["first"], answer["end"]

    async def ping(self, url: str, times: int) -> list[float]:
        """Round trips of `GET url`, in seconds."""
        return list((await self.command("ping", url=url, times=times))["seconds"])

    async def load(self, url: str, *, clients: int, ramp_s: float, window_s: float) -> dict[str, Any]:
        return await self.command("load", url=url, clients=clients, ramp_s=ramp_s, window_s=window_s)


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    pairs = 20 if quick else 100
    window_s = 4.0 if quick else 10.0
    ramp_s = 2.0
    preset = bench_preset()
    registry = registry_for(llm.base_url)
    client = ApiClientProcess()
    await client.start()
    with tempfile.TemporaryDirectory() as folder:
        async with Store(Path(folder) / "bench.sqlite3") as store:
            answerer = bench_answerer(registry, store, preset, gate=CLIENTS)
            stamping = StampingAnswerer(answerer)
            adapter = OpenAIAdapter(keys=[ApiKey("bench", KEY)], answerer=stamping)  # type: ignore[arg-type]
            app = build_app(store=store, adapters=[adapter], metrics=Metrics(),
                            in_flight=lambda: answerer.in_flight, accepting=lambda: answerer.accepting)
            runner, port = await start_site(app, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            try:
                await script(llm, preset, answer_tokens=FIRST_TOKEN_AGG_TOKENS)
                for i in range(2):  # warm the pools and code paths
                    await core_once(answerer, f"warm core {i}")
                    await client.ask(url, f"warm api {i}")
                core_ttft, api_ttft, inbound, outbound = [], [], [], []
                cpu = {"core": 0.0, "api": 0.0}  # this process's, so the server's alone for the API
                for i in range(pairs):
                    started_cpu = time.process_time()
                    asked, first, _ = await core_once(answerer, f"[run {i}] core")
                    cpu["core"] += time.process_time() - started_cpu
                    core_ttft.append(first - asked)
                    question = f"[run {i}] api"
                    started_cpu = time.process_time()
                    sent, received, _ = await client.ask(url, question)
                    cpu["api"] += time.process_time() - started_cpu
                    api_ttft.append(received - sent)
                    called, left_core = stamping.stamps.pop(question)
                    inbound.append(called - sent)  # the request: client, HTTP, key, body, checks
                    outbound.append(received - left_core)  # the first chunk: sink, write, client
                floor = await client.ping(f"http://127.0.0.1:{port}/v1/models", pairs)
                await llm.reset()
                await script(llm, preset, answer_tokens=AGG_TOKENS)
                through_api = await with_cpu(client.load(url, clients=CLIENTS, ramp_s=ramp_s, window_s=window_s),
                                             ramp_s=ramp_s, window_s=window_s)
                await llm.reset()
                core_load = closed_loop(lambda q: core_once(answerer, q), clients=CLIENTS, ramp_s=ramp_s,
                                        window_s=window_s)
                through_core = await with_cpu(core_load, ramp_s=ramp_s, window_s=window_s)
                await llm.reset()
            finally:
                await runner.cleanup()
                await registry.aclose()
                await client.aclose()
    core_s, api_s = summary(core_ttft, scale=1000), summary(api_ttft, scale=1000)
    added = summary([i + o for i, o in zip(inbound, outbound, strict=True)], scale=1000)
    return {
        "benchmark": "api",
        "script": {
            "proposers": PROPOSERS,
            "proposer_latency_s": PROPOSER_LATENCY_S,
            "proposer_reply_tokens": PROPOSER_TOKENS,
            "aggregator_latency_s": AGG_LATENCY_S,
            "aggregator_tokens": {"first_token_runs": FIRST_TOKEN_AGG_TOKENS, "throughput_runs": AGG_TOKENS},
            "aggregator_tokens_per_s": AGG_TOKENS_PER_S,
        },
        "first_token": {
            "pairs": pairs,
            "core_ms": core_s,
            "api_ms": api_s,
            "api_added_ms": added,
            "api_added_request_ms": summary(inbound, scale=1000),
            "api_added_first_chunk_ms": summary(outbound, scale=1000),
            "http_round_trip_floor_ms": summary(floor, scale=1000),
            "cpu_ms_per_answer": {via: round(seconds * 1000 / pairs, 2) for via, seconds in cpu.items()},
            "api_minus_core_p50_ms": round(api_s["p50"] - core_s["p50"], 2),
            "api_minus_core_p95_ms": round(api_s["p95"] - core_s["p95"], 2),
            "target": "the API adds < 5 ms at p95",
            "met": bool(added["p95"] < 5),
        },
        "throughput": {"api": through_api, "core": through_core},
    }


async def main() -> None:
    """The client process: `ask` one streamed request, or `load` with many clients; one JSON line each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"ready": True})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        while line := await reader.readline():
            try:
                command = json.loads(line)
                url = command["url"]
                if command["op"] == "ask":
                    asked, first, end = await api_once(session, url, command["question"])
                    say({"asked": asked, "first": first, "end": end})
                elif command["op"] == "ping":
                    say({"seconds": [await get_once(session, url) for _ in range(command["times"])]})
                elif command["op"] == "load":
                    say(await closed_loop(functools.partial(api_once, session, url), clients=command["clients"],
                                          ramp_s=command["ramp_s"], window_s=command["window_s"]))
                else:
                    say({"error": f"unknown op {command['op']!r}"})
            except Exception as exc:  # noqa: BLE001 - report any failure to the parent, keep serving
                say({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    asyncio.run(main())
