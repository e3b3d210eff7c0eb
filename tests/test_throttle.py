"""ThrottledLog: the first occurrence at once, then one summary line per interval, then quiet."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.throttle import ThrottledLog
from tests.helpers import eventually

INTERVAL_S = 0.2


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.throttle"]


async def test_first_at_once_then_one_summary_per_interval_then_first_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttled = ThrottledLog(
        logging.getLogger("test.throttle"), "refused a thing", "refused {count} things", interval_s=INTERVAL_S
    )
    for reason in ["bad"] * 1200 + ["stale"] * 34 + ["bad"]:
        throttled.record(reason)
    assert lines(caplog) == ["refused a thing (bad); repeats are logged once every 0.2 s"]
    await eventually(lambda: len(lines(caplog)) == 2, what="the interval's summary")
    assert lines(caplog)[1] == "refused 1,234 things in the last 1 s (bad: 1,200, stale: 34)"
    throttled.record("stale")  # inside the next interval: counted, not logged
    assert len(lines(caplog)) == 2
    await eventually(lambda: len(lines(caplog)) == 3, what="the next interval's summary")
    assert lines(caplog)[2] == "refused a thing in the last 1 s (stale: 1)"
    await asyncio.sleep(INTERVAL_S * 1.5)  # an interval with nothing in it ends quietly
    assert len(lines(caplog)) == 3
    throttled.record("bad")
    assert lines(caplog)[3] == "refused a thing (bad); repeats are logged once every 0.2 s"
    throttled.record("bad")
    throttled.close()  # at shutdown: what was counted is logged, and no timer is left behind
    assert lines(caplog)[4:] == ["refused a thing in the last 1 s (bad: 1)"]
    await asyncio.sleep(INTERVAL_S * 1.5)
    assert len(lines(caplog)) == 5
