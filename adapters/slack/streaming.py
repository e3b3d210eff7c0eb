"""Every Slack answer's sink: native streaming where Slack allows it, else paced edits (`SlackSink`).

Streaming (`chat.startStream` / `appendStream` / `stopStream`): the answer is one thread reply streamed as Markdown
for the asker (Slack needs the recipient in channels), with a task card per model ("Llama-3.3-70B: done in 3.1 s,
412 tokens") in a plan titled with the progress; `stopStream` ends it with the cited team sources (a block of
links: the [n] markers already streamed stay plain), the footer, 👍/👎 and "Show drafts".
Appends are coalesced like edits (`PacedMessage`: the value is the whole frame, the send works out what to add) and
spend the workspace's Tier 4 budget, shared by every answer. Only settled text is streamed (up to its last
whitespace), sealed as a whole, so that the message is always a sealed text however its appends cut it. While a
stream is written, Slack shows the asker its own stop control; pressing it stops the run as a Stop button would.

When streaming cannot go on, the answer continues on the paced-edit path, with nothing lost or shown twice:
- refused at the start (a workspace or channel where Slack does not allow it: remembered, so later answers there go
  straight to edits), or no start free in the workspace's Tier 2 budget right now: a placeholder is posted;
- the stream takes no more text (Slack ends streams after about five minutes: `message_not_in_streaming_state`;
  the asker pressed stop: `stopped_by_user`), or the text no longer extends what was streamed (the synthesizing
  model was retried from the start, or a failed synthesis is replaced by the best draft): the streamed message
  becomes the placeholder, edited with the whole text;
- the answer is longer than one streamed message holds (`STREAM_CHARS` of Markdown): the message is closed at a
  paragraph or line break (an open code block closed, and reopened in what follows) and the rest continues in
  further thread messages.
Meanwhile the thread's status says what is being drafted (`status.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from adapters.pacing import PacedMessage, RetryLater, send_within
from adapters.render import close_fences
from adapters.slack.api import SlackCallError, SlackRateLimited
from adapters.slack.formatting import (
    STREAM_CHARS,
    Chunk,
    SlackMessage,
    StreamFrame,
    answer_blocks,
    as_written,
    asked_message,
    model_tasks,
    notice_message,
    open_fence,
    seal_markdown,
    sources_blocks,
    stream_cut,
    stream_split,
)
from adapters.slack.outbox import Outbox
from adapters.slack.refusals import Refusals
from adapters.slack.sink import SlackSink, placeholder_of
from adapters.slack.status import ThreadStatus
from moa.conversation import Phase, ReplyView
from moa.knowledge.citations import link_markers, sources_section

log = logging.getLogger("adapters.slack")


class StreamingSink:
    def __init__(
        self,
        outbox: Outbox,
        *,
        team: str,
        channel: str,
        thread_ts: str,
        asker: str,
        stop: Callable[[str], object],
        streams: Refusals | None,
        statuses: Refusals,
        response_url: str | None = None,
        asked: tuple[str, str] | None = None,
        question_ts: str = "",
        on_closed: Callable[[StreamingSink], None] | None = None,
        max_chars: int = STREAM_CHARS,
    ) -> None:
        """`stop(run_id)` stops the run for the asker; `streams`: where streaming was refused (None: streaming is
        off); `statuses`: where the thread status was. `response_url`: a slash command's, where refusals go
        (ephemeral). `asked`: (user, question) of a slash command, posted in the channel as "… asked: …" when the
        sink opens; the answer goes in its thread. `question_ts`: the question's message, for a reaction on it."""
        self.team = team
        self.channel = channel
        self._asker = asker
        self._outbox = outbox
        self._fallback = SlackSink(outbox, team=team, channel=channel, thread_ts=thread_ts)
        self._stop_run = stop
        self._streams = streams
        self._statuses = statuses
        self._response_url = response_url
        self._asked = asked
        self._question_ts = question_ts
        self._on_closed = on_closed
        self._max_chars = max_chars
        self._status: ThreadStatus | None = None
        self._view: ReplyView | None = None  # the newest view shown
        self._ts = ""  # the streamed message
        self._streaming = False  # it takes text
        self._said = ""  # the answer text it shows
        self._shown = StreamFrame()  # what it shows, as sent (sealed)
        self._split: tuple[str, str] | None = (
            None  # once it was full: (the text it holds, the fence to reopen)
        )
        self._io = asyncio.Lock()  # one streaming call at a time
        self._paced: PacedMessage[StreamFrame] | None = None

    @property
    def thread_ts(self) -> str:
        return self._fallback.thread_ts

    @property
    def streamed(self) -> bool:
        """The answer began as a native stream."""
        return bool(self._ts)

    # ------------------------------------------------------------------------------------ ReplySink

    async def open(self, view: ReplyView) -> dict[str, str]:
        asked_ts = None
        if self._asked is not None:
            asked = asked_message(*self._asked)
            asked_ts = await self._fallback.send(lambda: self._outbox.post(self.channel, asked))
            self._fallback.thread_ts = asked_ts
        try:
            if not await self._start(view):
                await self._fallback.open(view)
        except BaseException:
            if asked_ts is not None:  # a question nobody will answer must not stay in the channel
                await self._outbox.delete(self.channel, asked_ts)
            raise
        self._status = ThreadStatus(
            self._outbox, self._statuses, team=self.team, channel=self.channel, thread_ts=self.thread_ts
        )
        self._status.update(view)
        opened = placeholder_of(self.team, self.channel, self._ts or self._fallback.ts or "", self.thread_ts)
        if self._ts:
            opened["stream"] = "1"  # crash recovery ends the stream before editing it
        if asked_ts is not None:
            opened["thread"] = asked_ts
        return opened

    async def show(self, view: ReplyView) -> None:
        self._view = view
        if self._status is not None:
            self._status.update(view)
        if view.final:
            await self._finish(view)
        elif self._streaming and self._paced is not None:
            self._paced.submit(self._frame(view))
        else:
            await self._fallback.show(self._rest(view))

    async def refuse(self, message: str) -> None:
        if self._response_url:
            await self._outbox.respond(self._response_url, notice_message(message).text)
            return
        await self._fallback.refuse(message)

    async def react(self, name: str) -> None:
        """An emoji reaction on the question (`moa.conversation.Reacting`): the 🤷 where nothing is posted."""
        if self._question_ts:
            await self._outbox.react(self.team, self.channel, self._question_ts, name)

    async def aclose(self) -> None:
        if self._paced is not None:
            await self._paced.aclose()
        if self._status is not None:
            await self._status.aclose()
        await self._fallback.aclose()
        if self._on_closed is not None:
            self._on_closed(self)

    # ------------------------------------------------------------------------------------ the stream

    async def _start(self, view: ReplyView) -> bool:
        """Start the stream, if Slack allows it here and a start is free in the workspace right now."""
        if self._streams is None or self._streams.refused(self.team, self.channel):
            return False
        budget = self._outbox.method_budget(self.team, "chat.startStream")
        if not budget.try_acquire():
            log.info("no stream start free in %s right now; this answer is edited in place", self.team)
            return False
        frame = self._frame(view).sealed()
        try:
            self._ts = await self._outbox.start_stream(
                self.team,
                self.channel,
                self.thread_ts,
                recipient=self._asker,
                chunks=_chunks(frame, StreamFrame()),
            )
        except SlackRateLimited as exc:
            budget.pause(exc.seconds)
            return False
        except SlackCallError as exc:
            self._streams.remember(self.team, self.channel, exc)
            return False
        self._shown, self._streaming = frame, True
        pacing = self._outbox.pacing
        self._paced = PacedMessage(
            self._append,
            min_interval=pacing.edit_interval_s,
            budgets=[self._outbox.method_budget(self.team, "chat.appendStream")],
            max_final_attempts=pacing.attempts,
        )
        return True

    def _frame(self, view: ReplyView) -> StreamFrame:
        """What the streamed message should show for `view`: the settled answer text, a card per model."""
        text = as_written(view.text, view.sources).strip() if view.has_answer or view.phase is Phase.STREAMING else ""
        if not view.final:
            text = text[: stream_cut(text)]
        return StreamFrame(text, model_tasks(view.models), view.status)

    async def _append(self, frame: StreamFrame) -> None:
        """The paced send: append what `frame` adds (the flusher calls it; 429 and 5xx come back later)."""
        async with self._io:
            if not self._streaming:
                return
            sealed = frame.sealed()
            chunks = sealed.chunks_since(self._shown)
            if chunks is None:
                await self._leave("the answer was rewritten", stop_stream=True)
            elif len(sealed.markdown) > self._max_chars:
                await self._close_full(frame)
            elif chunks:
                try:
                    await self._outbox.append_stream(self.channel, self._ts, chunks)
                except RetryLater:
                    raise
                except SlackCallError as exc:
                    await self._broken(exc)
                    return
                self._said, self._shown = frame.markdown, sealed

    async def _finish(self, view: ReplyView) -> None:
        try:
            if self._paced is not None:
                async with self._io:  # an append under way lands first
                    await self._paced.aclose()
            if not (self._streaming and await self._end_stream(view)):
                await self._fallback.show(self._rest(view))
        finally:
            if self._status is not None:
                await self._status.clear(self._outbox.pacing.window_s / 12)
            await self.aclose()

    async def _end_stream(self, view: ReplyView) -> bool:
        """Finish the stream with the final view; False when the paced-edit path must deliver it instead."""
        frame = self._frame(view)
        if not view.has_answer:  # a failure or an interruption: its notice replaces what was streamed
            await self._leave(view.phase.value, stop_stream=True)
            return False
        sealed = frame.sealed()
        chunks = sealed.chunks_since(self._shown)
        if chunks is None:
            await self._leave("the final text differs from what was streamed", stop_stream=True)
            return False
        if len(sealed.markdown) > self._max_chars:
            await self._close_full(frame)
            return False
        try:
            under = sources_blocks(view.sources) + answer_blocks(view.footer, view.run_id)
            await self._stop(chunks, SlackMessage("", under))
        except (SlackCallError, RetryLater) as exc:
            await self._leave(f"the stream could not be finished: {exc}", stop_stream=False)
            return False
        self._streaming = False
        return True

    async def _close_full(self, frame: StreamFrame) -> None:
        """The message cannot hold `frame`: end it at a paragraph or line break after what it shows (code blocks
        closed); the rest continues in new messages."""
        shown = self._shown.markdown

        def fits(piece: str) -> bool:
            sealed = seal_markdown(piece)
            return len(sealed) <= self._max_chars and sealed.startswith(shown)

        head = frame.markdown[: stream_split(frame.markdown, len(self._said), self._max_chars, fits)]
        last = replace(frame, markdown=close_fences(head)).sealed()
        try:
            await self._stop(_chunks(last, self._shown), None)
        except (SlackCallError, RetryLater) as exc:
            await self._leave(f"the full message could not be closed: {exc}", stop_stream=False)
            return
        self._streaming = False
        self._split = (head, open_fence(head))
        log.info(
            "stream %s in %s is full at %d characters; the answer continues below",
            self._ts,
            self.channel,
            len(head),
        )
        view = self._view
        if view is not None and not view.final:
            await self._fallback.open(view)
            await self._fallback.show(self._rest(view))

    async def _broken(self, error: SlackCallError) -> None:
        """The stream took no more text."""
        view = self._view
        if error.error == "stopped_by_user" and view is not None and view.run_id:
            self._stop_run(view.run_id)  # Slack's own stop control, which only the asker (the recipient) has
        await self._leave(f"Slack answered {error.error}", stop_stream=False)

    async def _leave(self, why: str, *, stop_stream: bool) -> None:
        """From now on the answer continues by editing the streamed message."""
        self._streaming = False
        log.info("stream %s in %s ends (%s); the answer continues by edits", self._ts, self.channel, why)
        if stop_stream:
            try:
                await self._stop([], None)
            except (SlackCallError, RetryLater) as exc:
                log.info("stream %s not stopped: %s", self._ts, exc)
        self._fallback.attach(self._ts)
        view = self._view
        if view is not None and not view.final:
            await self._fallback.show(self._rest(view))

    async def _stop(self, chunks: list[Chunk], under: SlackMessage | None) -> None:
        pacing = self._outbox.pacing
        await send_within(
            [self._outbox.method_budget(self.team, "chat.stopStream")],
            lambda: self._outbox.stop_stream(self.channel, self._ts, chunks, under),
            attempts=pacing.attempts,
        )

    def _rest(self, view: ReplyView) -> ReplyView:
        """What the paced-edit path shows of `view`: all of it, or, once a streamed message was closed full, what
        follows the part it holds."""
        if self._split is None or not (view.has_answer or view.phase is Phase.STREAMING):
            return view
        head, reopen = self._split
        text = as_written(view.text, view.sources).strip()
        if not text.startswith(head):
            return replace(view, text=view.text.strip())  # rewritten since (a retry): the continuation shows all
        rest = text[len(head) :]
        rest = rest[1:] if rest.startswith(" ") else rest.lstrip("\n")
        rest = f"{reopen}\n{rest}" if reopen else rest
        if view.sources:  # edited messages show the sources as the core wrote them: markers linked, a list below
            rest = f"{link_markers(rest, view.sources).rstrip()}\n\n{sources_section(view.sources)}"
        return replace(view, text=rest)


def _chunks(frame: StreamFrame, shown: StreamFrame) -> list[Chunk]:
    return frame.chunks_since(shown) or []
