"""Pacing of platform writes so that streamed answers stay inside the platforms' rate limits.

`RateBudget` is a token bucket for one platform limit (Slack's `chat.update` in one workspace, Discord's message
route in one channel) shared by every answer that spends it. `send_within` is the one retry loop for writes that
must land: it spends the budgets, and when the platform says "later" (`RetryLater`: a 429, or a 5xx on an
idempotent write) it pauses those budgets for everyone and tries again. `PacedMessage` coalesces the edits of one
message: the newest text wins, interim edits wait their turn or are skipped, and the final edit goes through
`send_within`, so it is never dropped.

The client libraries' own retries stay in charge of what they do well (slack_sdk's rate-limit handler for reads,
discord.py's per-route buckets); these budgets add what they cannot: one limit shared by every answer in a
workspace or channel, and coalescing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from moa.errors import MoaError

log = logging.getLogger("adapters.pacing")

T = TypeVar("T")


class RetryLater(MoaError):
    """Raised by a platform write the platform refused for now (429, or 5xx on an idempotent write): the write
    is tried again after `seconds`, and the budgets it spends are paused for everyone meanwhile."""

    def __init__(self, seconds: float, reason: str = "rate limited") -> None:
        super().__init__(f"{reason}; retry in {seconds:g} s")
        self.seconds = seconds


async def send_within(
    budgets: Sequence[RateBudget], send: Callable[[], Awaitable[T]], *, attempts: int
) -> T:
    """`send()` once a token of every budget is free; `RetryLater` pauses them all and tries again, up to
    `attempts` tries in all. Any other failure is raised at once."""
    attempt = 0
    while True:
        attempt += 1
        for budget in budgets:
            await budget.acquire()
        try:
            return await send()
        except RetryLater as exc:
            if attempt >= attempts:
                raise
            for budget in budgets:
                budget.pause(exc.seconds)
            await asyncio.sleep(exc.seconds)


class RateBudget:
    def __init__(
        self,
        count: int,
        per_s: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = count / per_s
        self.capacity = float(burst if burst is not None else max(1, count // 10))
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._paused_until = 0.0
        self._finals_waiting = 0
        self._lock = asyncio.Lock()
        self.spent = 0

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def try_acquire(self) -> bool:
        """Take a token if one is free right now and no final edit is waiting for one."""
        now = self._refill()
        if self._finals_waiting or now < self._paused_until or self._tokens < 1:
            return False
        self._tokens -= 1
        self.spent += 1
        return True

    async def acquire(self) -> None:
        """Wait for a token; callers that must not be dropped (final edits) use this, in arrival order."""
        self._finals_waiting += 1
        try:
            async with self._lock:
                while True:
                    now = self._refill()
                    if now < self._paused_until:
                        await asyncio.sleep(self._paused_until - now)
                    elif self._tokens >= 1:
                        self._tokens -= 1
                        self.spent += 1
                        return
                    else:
                        await asyncio.sleep((1 - self._tokens) / self.rate)
        finally:
            self._finals_waiting -= 1

    def pause(self, seconds: float) -> None:
        """The platform said 429: nobody spends from this budget for `seconds`."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._tokens = min(self._tokens, 0.0)


class PacedMessage(Generic[T]):
    """Edits of one message: at most one per `min_interval`, newest value wins, the final one always lands."""

    def __init__(
        self,
        send: Callable[[T], Awaitable[None]],
        *,
        min_interval: float,
        budgets: Sequence[RateBudget] = (),
        clock: Callable[[], float] = time.monotonic,
        max_final_attempts: int = 8,
    ) -> None:
        self._send = send
        self._interval = min_interval
        self._budgets = tuple(budgets)
        self._clock = clock
        self._max_final_attempts = max_final_attempts
        self._pending: T | None = None
        self._has_pending = False
        self._last_sent = -float("inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.sent = 0

    def submit(self, value: T) -> None:
        """Queue an interim value; returns at once."""
        if self._closed:
            return
        self._pending, self._has_pending = value, True
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._flush_loop(), name="paced-message")

    async def finish(self, value: T) -> None:
        """Send the final value (after the interval and the budgets), retrying 429s; raises other failures."""
        await self._stop_flusher()
        await self._wait_interval()
        await send_within(self._budgets, lambda: self._send(value), attempts=self._max_final_attempts)
        self._last_sent = self._clock()
        self.sent += 1

    async def aclose(self) -> None:
        await self._stop_flusher()

    async def _stop_flusher(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            current = asyncio.current_task()
            # A caller already being cancelled may still show a final view on its way out (the answerer does
            # exactly that): only a cancellation that arrives while we wait here is the caller's to propagate.
            requests = current.cancelling() if current is not None else 0
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
                # our own cancellation of the flusher; a new cancellation of the caller propagates
                if current is not None and current.cancelling() > requests:
                    raise

    async def _wait_interval(self) -> None:
        wait = self._last_sent + self._interval - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._wait_interval()
            # no token now: try again shortly with whatever is newest by then (tokens refill with time, so
            # there is no event to wait for)
            while not all(budget.try_acquire() for budget in self._budgets):  # noqa: ASYNC110
                await asyncio.sleep(min(self._interval, 0.25))
            if not self._has_pending:
                continue
            value, self._has_pending = self._pending, False
            try:
                await self._send(value)  # type: ignore[arg-type]
            except RetryLater as exc:
                for budget in self._budgets:
                    budget.pause(exc.seconds)
                if not self._has_pending:  # nothing newer came meanwhile: this one is still the newest
                    self._pending, self._has_pending = value, True
                self._wake.set()
            except Exception:
                log.warning("interim edit failed", exc_info=True)
            else:
                self.sent += 1
            self._last_sent = self._clock()
