"""Background tasks a component owns: the one way this project starts work that outlives the call starting it.

Every task is kept until it ends (asyncio keeps only weak references), a failure is logged with its traceback
instead of vanishing with the task, and `cancel_all` cancels what is left and waits for it, so that nothing
outlives its owner. Once closed, new work is refused (its coroutine is closed, never started).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


class TaskOwner:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None:
        """Run `coro` in a task owned here; None (and the coroutine closed) once `cancel_all` has begun."""
        if self._closed:
            coro.close()  # work that raced the shutdown: nobody would own its task
            return None
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def reopen(self) -> None:
        """Take work again after `cancel_all` (an adapter started anew by its supervisor)."""
        self._closed = False

    async def settle(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the tasks running now to end by themselves (new work is still taken)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until each has ended (their cleanup included)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s failed", task.get_name(), exc_info=task.exception())
