"""The thread's status while an answer is drafted: "moa is asking 4 models…" (`assistant.threads.setStatus`).

Slack shows the status under the thread, with loading messages it rotates (here: each model's state), and clears it
when the app posts in the thread; the answer's placeholder or stream is posted first, so the status is set after it
(a second later: see `ThreadStatus`) and cleared by us when the answer starts to be written (or ends without that). It only decorates the answer, so it
is best effort: an error is logged once and the status is not tried again where Slack refused it (`Refusals`),
every write spends the workspace's budget for the method, and writes are coalesced (the newest status wins).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from adapters.pacing import PacedMessage, RetryLater
from adapters.slack.api import SlackCallError, SlackRateLimited
from adapters.slack.formatting import model_tasks
from adapters.slack.outbox import Outbox
from adapters.slack.refusals import Refusals
from moa.conversation import Phase, ReplyView

log = logging.getLogger("adapters.slack")

MAX_LOADING = 10  # loading messages Slack takes


@dataclass(frozen=True)
class _Line:
    text: str = ""  # "" clears the status
    loading: tuple[str, ...] = ()


_CLEAR = _Line()


class ThreadStatus:
    def __init__(
        self, outbox: Outbox, refusals: Refusals, *, team: str, channel: str, thread_ts: str
    ) -> None:
        self._outbox = outbox
        self._refusals = refusals
        self._team, self._channel, self._thread_ts = team, channel, thread_ts
        self._off = refusals.refused(team, channel)
        self._asking = ""  # "Asking 4 models…": what the drafting phase is called while models report in
        self._wanted = _CLEAR
        self._cleared = asyncio.Event()  # set while Slack shows no status of ours
        self._cleared.set()
        self._paced = PacedMessage(
            self._send,
            min_interval=outbox.pacing.edit_interval_s,
            budgets=[outbox.method_budget(team, "assistant.threads.setStatus")],
        )
        # The first status waits one edit interval: an answer that starts sooner never needs it, and in a burst
        # of questions every placeholder goes out before any status.
        self._begun = False
        self._timer = asyncio.get_running_loop().call_later(outbox.pacing.edit_interval_s, self._begin)

    def update(self, view: ReplyView) -> None:
        """Show what `view` says about the drafting, or clear the status once the answer is being written."""
        if self._off:
            return
        line = self._line(view)
        if line != self._wanted:
            self._wanted = line
            if self._begun:
                self._paced.submit(line)

    async def clear(self, wait_s: float) -> None:
        """Clear the status if Slack still shows it (waiting at most `wait_s` for the budget), and stop."""
        if self._begun and self._wanted != _CLEAR:
            self._wanted = _CLEAR
            self._paced.submit(_CLEAR)
        try:
            async with asyncio.timeout(wait_s):
                await self._cleared.wait()
        except TimeoutError:
            log.info("thread status in %s not cleared in time; Slack drops it by itself", self._channel)
        await self.aclose()

    async def aclose(self) -> None:
        self._timer.cancel()
        await self._paced.aclose()

    def _begin(self) -> None:
        self._begun = True
        if self._wanted != _CLEAR and not self._off:
            self._paced.submit(self._wanted)

    def _line(self, view: ReplyView) -> _Line:
        if view.final or view.phase is Phase.STREAMING:
            return _CLEAR
        if view.phase is Phase.QUEUED:
            return _Line(f"is {_lower_first(view.status)}")
        if view.status.startswith(("Asking", "Round")) or not self._asking:
            self._asking = view.status
        loading = tuple(task.title for task in model_tasks(view.models))[:MAX_LOADING]
        return _Line(f"is {_lower_first(self._asking)}", loading)

    async def _send(self, line: _Line) -> None:
        if self._off:
            return
        try:
            await self._outbox.set_status(self._channel, self._thread_ts, line.text, line.loading)
        except SlackRateLimited:
            raise
        except SlackCallError as exc:
            if exc.retryable:
                raise RetryLater(self._outbox.pacing.server_error_pause_s, "Slack server error") from exc
            self._off = True
            self._cleared.set()  # nothing more will be shown, nor cleared
            self._refusals.remember(self._team, self._channel, exc)
            return
        if line == _CLEAR:
            self._cleared.set()
        else:
            self._cleared.clear()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
