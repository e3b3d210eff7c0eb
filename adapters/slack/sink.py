"""One answer in one Slack thread by paced edits: the fallback of native streaming, on the shared delivery core.

`open` posts the placeholder in the thread at once; interim views become coalesced, paced `chat.update`s of it
(with a Stop button while the answer is written); the final view replaces it with the first piece of the answer and
posts the rest as further thread replies (`adapters.delivery`), the last one with the footer, 👍/👎 and "Show
drafts". The streaming sink (`streaming.py`) drives one of these wherever streaming is refused or stops taking
text, or for the part of an answer that one streamed message cannot hold; crash recovery (`SlackAdapter.reopen`)
edits a stored placeholder with one. What is Slack's own is here: the messages' shapes, and which of Slack's errors
mean "too long" and "gone".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.delivery import Delivery
from adapters.slack.api import SlackCallError
from adapters.slack.formatting import (
    SlackMessage,
    answer_message,
    notice_message,
    split_answer,
    status_message,
    streaming_message,
)
from adapters.slack.outbox import Outbox
from moa.conversation import Phase, ReplyView

T = TypeVar("T")

_PLACEHOLDER_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class _Thread:
    """The `Surface` of one Slack thread."""

    def __init__(self, outbox: Outbox, channel: str, thread_ts: str) -> None:
        self.outbox = outbox
        self.channel = channel
        self.thread_ts = thread_ts

    async def post(self, message: SlackMessage) -> str:
        return await self.outbox.post(self.channel, message, thread_ts=self.thread_ts)

    async def edit(self, message_id: str, message: SlackMessage) -> None:
        await self.outbox.update(self.channel, message_id, message)

    def too_long(self, error: Exception) -> bool:
        return isinstance(error, SlackCallError) and error.error == "msg_too_long"

    def gone(self, error: Exception) -> bool:
        return isinstance(error, SlackCallError) and error.error in _PLACEHOLDER_GONE


class SlackSink:
    def __init__(
        self,
        outbox: Outbox,
        *,
        team: str,
        channel: str,
        thread_ts: str,
        placeholder_ts: str | None = None,
        on_closed: Callable[[SlackSink], None] | None = None,
    ) -> None:
        """`placeholder_ts`: a message of the bot's that the answer edits (a stored placeholder, a stream that
        stopped taking text); without it `open` posts one."""
        self.team = team
        self._outbox = outbox
        self._thread = _Thread(outbox, channel, thread_ts)
        self._delivery = Delivery(self._thread, outbox.budgets(team, channel), placeholder=placeholder_ts)
        self._on_closed = on_closed
        self._shown: SlackMessage | None = None

    @property
    def channel(self) -> str:
        return self._thread.channel

    @property
    def thread_ts(self) -> str:
        return self._thread.thread_ts

    @thread_ts.setter
    def thread_ts(self, value: str) -> None:
        self._thread.thread_ts = value

    @property
    def ts(self) -> str | None:
        """The placeholder's ts, once posted."""
        return self._delivery.placeholder

    def placeholder(self) -> dict[str, str]:
        """Where the answer is, for crash recovery (`SlackAdapter.reopen`)."""
        return placeholder_of(self.team, self.channel, self.ts or "", self.thread_ts)

    def attach(self, ts: str) -> None:
        """Edits go to the bot's message `ts` from now on (a streamed message that takes no more text)."""
        self._delivery.attach(ts)

    async def send(self, write: Callable[[], Awaitable[T]]) -> T:
        """A write in this thread that must land, within the channel's posting budget."""
        return await self._delivery.send(write)

    async def open(self, view: ReplyView) -> dict[str, str]:
        message = status_message(view.status, view.run_id)
        await self._delivery.open(message)
        self._shown = message
        return self.placeholder()

    async def show(self, view: ReplyView) -> None:
        if not view.final:
            message = (
                streaming_message(view.text, view.status, stop=view.run_id)
                if view.phase is Phase.STREAMING
                else status_message(view.status, view.run_id)
            )
            if message != self._shown:
                self._shown = message
                self._delivery.interim(message)
            return
        try:
            if view.has_answer:

                def render(piece: str, last: bool) -> SlackMessage:
                    return answer_message(piece, view.footer, view.run_id) if last else answer_message(piece)

                await self._delivery.deliver(split_answer(view.text), render)
            else:  # FAILED / INTERRUPTED: the message says what failed and what to do
                await self._delivery.replace(notice_message(f":warning: {view.text}"))
        finally:
            await self.aclose()

    async def refuse(self, message: str) -> None:
        await self._delivery.send(lambda: self._thread.post(notice_message(message)))

    async def aclose(self) -> None:
        """Stop the interim-edit flusher (a final view may still be shown afterwards)."""
        await self._delivery.aclose()
        if self._on_closed is not None:
            self._on_closed(self)


def placeholder_of(team: str, channel: str, ts: str, thread_ts: str) -> dict[str, str]:
    """Where an answer is, as the core stores it: for crash recovery, and (`message`, the answer's own ts) for a
    ✅ on it to find its run."""
    return {"platform": "slack", "team": team, "channel": channel, "ts": ts, "message": ts, "thread_ts": thread_ts}
