"""An answer to `/moa`: deferred at once, then the command's reply is edited and followed up, until its token dies.

Discord lets a bot edit an interaction's reply and send follow-ups for 15 minutes only. `InteractionReply` is the
`Surface` that knows it: while the token works, edits go to the original reply and new pieces are follow-ups; a
little before the token dies (or as soon as Discord says it is dead), the answer hands over to an ordinary channel
message that replies to the original, which is marked "continued in the next message" so it never stays
"thinking". From then on everything is a channel message, edited as the bot's own.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord

from adapters.discord.api import INVALID_WEBHOOK_TOKEN, UNKNOWN_MESSAGE, UNKNOWN_WEBHOOK, write
from adapters.discord.formatting import handover, notice
from adapters.discord.sink import (
    NO_PINGS,
    ChannelMessages,
    DiscordSink,
    Outgoing,
    SinkContext,
    in_progress,
    placeholder_ref,
    refused_as_too_long,
)
from adapters.pacing import RetryLater
from moa.conversation import ReplyView

log = logging.getLogger("adapters.discord")

_TOKEN_DEAD = (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK, UNKNOWN_MESSAGE)


class InteractionReply:
    """The `Surface[Outgoing]` of a slash command's answer: its webhook while the token works, then channel
    messages."""

    def __init__(self, ctx: SinkContext, interaction: discord.Interaction, received_at: float) -> None:
        self.ctx = ctx
        self.interaction = interaction
        self.channel = ChannelMessages(ctx, interaction.channel_id or 0)
        self.token_dies = received_at + ctx.pacing.interaction_ttl_s
        self.webhook_until = self.token_dies - ctx.pacing.token_margin_s
        self.using_webhook = True
        self.message_id: int | None = None  # the message the answer is in: the original reply, later a channel one
        self.last_view: ReplyView | None = None  # what the handover marks the original with
        self.io = asyncio.Lock()  # edits and the handover never interleave

    @property
    def webhook_usable(self) -> bool:
        return self.using_webhook and time.monotonic() < self.webhook_until

    async def post(self, message: Outgoing) -> str:
        if self.webhook_usable:
            try:
                sent = await write(self.interaction.followup.send(**message.for_send(), wait=True))
                return str(sent.id)
            except discord.HTTPException as exc:
                if exc.code not in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK):
                    raise
                self.using_webhook = False
        return await self.channel.post(message)

    async def edit(self, message_id: str, message: Outgoing) -> None:
        """Edits the message the answer is in now, whatever `message_id` the delivery core remembers."""
        async with self.io:
            if self.using_webhook and not self.webhook_usable:
                # past the margin: the token should still work for the last edit of the original
                await self.hand_over(message, token_alive=time.monotonic() < self.token_dies)
                return
            if not self.using_webhook:
                assert self.message_id is not None
                await self.channel.edit(str(self.message_id), message)
                return
            try:
                await write(self.interaction.edit_original_response(**message.for_edit()))
            except discord.HTTPException as exc:
                if exc.code not in _TOKEN_DEAD:
                    raise
                # the token died early, or the reply was deleted: go on as a channel message
                log.info("interaction %s: webhook gone (%s); continuing in the channel", self.interaction.id, exc.code)
                await self.hand_over(message, token_alive=False)

    def too_long(self, error: Exception) -> bool:
        return refused_as_too_long(error)

    def gone(self, error: Exception) -> bool:
        return False  # a dead token or a deleted reply is handed over in `edit` itself

    async def hand_over(self, message: Outgoing, *, token_alive: bool) -> None:
        """From here on the answer is an ordinary message in the channel, replying to the original reply.

        The original is marked as continued (its buttons go with the answer), through the interaction webhook while
        its token works, else as the bot's own message in the channel. Called with `io` held.
        """
        original = self.message_id
        assert original is not None
        marked = Outgoing(handover(self.last_view))
        try:
            if token_alive:
                await write(self.interaction.edit_original_response(**marked.for_edit()))
            else:
                await self.channel.edit(str(original), marked)
        except (discord.HTTPException, RetryLater) as exc:
            log.info("could not mark interaction %s as continued: %r", self.interaction.id, exc)
        await self.ctx.budgets(self.channel.channel_id).acquire()
        self.channel.reply_to = original
        self.message_id = int(await self.channel.post(message))
        self.using_webhook = False
        log.info("interaction %s: the answer continues in message %s", self.interaction.id, self.message_id)

    async def hand_over_in_time(self) -> None:
        """Move a slow answer to a channel message while the token can still mark the original as continued."""
        await asyncio.sleep(max(0.0, self.webhook_until - time.monotonic()))
        async with self.io:
            if not self.using_webhook:
                return
            await self.ctx.budgets(self.channel.channel_id).acquire()
            message = in_progress(self.last_view) if self.last_view else Outgoing("…")
            try:
                await self.hand_over(message, token_alive=time.monotonic() < self.token_dies)
            except (discord.HTTPException, RetryLater) as exc:
                # e.g. no permission to post in the channel; the next edit tries again, the final one reports it
                log.warning("interaction %s: could not continue in the channel: %r", self.interaction.id, exc)


class InteractionSink(DiscordSink):
    """An answer to `/moa`: deferred at once, then the original response is edited and followed up."""

    def __init__(self, ctx: SinkContext, interaction: discord.Interaction, received_at: float) -> None:
        self._reply = InteractionReply(ctx, interaction, received_at)
        super().__init__(ctx, interaction.channel_id or 0, self._reply)
        self._interaction = interaction
        self._ack = asyncio.Lock()
        self._handover_task: asyncio.Task[None] | None = None

    async def ensure_deferred(self) -> None:
        """Acknowledge the interaction (a public "thinking…" response) unless that is done already."""
        async with self._ack:
            if self._interaction.response.is_done():
                return
            callback = await self._interaction.response.defer(thinking=True)
            if callback is not None and callback.message_id is not None:
                self._reply.message_id = callback.message_id

    async def defer_by(self, delay: float) -> None:
        """Discord drops an interaction not acknowledged within 3 s: defer by `delay` whatever else is slow."""
        await asyncio.sleep(delay)
        try:
            await self.ensure_deferred()
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s %s", self._interaction.id, exc.status, exc.text)

    async def open(self, view: ReplyView) -> dict[str, str]:
        await self.ensure_deferred()
        if self._reply.message_id is None:
            self._reply.message_id = (await self._interaction.original_response()).id
        self.delivery.attach(str(self._reply.message_id))
        self._reply.last_view = view
        self.delivery.interim(in_progress(view))
        self._handover_task = asyncio.create_task(self._reply.hand_over_in_time(), name="discord-handover")
        return placeholder_ref(self.channel_id, self._reply.message_id, "interaction")

    async def show(self, view: ReplyView) -> None:
        if view.final and self._handover_task is not None:
            self._handover_task.cancel()  # the final delivery hands over by itself if it has to
        if not view.final:
            self._reply.last_view = view
        await super().show(view)

    async def refuse(self, message: str) -> None:
        async with self._ack:
            if not self._interaction.response.is_done():
                await self._interaction.response.send_message(
                    notice(message), ephemeral=True, allowed_mentions=NO_PINGS
                )
                return
        # deferred already (something was slow): the "thinking…" response is the one reply there is
        await write(self._interaction.edit_original_response(content=notice(message), allowed_mentions=NO_PINGS))

    async def aclose(self) -> None:
        task, self._handover_task = self._handover_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await super().aclose()
