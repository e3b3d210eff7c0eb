"""Retrying model calls: exponential backoff with jitter, honouring the server's Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from moa.errors import ProviderError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    max_s: float = 8.0
    # A Retry-After longer than this is not waited out: the answer would come too late to be useful.
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, error: ProviderError, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        backoff = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        jittered = backoff * (0.5 + rand() / 2)  # "equal jitter": never less than half the backoff
        if error.retry_after is not None:
            # the server's word is a floor; a little jitter keeps parallel callers from returning in lockstep
            return error.retry_after + jittered * 0.1
        return jittered


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, ProviderError], None] | None = None,
) -> tuple[T, int]:
    """Run `call` until it succeeds or a non-retryable error or the retry budget ends it.

    Returns the result and the number of attempts made; raises the last `ProviderError`.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(), attempt
        except ProviderError as error:
            if not error.retryable or attempt > retries:
                raise
            if error.retry_after is not None and error.retry_after > backoff.max_retry_after_s:
                raise
            if on_retry is not None:
                on_retry(attempt, error)
            await sleep(backoff.delay(attempt, error))
