"""Who may ask what, how often, and how many answers run at once: one place, shared by every adapter.

How often is counted by the store (`moa.persistence.ConversationStore.admit`), so that every process serving one
database counts the same questions.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from moa.conversation import Question, Refusal, RefusalReason
from moa.intake import visible


@dataclass(frozen=True)
class UserRate:
    count: int = 20
    per_s: float = 3600.0

    @classmethod
    def parse(cls, value: str) -> UserRate:
        """"20/hour", "5/minute", "100/day", "3/30s"; "0" or "off" turns the limit off."""
        text = value.strip().lower()
        if text in ("0", "off", "none"):
            return cls(0, 1.0)
        match = _RATE.fullmatch(text)
        if match is None or match["unit"] not in _UNITS:
            raise ValueError(f"{value!r} is not like '20/hour', '5/minute' or '100/day'")
        return cls(int(match["count"]), float(match["span"] or 1) * _UNITS[match["unit"]])


_RATE = re.compile(r"(?P<count>\d+)\s*/\s*(?P<span>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)")
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


@dataclass(frozen=True)
class RateBucket:
    """Whose questions count together, against which rate."""

    name: str  # "platform/scope/user", as the store counts it
    rate: UserRate


@dataclass
class AccessPolicy:
    max_question_chars: int = 16_000
    allowed_channels: frozenset[str] = frozenset()  # empty: every channel
    allowed_users: frozenset[str] = frozenset()  # empty: everyone
    user_rate: UserRate = field(default_factory=UserRate)

    def refusal(self, question: Question) -> Refusal | None:
        """Why the question is not answered, in words for the user; None when it is accepted (rates apart: the
        store counts those, see `bucket`)."""
        refusal = self.access_refusal(question)
        if refusal is not None:
            return refusal
        if not visible(question.text):
            return Refusal(
                "I didn't find a question in your message. Write it after the mention, e.g. `@moa what is WAL?`",
                RefusalReason.NO_QUESTION,
            )
        if len(question.text) > self.max_question_chars:
            return Refusal(
                f"Your question is {len(question.text):,} characters long; the limit is "
                f"{self.max_question_chars:,}. Please shorten it (or attach the essentials only) and ask again.",
                RefusalReason.TOO_LONG,
            )
        return None

    def bucket(self, question: Question) -> RateBucket | None:
        """The rate an accepted question counts against (the question's own when it names one); None when
        unlimited."""
        rate = self.user_rate if question.rate is None else question.rate
        if rate.count <= 0:
            return None
        # One bucket per person (per Slack workspace, per Discord application), whatever the place: a DM or
        # another channel is no way around the limit.
        scope = question.key.workspace if question.user_scope is None else question.user_scope
        return RateBucket(json.dumps([question.key.platform, scope, question.user]), rate)

    def access_refusal(self, question: Question) -> Refusal | None:
        """The allow-lists alone, for every action (asking, forgetting); None when the user may act here."""
        if question.authorized:
            return None
        key = question.key
        places = {key.channel, key.thread, question.parent_channel}
        if self.allowed_channels and not (places & self.allowed_channels):
            return Refusal(
                "I'm not enabled in this channel. Ask an admin to add it to MOA_ALLOWED_CHANNELS.",
                RefusalReason.NOT_ALLOWED,
            )
        if self.allowed_users and question.user not in self.allowed_users:
            return Refusal(
                "You're not on the list of people who can ask me questions. Ask an admin for access.",
                RefusalReason.NOT_ALLOWED,
            )
        return None


def rate_refusal(rate: UserRate, wait_s: float) -> Refusal:
    """What someone over their rate is told: the limit, and when they may ask again."""
    return Refusal(
        f"You've reached the limit of {rate.count} questions per {_duration(rate.per_s)}. "
        f"You can ask again in {_duration(wait_s)}.",
        RefusalReason.RATE_LIMITED,
        retry_after_s=wait_s,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        n, unit = math.ceil(seconds), "second"
    elif seconds < 5400:
        n, unit = math.ceil(seconds / 60), "minute"
    elif seconds < 86400 * 1.5:
        n, unit = math.ceil(seconds / 3600), "hour"
    else:
        n, unit = math.ceil(seconds / 86400), "day"
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


class ConcurrencyGate:
    """At most `limit` answers run at once; the rest wait in arrival order and learn their place."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = 0
        self._queue: deque[object] = deque()
        self._changed = asyncio.Condition()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def acquire(self, on_queued: Callable[[int], Awaitable[None]]) -> None:
        """Take a slot; while waiting, `on_queued(ahead)` is told how many wait in front (it must be quick)."""
        ticket = object()
        async with self._changed:
            self._queue.append(ticket)
            told: int | None = None
            try:
                while not (self._queue[0] is ticket and self.active < self.limit):
                    ahead = self._queue.index(ticket)
                    if ahead != told:
                        told = ahead
                        await on_queued(ahead)
                    await self._changed.wait()
            except BaseException:
                self._queue.remove(ticket)
                self._changed.notify_all()
                raise
            self._queue.popleft()
            self.active += 1
            self._changed.notify_all()

    async def release(self) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()


class TurnLocks:
    """One answer at a time per conversation, so that a follow-up asked while an answer is still streaming is
    answered after it, with it in the history, instead of beside it without it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, key: Hashable, on_wait: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            if lock.locked():
                await on_wait()
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]  # nobody else is in this conversation: keep the table small
            else:
                self._locks[key] = (lock, users - 1)
