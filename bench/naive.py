"""A naive Mixture of Agents, written the way a first implementation would be: the baseline for benchmark 2.

It follows the shape of Together's MoA guide (https://docs.together.ai/docs/mixture-of-agents): every proposer
through `asyncio.gather` on the `together` async client, each layer waiting for all of them, then the aggregator
streamed. No timeouts beyond the SDK's, no straggler cut-off, the guide's retry-on-429 loop. One difference from
the guide: it streams the aggregator with the async client too (the guide uses the blocking client there, which
would stall every other trial sharing the event loop and make the comparison unfair to the naive side).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import together

AGGREGATOR_SYSTEM_PROMPT = (
    "You have been provided with a set of responses from various open-source models to the latest user query. "
    "Your task is to synthesize these responses into a single, high-quality response. It is crucial to "
    "critically evaluate the information provided in these responses, recognizing that some of it may be "
    "biased or incorrect. Your response should not simply replicate the given answers but should offer a "
    "refined, accurate, and comprehensive reply to the instruction. Ensure your response is well-structured, "
    "coherent, and adheres to the highest standards of accuracy and reliability.\n\nResponses from models:"
)


def system_prompt(previous: Sequence[str]) -> str:
    return AGGREGATOR_SYSTEM_PROMPT + "\n" + "\n".join(f"{i + 1}. {r}" for i, r in enumerate(previous))


@dataclass(frozen=True)
class NaiveResult:
    text: str
    elapsed_s: float
    first_token_s: float


class NaiveMoA:
    def __init__(self, client: together.AsyncTogether) -> None:
        self.client = client

    async def run_llm(self, model: str, prompt: str, previous: Sequence[str] | None = None) -> str:
        for sleep_time in (1, 2, 4):
            try:
                messages = (
                    [
                        {"role": "system", "content": system_prompt(previous)},
                        {"role": "user", "content": prompt},
                    ]
                    if previous
                    else [{"role": "user", "content": prompt}]
                )
                response = await self.client.chat.completions.create(
                    model=model, messages=messages, temperature=0.7, max_tokens=512
                )
                return response.choices[0].message.content or ""  # type: ignore[union-attr]
            except together.RateLimitError:
                await asyncio.sleep(sleep_time)
        return ""

    async def answer(
        self, prompt: str, proposers: Sequence[str], aggregator: str, *, layers: int = 2
    ) -> NaiveResult:
        started = time.monotonic()
        results = await asyncio.gather(*[self.run_llm(model, prompt) for model in proposers])
        for _ in range(1, layers - 1):
            results = await asyncio.gather(*[self.run_llm(model, prompt, results) for model in proposers])
        stream = await self.client.chat.completions.create(
            model=aggregator,
            messages=[
                {"role": "system", "content": system_prompt(results)},
                {"role": "user", "content": prompt},
            ],
            max_tokens=2048,
            stream=True,
        )
        parts: list[str] = []
        first = 0.0
        async for chunk in stream:  # type: ignore[union-attr]
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                first = first or time.monotonic() - started
                parts.append(chunk.choices[0].delta.content)
        return NaiveResult("".join(parts), time.monotonic() - started, first)
