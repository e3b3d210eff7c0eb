"""One answer in one Slack thread: the `ReplySink` the core drives, on the shared delivery core.

`open` posts the placeholder in the thread at once (for `/moa`, first the "… asked: …" message it answers under);
interim views become coalesced, paced `chat.update`s of it; the final view replaces it with the first piece of the
answer and posts the rest as further thread replies (`adapters.delivery`). What is Slack's own is here: the
messages' shapes, and which of Slack's errors mean "too long" and "gone".
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.delivery import Delivery
from adapters.slack.api import SlackCallError
from adapters.slack.formatting import (
    SlackMessage,
    answer_message,
    asked_message,
    notice_message,
    split_answer,
    status_message,
    streaming_message,
)
from adapters.slack.outbox import Outbox
from moa.conversation import Phase, ReplyView

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
        response_url: str | None = None,
        asked: tuple[str, str] | None = None,
        on_closed: Callable[[SlackSink], None] | None = None,
    ) -> None:
        """`response_url`: a slash command's, where refusals go (ephemeral). `asked`: (user, question) of a
        slash command, posted in the channel as "… asked: …" when the sink opens; the answer goes in its thread."""
        self.team = team
        self._outbox = outbox
        self._thread = _Thread(outbox, channel, thread_ts)
        self._delivery = Delivery(self._thread, outbox.budgets(team, channel), placeholder=placeholder_ts)
        self._response_url = response_url
        self._asked = asked
        self._on_closed = on_closed
        self._shown: SlackMessage | None = None

    @property
    def channel(self) -> str:
        return self._thread.channel

    @property
    def thread_ts(self) -> str:
        return self._thread.thread_ts

    @property
    def ts(self) -> str | None:
        """The placeholder's ts, once posted."""
        return self._delivery.placeholder

    def placeholder(self) -> dict[str, str]:
        """Where the answer is, for crash recovery (`SlackAdapter.reopen`)."""
        return {
            "platform": "slack",
            "team": self.team,
            "channel": self.channel,
            "ts": self.ts or "",
            "thread_ts": self.thread_ts,
        }

    async def open(self, view: ReplyView) -> dict[str, str]:
        asked_ts = None
        if self._asked is not None:
            asked = asked_message(*self._asked)
            asked_ts = await self._delivery.send(lambda: self._outbox.post(self.channel, asked))
            self._thread.thread_ts = asked_ts
        message = status_message(view.status)
        try:
            await self._delivery.open(message)
        except BaseException:
            if asked_ts is not None:  # a question nobody will answer must not stay in the channel
                await self._outbox.delete(self.channel, asked_ts)
            raise
        self._shown = message
        opened = self.placeholder()
        if asked_ts is not None:
            opened["thread"] = asked_ts
        return opened

    async def show(self, view: ReplyView) -> None:
        if not view.final:
            message = (
                streaming_message(view.text, view.status)
                if view.phase is Phase.STREAMING
                else status_message(view.status)
            )
            if message != self._shown:
                self._shown = message
                self._delivery.interim(message)
            return
        try:
            if view.has_answer:
                await self._delivery.deliver(
                    split_answer(view.text), lambda piece, last: answer_message(piece, view.footer if last else "")
                )
            else:  # FAILED / INTERRUPTED: the message says what failed and what to do
                await self._delivery.replace(notice_message(f":warning: {view.text}"))
        finally:
            await self.aclose()

    async def refuse(self, message: str) -> None:
        if self._response_url:
            await self._outbox.respond(self._response_url, notice_message(message).text)
            return
        await self._delivery.send(lambda: self._thread.post(notice_message(message)))

    async def aclose(self) -> None:
        """Stop the interim-edit flusher (a final view may still be shown afterwards)."""
        await self._delivery.aclose()
        if self._on_closed is not None:
            self._on_closed(self)
