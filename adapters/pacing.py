"""Pacing of message edits so that streamed answers stay inside the platforms' rate limits.

`RateBudget` is a token bucket for one platform limit (Slack's `chat.update` in one workspace, Discord's message
route in one channel) shared by every answer that spends it. `PacedMessage` coalesces the edits of one message:
the newest text wins, interim edits wait their turn or are skipped, and the final edit is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("adapters.pacing")

T = TypeVar("T")


class RetryLater(Exception):
    """Raised by a send function when the platform answered 429; the edit is retried after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited; retry in {seconds:g} s")
        self.seconds = seconds


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
        attempts = 0
        while True:
            attempts += 1
            await self._wait_interval()
            for budget in self._budgets:
                await budget.acquire()
            try:
                await self._send(value)
            except RetryLater as exc:
                if attempts >= self._max_final_attempts:
                    raise
                self._penalize(exc.seconds)
                await asyncio.sleep(exc.seconds)
                continue
            self._last_sent = self._clock()
            self.sent += 1
            return

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

    def _penalize(self, seconds: float) -> None:
        for budget in self._budgets:
            budget.pause(seconds)

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
                self._penalize(exc.seconds)
                self._has_pending = True if not self._has_pending else self._has_pending
                if self._pending is None:
                    self._pending = value
                self._wake.set()
            except Exception:
                log.warning("interim edit failed", exc_info=True)
            else:
                self.sent += 1
            self._last_sent = self._clock()
