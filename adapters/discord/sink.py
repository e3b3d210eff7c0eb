"""One answer on Discord: the placeholder, paced edits, and the final answer split across messages.

Two sinks share the delivery logic in `_Sink`:
- `MessageSink` answers a message (mention, knowledge channel, thread follow-up, DM): it opens a thread when
  asked to, posts the placeholder there and edits it; crash recovery reopens one from (channel, message) ids.
- `InteractionSink` answers `/moa`: it defers the interaction, edits the original response through the
  interaction webhook and sends follow-ups; before the interaction token dies (15 minutes) it hands over to an
  ordinary channel message that the rest of the answer edits.

Every create and edit in a channel spends from that channel's `RateBudget` (shared by every answer there), and
the edits of one message go through a `PacedMessage` (newest text wins, the final text always lands).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal

import discord

from adapters.discord.api import (
    INVALID_FORM_BODY,
    INVALID_WEBHOOK_TOKEN,
    PLATFORM,
    UNKNOWN_MESSAGE,
    UNKNOWN_WEBHOOK,
    THREAD_ALREADY_EXISTS,
    retry_later,
)
from adapters.discord.formatting import final_pieces, handover, interim, notice
from adapters.pacing import PacedMessage, RateBudget, RetryLater
from adapters.render import split_markdown
from moa.conversation import ReplyView

log = logging.getLogger("adapters.discord")

NO_PINGS = discord.AllowedMentions.none()
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day without messages, then the thread is archived
_MIN_PIECE = 200  # below this, a piece Discord refuses is not split further


@dataclass(frozen=True)
class DiscordPacing:
    """How fast the adapter writes to Discord. Tests shrink these; production keeps the defaults."""

    edit_interval_s: float = 1.5  # one message is edited at most this often
    # Creates and edits per channel, shared by every answer there. Discord lets bots do about 5 per 5 s; the
    # budget stays under it so that latency jitter never lands a sixth request inside Discord's window.
    channel_count: int = 5
    channel_per_s: float = 6.0
    channel_burst: int = 1
    interaction_ttl_s: float = 15 * 60  # an interaction token works this long after the interaction
    token_margin_s: float = 60.0  # hand over to channel messages this long before the token dies
    ack_within_s: float = 1.5  # a slash command is deferred by then at the latest (Discord allows 3 s)
    final_attempts: int = 8  # 429s survived when delivering a final text


class ChannelBudgets:
    """One `RateBudget` per channel, shared by every answer streaming there; idle ones are dropped."""

    def __init__(self, pacing: DiscordPacing, *, keep: int = 512) -> None:
        self._pacing = pacing
        self._keep = keep
        self._budgets: dict[int, tuple[RateBudget, float]] = {}

    def __call__(self, channel_id: int) -> RateBudget:
        now = time.monotonic()
        found = self._budgets.get(channel_id)
        budget = (
            found[0]
            if found
            else RateBudget(
                self._pacing.channel_count, self._pacing.channel_per_s, burst=self._pacing.channel_burst
            )
        )
        self._budgets[channel_id] = (budget, now)
        if len(self._budgets) > self._keep:
            # a budget unused for a minute is full again, so a fresh one behaves the same
            self._budgets = {k: v for k, v in self._budgets.items() if now - v[1] < 60.0}
        return budget


@dataclass
class SinkContext:
    client: discord.Client
    pacing: DiscordPacing
    budgets: ChannelBudgets


def placeholder_ref(channel_id: int, message_id: int, kind: str) -> dict[str, str]:
    """What the answerer stores to find the placeholder again after a crash."""
    return {"platform": PLATFORM, "channel": str(channel_id), "message": str(message_id), "kind": kind}


async def _call(coro: object) -> discord.Message:
    """Await a discord.py send or edit; a 429 it could not absorb becomes `RetryLater`."""
    try:
        return await coro  # type: ignore[misc, no-any-return]
    except discord.HTTPException as exc:
        later = retry_later(exc)
        if later is not None:
            raise later from exc
        raise


class _Sink:
    """Placeholder edits and final delivery, whatever the message is edited through."""

    def __init__(self, ctx: SinkContext, channel_id: int) -> None:
        self._ctx = ctx
        self.channel_id = channel_id
        self.message_id: int | None = None
        self._paced: PacedMessage[str] | None = None
        self._last_view: ReplyView | None = None
        self.delivered = False

    @property
    def _budget(self) -> RateBudget:
        return self._ctx.budgets(self.channel_id)

    def _start_pacing(self) -> None:
        self._paced = PacedMessage(
            self._edit,
            min_interval=self._ctx.pacing.edit_interval_s,
            budgets=[self._budget],
            max_final_attempts=self._ctx.pacing.final_attempts,
        )

    async def show(self, view: ReplyView) -> None:
        if self._paced is None:
            raise RuntimeError("show() before open()")
        if not view.final:
            self._last_view = view
            self._paced.submit(interim(view))
            return
        await self._deliver(final_pieces(view))
        self.delivered = True

    async def aclose(self) -> None:
        if self._paced is not None:
            await self._paced.aclose()

    async def _deliver(self, pieces: list[str]) -> None:
        """The first piece replaces the placeholder, the others follow; a piece Discord refuses is split smaller."""
        assert self._paced is not None
        queue = list(pieces)
        first = True
        while queue:
            piece = queue.pop(0)
            try:
                if first:
                    await self._paced.finish(piece)
                else:
                    await self._post_paced(piece)
            except discord.HTTPException as exc:
                if exc.code != INVALID_FORM_BODY or len(piece) < _MIN_PIECE:
                    raise
                log.warning(
                    "Discord refused a %d-character piece (%s); sending it in smaller parts",
                    len(piece),
                    exc.text,
                )
                queue[0:0] = split_markdown(piece, len(piece) // 2)
                continue
            first = False

    async def _post_paced(self, content: str, reply_to: int | None = None) -> discord.Message:
        """A new message in the answer's channel, within the channel's budget, surviving 429s."""
        attempts = 0
        while True:
            attempts += 1
            await self._budget.acquire()
            try:
                return await self._post(content, reply_to)
            except RetryLater as exc:
                if attempts >= self._ctx.pacing.final_attempts:
                    raise
                self._budget.pause(exc.seconds)
                await asyncio.sleep(exc.seconds)

    def _channel(self) -> discord.PartialMessageable:
        return self._ctx.client.get_partial_messageable(self.channel_id)

    async def _channel_send(self, content: str, reply_to: int | None = None) -> discord.Message:
        if reply_to is None:
            return await _call(self._channel().send(content, allowed_mentions=NO_PINGS))
        # a reply shows which question it answers; fail_if_not_exists=False: a deleted question is no error
        reference = discord.MessageReference(
            message_id=reply_to, channel_id=self.channel_id, fail_if_not_exists=False
        )
        return await _call(self._channel().send(content, allowed_mentions=NO_PINGS, reference=reference))

    async def _channel_edit(self, message_id: int, content: str) -> discord.Message:
        message = self._channel().get_partial_message(message_id)
        return await _call(message.edit(content=content, allowed_mentions=NO_PINGS))

    async def salvage(self, message: str) -> None:
        """Best effort after an unexpected failure: tell the user, never raise."""
        try:
            if self.message_id is None:
                await self.refuse(message)
            elif not self.delivered:
                await self._edit(notice(message))
        except Exception:  # already failing; telling the user is a courtesy
            log.warning(
                "could not tell the user about a failure in channel %s", self.channel_id, exc_info=True
            )

    # what differs between the sinks
    async def open(self, view: ReplyView) -> dict[str, str]:
        raise NotImplementedError

    async def refuse(self, message: str) -> None:
        raise NotImplementedError

    async def _edit(self, content: str) -> None:
        raise NotImplementedError

    async def _post(self, content: str, reply_to: int | None = None) -> discord.Message:
        raise NotImplementedError


class MessageSink(_Sink):
    """An answer to a message: in a new thread on it, or as a reply where it was asked."""

    def __init__(
        self,
        ctx: SinkContext,
        *,
        source: discord.Message | None,
        channel_id: int,
        open_thread: bool = False,
        thread_name: str = "",
        message_id: int | None = None,
    ) -> None:
        super().__init__(ctx, channel_id)
        self._source = source
        self._open_thread = open_thread
        self._thread_name = thread_name
        if message_id is not None:  # reopened after a restart: the placeholder exists
            self.message_id = message_id
            self._start_pacing()

    async def open(self, view: ReplyView) -> dict[str, str]:
        reply_to = self._source.id if self._source is not None else None
        if self._open_thread and self._source is not None:
            thread_id = await self._thread_for(self._source)
            if thread_id is not None:
                self.channel_id, reply_to = thread_id, None  # the thread's first message needs no reference
        self._last_view = view
        placeholder = await self._post_paced(interim(view), reply_to)
        self.message_id = placeholder.id
        self._start_pacing()
        return placeholder_ref(self.channel_id, placeholder.id, "message")

    async def refuse(self, message: str) -> None:
        source = self._source
        await self._budget.acquire()
        await self._channel_send(notice(message), reply_to=source.id if source else None)

    async def _thread_for(self, source: discord.Message) -> int | None:
        """Open a thread on the question; None when it cannot be (then the answer is a reply in the channel)."""
        try:
            thread = await source.create_thread(
                name=self._thread_name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return source.id  # someone opened it first; a thread started from a message has its id
            log.warning(
                "could not open a thread on message %s (%s %s: %s); answering in the channel",
                source.id,
                exc.status,
                exc.code,
                exc.text,
            )
            return None
        return thread.id

    async def _edit(self, content: str) -> None:
        assert self.message_id is not None
        try:
            await self._channel_edit(self.message_id, content)
        except discord.NotFound as exc:
            if exc.code != UNKNOWN_MESSAGE:
                raise
            # the placeholder was deleted: the answer goes on in a new message
            log.info("placeholder %s is gone; posting a new message", self.message_id)
            await self._budget.acquire()
            self.message_id = (await self._channel_send(content)).id

    async def _post(self, content: str, reply_to: int | None = None) -> discord.Message:
        return await self._channel_send(content, reply_to)


class InteractionSink(_Sink):
    """An answer to `/moa`: deferred at once, then the original response is edited and followed up."""

    def __init__(self, ctx: SinkContext, interaction: discord.Interaction, received_at: float) -> None:
        super().__init__(ctx, interaction.channel_id or 0)
        self._interaction = interaction
        # monotonic time until which the interaction webhook is used
        self._token_dies = received_at + ctx.pacing.interaction_ttl_s
        self._webhook_until = self._token_dies - ctx.pacing.token_margin_s
        self._use_webhook = True
        self._ack = asyncio.Lock()
        self._io = asyncio.Lock()  # edits and the handover to channel messages never interleave
        self._handover_task: asyncio.Task[None] | None = None

    @property
    def webhook_usable(self) -> bool:
        return self._use_webhook and time.monotonic() < self._webhook_until

    async def ensure_deferred(self) -> None:
        """Acknowledge the interaction (a public "thinking…" response) unless that is done already."""
        async with self._ack:
            if self._interaction.response.is_done():
                return
            callback = await self._interaction.response.defer(thinking=True)
            if callback is not None and callback.message_id is not None:
                self.message_id = callback.message_id

    async def defer_by(self, delay: float) -> None:
        """Discord drops an interaction not acknowledged within 3 s: defer by `delay` whatever else is slow."""
        await asyncio.sleep(delay)
        try:
            await self.ensure_deferred()
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s %s", self._interaction.id, exc.status, exc.text)

    async def open(self, view: ReplyView) -> dict[str, str]:
        await self.ensure_deferred()
        if self.message_id is None:
            self.message_id = (await self._interaction.original_response()).id
        self._last_view = view
        self._start_pacing()
        assert self._paced is not None
        self._paced.submit(interim(view))
        self._handover_task = asyncio.create_task(self._handover_in_time(), name="discord-handover")
        return placeholder_ref(self.channel_id, self.message_id, "interaction")

    async def refuse(self, message: str) -> None:
        async with self._ack:
            if not self._interaction.response.is_done():
                await self._interaction.response.send_message(
                    notice(message), ephemeral=True, allowed_mentions=NO_PINGS
                )
                return
        # deferred already (something was slow): the "thinking…" response is the one reply there is
        await _call(
            self._interaction.edit_original_response(content=notice(message), allowed_mentions=NO_PINGS)
        )

    async def aclose(self) -> None:
        task, self._handover_task = self._handover_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await super().aclose()

    async def show(self, view: ReplyView) -> None:
        if view.final and self._handover_task is not None:
            self._handover_task.cancel()  # the final delivery hands over by itself if it has to
        await super().show(view)

    async def _handover_in_time(self) -> None:
        """Move a slow answer to a channel message while the token can still mark the original as continued."""
        await asyncio.sleep(max(0.0, self._webhook_until - time.monotonic()))
        async with self._io:
            if not self._use_webhook:
                return
            await self._budget.acquire()
            content = interim(self._last_view) if self._last_view else "…"
            try:
                await self._hand_over(content, token_alive=time.monotonic() < self._token_dies)
            except (discord.HTTPException, RetryLater) as exc:
                # e.g. no permission to post in the channel; the next edit tries again, the final one reports it
                log.warning(
                    "interaction %s: could not continue in the channel: %r", self._interaction.id, exc
                )

    async def _hand_over(self, content: str, *, token_alive: bool) -> None:
        """From here on the answer is an ordinary message in the channel, replying to the original response.

        The original is marked as continued, through the interaction webhook while its token works, else as the
        bot's own message in the channel, so it never stays "thinking".
        """
        original = self.message_id
        assert original is not None
        marked = handover(self._last_view)
        try:
            if token_alive:
                await self._interaction.edit_original_response(content=marked, allowed_mentions=NO_PINGS)
            else:
                await self._channel_edit(original, marked)
        except (discord.HTTPException, RetryLater) as exc:
            log.info("could not mark interaction %s as continued: %r", self._interaction.id, exc)
        await self._budget.acquire()
        self.message_id = (await self._channel_send(content, reply_to=original)).id
        self._use_webhook = False
        log.info("interaction %s: the answer continues in message %s", self._interaction.id, self.message_id)

    async def _edit(self, content: str) -> None:
        async with self._io:
            if self._use_webhook and not self.webhook_usable:
                # past the margin: the token should still work for the last edit of the original
                await self._hand_over(content, token_alive=time.monotonic() < self._token_dies)
                return
            if not self._use_webhook:
                assert self.message_id is not None
                await self._channel_edit(self.message_id, content)
                return
            try:
                await _call(
                    self._interaction.edit_original_response(content=content, allowed_mentions=NO_PINGS)
                )
            except discord.HTTPException as exc:
                if exc.code not in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK, UNKNOWN_MESSAGE):
                    raise
                # the token died early, or the response was deleted: go on as a channel message
                log.info(
                    "interaction %s: webhook gone (%s); continuing in the channel",
                    self._interaction.id,
                    exc.code,
                )
                await self._hand_over(content, token_alive=False)

    async def _post(self, content: str, reply_to: int | None = None) -> discord.Message:
        if self.webhook_usable:
            try:
                return await _call(
                    self._interaction.followup.send(content, wait=True, allowed_mentions=NO_PINGS)
                )
            except discord.HTTPException as exc:
                if exc.code not in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK):
                    raise
                self._use_webhook = False
        return await self._channel_send(content)
