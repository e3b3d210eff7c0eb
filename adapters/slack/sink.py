"""One answer in one Slack thread: the `ReplySink` the core drives.

`open` posts the placeholder in the thread at once; interim views become coalesced, paced `chat.update`s of it;
the final view replaces it with the first piece of the answer and posts the rest as further thread replies. A
piece Slack still finds too long (`msg_too_long`) is split again and delivered in smaller pieces.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from adapters.pacing import PacedMessage
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
from adapters.render import split_markdown
from moa.conversation import Phase, ReplyView

log = logging.getLogger("adapters.slack")

MIN_PIECE = 200  # below this, msg_too_long is not about length we control
_PLACEHOLDER_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


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
        self.channel = channel
        self.thread_ts = thread_ts
        self.ts: str | None = None  # the placeholder, once posted
        self._outbox = outbox
        self._response_url = response_url
        self._asked = asked
        self._on_closed = on_closed
        self._paced: PacedMessage[SlackMessage] | None = None
        self._shown: SlackMessage | None = None
        if placeholder_ts:
            self._attach(placeholder_ts)

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
            asked_ts = await self._outbox.post(self.team, self.channel, asked_message(*self._asked))
            self.thread_ts = asked_ts
        message = status_message(view.status)
        try:
            ts = await self._outbox.post(self.team, self.channel, message, thread_ts=self.thread_ts)
        except BaseException:
            if asked_ts is not None:  # a question nobody will answer must not stay in the channel
                await self._outbox.delete(self.channel, asked_ts)
            raise
        self._attach(ts)
        self._shown = message
        opened = self.placeholder()
        if asked_ts is not None:
            opened["thread"] = asked_ts
        return opened

    async def show(self, view: ReplyView) -> None:
        if not view.final:
            if self._paced is None:
                return  # nothing posted yet to edit
            message = (
                streaming_message(view.text, view.status)
                if view.phase is Phase.STREAMING
                else status_message(view.status)
            )
            if message != self._shown:
                self._shown = message
                self._paced.submit(message)
            return
        try:
            if view.has_answer:
                await self._deliver(view.text, view.footer)
            else:  # FAILED / INTERRUPTED: the message says what failed and what to do
                await self._replace(notice_message(f":warning: {view.text}"))
        finally:
            await self.aclose()

    async def refuse(self, message: str) -> None:
        if self._response_url:
            await self._outbox.respond(self._response_url, notice_message(message).text)
            return
        await self._outbox.post(self.team, self.channel, notice_message(message), thread_ts=self.thread_ts)

    async def aclose(self) -> None:
        """Stop the interim-edit flusher (a final view may still be shown afterwards)."""
        if self._paced is not None:
            await self._paced.aclose()
        if self._on_closed is not None:
            self._on_closed(self)

    def _attach(self, ts: str) -> None:
        self.ts = ts
        pacing = self._outbox.pacing
        channel = self.channel

        async def edit(message: SlackMessage) -> None:
            await self._outbox.update(channel, ts, message)

        self._paced = PacedMessage(
            edit,
            min_interval=pacing.edit_interval_s,
            budgets=[self._outbox.update_budget(self.team)],
            max_final_attempts=pacing.attempts,
        )

    async def _deliver(self, text: str, footer: str) -> None:
        pending = deque(split_answer(text))
        first = True
        while pending:
            piece = pending.popleft()
            message = answer_message(piece, "" if pending else footer)
            try:
                if first:
                    await self._replace(message)
                else:
                    await self._outbox.post(self.team, self.channel, message, thread_ts=self.thread_ts)
            except SlackCallError as exc:
                if exc.error != "msg_too_long" or len(piece) < 2 * MIN_PIECE:
                    raise
                # Slack's limit is lower than we thought (it varies with the content): smaller pieces
                log.info("msg_too_long for %d characters; splitting smaller", len(piece))
                pending.extendleft(reversed(split_markdown(piece, max(MIN_PIECE, len(piece) // 2))))
                continue
            first = False

    async def _replace(self, message: SlackMessage) -> None:
        """The placeholder becomes `message` (posted instead when there is no placeholder to edit)."""
        if self._paced is None:
            self.ts = await self._outbox.post(self.team, self.channel, message, thread_ts=self.thread_ts)
            return
        try:
            await self._paced.finish(message)
        except SlackCallError as exc:
            if exc.error not in _PLACEHOLDER_GONE:
                raise
            log.info("placeholder %s is gone (%s); posting the reply instead", self.ts, exc.error)
            self._paced = None
            await self._replace(message)
