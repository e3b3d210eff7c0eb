"""What one model call costs this process in CPU, through the together SDK and through plain aiohttp.

A diagnosis for benchmark 5, not a target: it shows where an answer's CPU goes (the SDK's per-call and per-SSE
event cost, and httpcore's connection pool at high concurrency) and what a leaner client would save.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import together

from bench.common import FakeLLMProcess, words

QUESTION = [{"role": "user", "content": "What is a WAL?"}]
STREAM_TOKENS = 120
STREAM_RATE = 60.0


async def cpu_per(call: Callable[[], Awaitable[Any]], times: int, parallel: int = 1) -> float:
    """CPU milliseconds of this process per `call`, `parallel` at a time."""
    await call()  # warm
    started = time.process_time()
    for _ in range(times // parallel):
        await asyncio.gather(*(call() for _ in range(parallel)))
    return (time.process_time() - started) / times * 1000


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    await llm.script("sdk/complete", reply=words(250), latency=0.0)
    await llm.script("sdk/stream", reply=words(STREAM_TOKENS), latency=0.0, tokens_per_s=STREAM_RATE)
    await llm.script("sdk/slow", reply=words(250), latency=0.5)
    url = f"{llm.base_url}/v1/chat/completions"
    headers = {"Authorization": "Bearer bench-key"}
    client = together.AsyncTogether(api_key="bench-key", base_url=llm.base_url, max_retries=0)
    session = aiohttp.ClientSession()
    out: dict[str, Any] = {}
    try:

        async def sdk_complete() -> None:
            await client.chat.completions.create(model="sdk/complete", messages=QUESTION)  # type: ignore[arg-type]

        async def raw_complete() -> None:
            async with session.post(
                url, json={"model": "sdk/complete", "messages": QUESTION}, headers=headers
            ) as r:
                await r.json()

        async def sdk_stream() -> None:
            stream = await client.chat.completions.create(
                model="sdk/stream",
                messages=QUESTION,
                stream=True,  # type: ignore[arg-type]
            )
            async for _ in stream:  # type: ignore[union-attr]
                pass

        async def raw_stream() -> None:
            body = {"model": "sdk/stream", "messages": QUESTION, "stream": True}
            async with session.post(url, json=body, headers=headers) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        json.loads(line[6:])

        calls = 50 if quick else 200
        out["complete_cpu_ms"] = {
            "together_sdk": round(await cpu_per(sdk_complete, calls), 3),
            "aiohttp_json": round(await cpu_per(raw_complete, calls), 3),
        }
        # tokens arriving one by one (paced), several streams at once, as an aggregator's do
        per_chunk = {}
        for name, call in (("together_sdk", sdk_stream), ("aiohttp_json", raw_stream)):
            per_chunk[name] = round(await cpu_per(call, 10, parallel=10) / STREAM_TOKENS, 4)
        out["stream_cpu_ms_per_token"] = per_chunk
        out["stream"] = (
            f"{STREAM_TOKENS} tokens at {STREAM_RATE:g}/s, 10 streams at once, one SSE event per token"
        )
        if not quick:
            # httpcore's pool scans every connection for every queued request (encode/httpcore#1035)
            pool: dict[str, float] = {}
            for n in (100, 500):
                limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
                wide = together.AsyncTogether(
                    api_key="bench-key",
                    base_url=llm.base_url,
                    max_retries=0,
                    http_client=together.DefaultAsyncHttpxClient(limits=limits),
                )

                async def slow(c: together.AsyncTogether = wide) -> None:
                    await c.chat.completions.create(model="sdk/slow", messages=QUESTION)  # type: ignore[arg-type]

                pool[f"{n}_at_once"] = round(await cpu_per(slow, n, parallel=n), 3)
                await wide.close()
            out["complete_cpu_ms_by_concurrency"] = pool
    finally:
        await client.close()
        await session.close()
    await llm.reset()
    return out
