"""Retrying model calls: exponential backoff with jitter, honouring the server's Retry-After.

One policy for every call the orchestrator makes. Whole calls (the proposers) use `call_with_retries`; a
streamed call (the aggregator), whose attempt yields pieces as they arrive, iterates `Retrying` directly:

    async for attempt in Retrying(retries=3, backoff=Backoff()):
        with attempt:
            async for piece in stream():
                yield piece

A failed attempt's `ProviderError` is caught by its `with` block; the next iteration waits and starts another
attempt, or raises that error when it is not worth retrying (not retryable, the budget is spent, the server asked
for a wait longer than `Backoff.max_retry_after_s`, or the caller's own `give_up` says so).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
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

    def worth_retrying(self, error: ProviderError, attempt: int, retries: int) -> bool:
        """Whether attempt number `attempt`, which failed with `error`, may be followed by another."""
        if not error.retryable or attempt > retries:
            return False
        return error.retry_after is None or error.retry_after <= self.max_retry_after_s


class Attempt:
    """One try; used as `with attempt:`, it records a `ProviderError` instead of letting it propagate."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: ProviderError | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if isinstance(exc, ProviderError):
            self.error = exc
            return True
        return False


class Retrying:
    """Attempts until one succeeds; see the module docstring."""

    def __init__(
        self,
        *,
        retries: int,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[int, ProviderError, float], None] | None = None,
        give_up: Callable[[ProviderError], bool] | None = None,
    ) -> None:
        """`on_retry(next_attempt, error, delay_s)` is told before each wait; `give_up(error)` may end early."""
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._on_retry = on_retry
        self._give_up = give_up
        self._last: Attempt | None = None

    def __aiter__(self) -> Retrying:
        return self

    async def __anext__(self) -> Attempt:
        last = self._last
        if last is not None:
            error = last.error
            if error is None:
                raise StopAsyncIteration
            if not self._backoff.worth_retrying(error, last.number, self._retries) or (
                self._give_up is not None and self._give_up(error)
            ):
                raise error
            delay = self._backoff.delay(last.number, error)
            if self._on_retry is not None:
                self._on_retry(last.number + 1, error, delay)
            await self._sleep(delay)
        self._last = Attempt(last.number + 1 if last is not None else 1)
        return self._last


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, ProviderError, float], None] | None = None,
) -> tuple[T, int]:
    """Run `call` until it succeeds or a non-retryable error or the retry budget ends it.

    Returns the result and the number of attempts made; raises the last `ProviderError`.
    """
    async for attempt in Retrying(retries=retries, backoff=backoff, sleep=sleep, on_retry=on_retry):
        with attempt:
            return await call(), attempt.number
    raise AssertionError("unreachable: Retrying either yields an attempt or raises")
