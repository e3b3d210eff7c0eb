"""The pieces every fake shares: rate-limit counting (`tests/fakes/ratelimit.py`) and the failure queue
(`tests/fakes/failures.py`). How each platform answers a refusal or a failure is tested with its fake."""

from __future__ import annotations

import pytest

from tests.fakes.failures import Failure, FailureQueue
from tests.fakes.ratelimit import FixedWindow, Rate, RateLimiter, SlidingWindow, TokenBucket


def test_sliding_window_allows_limit_calls_in_any_window() -> None:
    window = SlidingWindow(Rate(2, 1.0))
    limiter = RateLimiter()
    assert limiter.acquire([window], 0.0) is None
    assert limiter.acquire([window], 0.4) is None
    refusal = limiter.acquire([window], 0.5)
    assert refusal is not None and refusal.wait == pytest.approx(0.5)  # until the call at 0.0 leaves
    assert limiter.acquire([window], 1.0) is None  # the window slid past the first call
    assert limiter.acquire([window], 1.1) is not None  # 0.4 and 1.0 are still inside


def test_fixed_window_opens_at_the_first_call_and_resets_whole() -> None:
    window = FixedWindow(Rate(2, 1.0))
    limiter = RateLimiter()
    assert limiter.acquire([window], 5.0) is None
    assert (window.remaining, window.reset_after(5.2)) == (1, pytest.approx(0.8))
    assert limiter.acquire([window], 5.5) is None
    refusal = limiter.acquire([window], 5.9)
    assert refusal is not None and refusal.wait == pytest.approx(0.1)
    assert limiter.acquire([window], 6.0) is None and window.remaining == 1


def test_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(burst=2, interval_s=0.5, now=0.0)
    limiter = RateLimiter()
    assert limiter.acquire([bucket], 0.0) is None
    assert limiter.acquire([bucket], 0.0) is None
    refusal = limiter.acquire([bucket], 0.1)
    assert refusal is not None and refusal.wait == pytest.approx(0.4)
    assert limiter.acquire([bucket], 0.5) is None
    assert limiter.acquire([bucket], 0.5) is not None  # refilled one token, not the burst


def test_a_call_is_charged_to_all_its_limits_or_to_none() -> None:
    limiter = RateLimiter()
    route = limiter.limit("route", "C1", lambda: FixedWindow(Rate(5, 10.0)))
    shared = limiter.limit("shared", "C1", lambda: FixedWindow(Rate(1, 10.0)))
    assert limiter.acquire([route, shared], 0.0) is None
    refusal = limiter.acquire([route, shared], 1.0)
    assert refusal is not None and refusal.limit is shared
    assert route.remaining == 4  # the refused call used up nothing on the route's own bucket


def test_limits_are_made_once_per_name_and_key_until_reset() -> None:
    limiter = RateLimiter()
    made = limiter.limit("chat.update", "", lambda: SlidingWindow(Rate(1, 60.0)))
    assert limiter.limit("chat.update", "", lambda: SlidingWindow(Rate(9, 60.0))) is made
    assert limiter.limit("chat.update", "other", lambda: SlidingWindow(Rate(1, 60.0))) is not made
    limiter.reset()
    assert limiter.limit("chat.update", "", lambda: SlidingWindow(Rate(1, 60.0))) is not made


def test_failures_are_consumed_one_per_call_in_order() -> None:
    queue = FailureQueue(lambda target, failure: target.lower())
    queue.add("Chat.Update", [Failure.rate_limit(), Failure.server_error()], times=2)
    assert queue.pending("chat.update") == 4
    taken = [queue.take("chat.update") for _ in range(5)]
    assert [f.status if f else None for f in taken] == [429, 500, 429, 500, None]


def test_a_failure_the_target_cannot_meet_is_refused_when_queued() -> None:
    def check(target: str, failure: Failure) -> str:
        if failure.kind == "cut":
            raise ValueError("nothing streams here")
        return target

    queue = FailureQueue(check)
    with pytest.raises(ValueError, match="nothing streams"):
        queue.add("chat.update", [Failure.disconnect(), Failure.cut()])
    assert queue.pending("chat.update") == 0  # all or nothing
    with pytest.raises(ValueError):
        queue.add("chat.update", [])
