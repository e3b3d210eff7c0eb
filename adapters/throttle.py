"""A log line for something that can repeat thousands of times a second (refused requests), at most once a minute."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter


class ThrottledLog:
    """Logs the first occurrence at once, then one line per interval with how many happened and why.

        refused an unsigned request to /slack/events (bad signature); repeats are logged once every 60 s
        refused 1,234 unsigned requests to /slack/events in the last 60 s (bad signature: 1,200, stale timestamp: 34)

    An interval in which nothing happened ends quietly, and the next occurrence is again logged at once. `record`
    runs on the event loop (the interval's end is a loop timer); `close` cancels the timer and logs what is still
    counted, so nothing counted is lost at shutdown.
    """

    def __init__(
        self,
        logger: logging.Logger,
        one: str,
        many: str,
        *,
        interval_s: float = 60.0,
        level: int = logging.WARNING,
    ) -> None:
        """`one` names a single occurrence ("refused an unsigned request to X"); `many` has a `{count}` field."""
        self._logger, self._one, self._many = logger, one, many
        self._interval_s, self._level = interval_s, level
        self._counts: Counter[str] = Counter()
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def record(self, reason: str) -> None:
        if self._timer is None:
            self._logger.log(
                self._level, "%s (%s); repeats are logged once every %g s", self._one, reason, self._interval_s
            )
            self._start_interval()
        else:
            self._counts[reason] += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._summarize()

    def _start_interval(self) -> None:
        self._started = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._end_interval)

    def _end_interval(self) -> None:
        self._timer = None
        if self._summarize():
            self._start_interval()  # still happening: keep summarizing rather than log the next one at once

    def _summarize(self) -> bool:
        """Log and reset what was counted since the interval started; False when nothing was."""
        total = sum(self._counts.values())
        if not total:
            return False
        seconds = max(1, round(time.monotonic() - self._started))
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count in self._counts.most_common())
        what = self._one if total == 1 else self._many.format(count=f"{total:,}")
        self._logger.log(self._level, "%s in the last %d s (%s)", what, seconds, reasons)
        self._counts.clear()
        return True
