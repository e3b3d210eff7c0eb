"""Rate-limit counting shared by the fake Slack and Discord; what a refusal looks like stays with each fake.

- Slack (`slack/web_api.py`): a `SlidingWindow` per method for the workspace (Tier 1-4: calls per minute) and
  a `TokenBucket` per channel for chat.postMessage ("1 per second, short bursts allowed"). Refused: HTTP 429,
  an integer `Retry-After`, `{"ok": false, "error": "ratelimited"}`.
- Discord (`discord/rest.py`): a `FixedWindow` per route bucket and major parameter, advertised in the
  `X-RateLimit-*` headers, a hidden budget that creates and edits in one channel share, and the global limit
  (50 per second). Refused: 429 with `retry_after` and `global` in the body, `X-RateLimit-Scope`.

A call is charged to all of its limits or to none: on both platforms a refused call uses up nothing.

    limiter = RateLimiter()
    window = limiter.limit("chat.update", "", lambda: SlidingWindow(Rate(50, 60.0)))
    refusal = limiter.acquire([window], now)   # None: go ahead (charged); else refusal.wait seconds
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar


class Rate(NamedTuple):
    """`limit` calls per `per` seconds. A plain `(limit, per)` tuple works wherever a Rate is taken."""

    limit: int
    per: float


class Limit(Protocol):
    """One counter: asked first (charging nothing), charged only once every limit of the call agreed."""

    def wait(self, now: float) -> float:
        """0 when a call may go now, else the seconds until it may."""
        ...

    def take(self, now: float) -> None:
        """Count an accepted call."""
        ...


class SlidingWindow:
    """At most `rate.limit` accepted calls in any `rate.per` seconds."""

    def __init__(self, rate: Rate) -> None:
        self.rate = Rate(*rate)
        self._times: deque[float] = deque()

    def wait(self, now: float) -> float:
        while self._times and self._times[0] <= now - self.rate.per:
            self._times.popleft()
        if len(self._times) >= self.rate.limit:
            return self._times[0] + self.rate.per - now
        return 0.0

    def take(self, now: float) -> None:
        self._times.append(now)


class FixedWindow:
    """A window that opens at the first call and resets `rate.per` seconds later (what Discord advertises)."""

    def __init__(self, rate: Rate) -> None:
        self.rate = Rate(*rate)
        self.count = 0
        self.reset_at = 0.0

    def wait(self, now: float) -> float:
        if now >= self.reset_at:
            self.count = 0
            self.reset_at = now + self.rate.per
        return self.reset_at - now if self.count >= self.rate.limit else 0.0

    def take(self, now: float) -> None:
        self.count += 1

    @property
    def remaining(self) -> int:
        return max(self.rate.limit - self.count, 0)

    def reset_after(self, now: float) -> float:
        return max(self.reset_at - now, 0.0)


class TokenBucket:
    """One token per `interval_s`, holding at most `burst`: Slack's "1 per second with short bursts"."""

    def __init__(self, burst: int, interval_s: float, now: float) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._tokens = float(burst)
        self._updated = now

    def wait(self, now: float) -> float:
        if self.interval_s > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) / self.interval_s)
        else:
            self._tokens = float(self.burst)
        self._updated = now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) * self.interval_s

    def take(self, now: float) -> None:
        self._tokens -= 1


@dataclass(frozen=True)
class Refusal:
    """Which of a call's limits refused it, and for how long."""

    limit: Limit
    wait: float  # seconds, > 0


L = TypeVar("L", bound=Limit)


class RateLimiter:
    """The limits of one fake, made on first use and keyed by (name, key), e.g. ("chat.update", "")."""

    def __init__(self) -> None:
        self._limits: dict[tuple[str, str], Limit] = {}

    def limit(self, name: str, key: str, make: Callable[[], L]) -> L:
        """The limit for `(name, key)`, made by `make()` the first time."""
        found = self._limits.get((name, key))
        if found is None:
            found = self._limits[(name, key)] = make()
        return found  # type: ignore[return-value]  # each (name, key) is always made by the same factory

    def acquire(self, limits: Sequence[Limit], now: float) -> Refusal | None:
        """Charge a call to every limit and return None, or charge none and return the first refusal."""
        waits = [limit.wait(now) for limit in limits]  # every limit is brought up to `now`, refused or not
        for limit, wait in zip(limits, waits, strict=True):
            if wait > 0:
                return Refusal(limit, wait)
        for limit in limits:
            limit.take(now)
        return None

    def reset(self) -> None:
        """Forget all history (e.g. between phases of one test)."""
        self._limits.clear()
