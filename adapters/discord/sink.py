"""One answer on Discord, on the shared delivery core (`adapters.delivery`).

`DiscordSink` is what both kinds of answer share: interim views as paced edits, the final answer split across
messages with the footer as subtext on the last, failures as one notice. Each message is an `Outgoing`, content and
buttons: Stop while the answer is written, feedback and drafts under its last message once done. `MessageSink`
answers a message (mention, knowledge channel, thread follow-up, DM): it opens a thread when asked to and posts the
placeholder there; crash recovery reopens one from (channel, message) ids. The `/moa` sink, with its 15-minute
token, is in `interaction.py`.

Every create and edit in a channel spends that channel's budget (`pacing.ChannelBudgets`), shared by every answer
there; `allowed_mentions` pings nobody on every call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import discord

from adapters.delivery import Delivery, Surface
from adapters.discord.api import INVALID_FORM_BODY, PLATFORM, THREAD_ALREADY_EXISTS, UNKNOWN_MESSAGE, write
from adapters.discord.controls import NO_CONTROLS, Controls, as_view, on_answer, while_writing
from adapters.discord.formatting import answer_pieces, failure, interim, notice, with_footer
from adapters.discord.pacing import ChannelBudgets, DiscordPacing
from moa.conversation import ReplyView

log = logging.getLogger("adapters.discord")

NO_PINGS = discord.AllowedMentions.none()
REACTIONS = {"shrug": "🤷"}  # the core names a reaction; Discord takes the emoji itself
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day without messages, then the thread is archived


@dataclass(frozen=True)
class Outgoing:
    """One message as the adapter writes it: its content and the buttons under it."""

    content: str
    controls: Controls = NO_CONTROLS

    def for_send(self) -> dict[str, Any]:
        """discord.py's arguments for a new message (a new message without buttons takes no `view`)."""
        view = as_view(self.controls)
        return {"content": self.content, "allowed_mentions": NO_PINGS, **({"view": view} if view else {})}

    def for_edit(self) -> dict[str, Any]:
        """discord.py's arguments for an edit; its buttons replace the message's (`view=None` removes them)."""
        return {"content": self.content, "allowed_mentions": NO_PINGS, "view": as_view(self.controls)}


def in_progress(view: ReplyView) -> Outgoing:
    """An answer still being written: its progress or preview, with Stop."""
    return Outgoing(interim(view), while_writing(view))


class SinkContext:
    """What every sink of one adapter shares: the client, the pacing settings, the channels' budgets."""

    def __init__(self, client: discord.Client, pacing: DiscordPacing, budgets: ChannelBudgets) -> None:
        self.client = client
        self.pacing = pacing
        self.budgets = budgets


def placeholder_ref(channel_id: int, message_id: int, kind: str) -> dict[str, str]:
    """What the answerer stores to find the placeholder again after a crash."""
    return {"platform": PLATFORM, "channel": str(channel_id), "message": str(message_id), "kind": kind}


def refused_as_too_long(error: Exception) -> bool:
    return isinstance(error, discord.HTTPException) and error.code == INVALID_FORM_BODY


class ChannelMessages:
    """The `Surface[Outgoing]` of a channel or thread: the bot's own messages there, edited as such."""

    def __init__(self, ctx: SinkContext, channel_id: int, *, reply_to: int | None = None) -> None:
        self.ctx = ctx
        self.channel_id = channel_id
        self.reply_to = reply_to  # the first message posted replies to it (a reply shows which question)

    def channel(self) -> discord.PartialMessageable:
        return self.ctx.client.get_partial_messageable(self.channel_id)

    async def post(self, message: Outgoing) -> str:
        reply_to, self.reply_to = self.reply_to, None
        if reply_to is None:
            sent = await write(self.channel().send(**message.for_send()))
        else:
            # fail_if_not_exists=False: a question deleted meanwhile is no error
            reference = discord.MessageReference(
                message_id=reply_to, channel_id=self.channel_id, fail_if_not_exists=False
            )
            sent = await write(self.channel().send(**message.for_send(), reference=reference))
        return str(sent.id)

    async def edit(self, message_id: str, message: Outgoing) -> None:
        partial = self.channel().get_partial_message(int(message_id))
        await write(partial.edit(**message.for_edit()))

    def too_long(self, error: Exception) -> bool:
        return refused_as_too_long(error)

    def gone(self, error: Exception) -> bool:
        return isinstance(error, discord.NotFound) and error.code == UNKNOWN_MESSAGE


class DiscordSink:
    """Views to messages, through a `Delivery` on some surface."""

    def __init__(self, ctx: SinkContext, channel_id: int, surface: Surface[Outgoing]) -> None:
        self._ctx = ctx
        self.channel_id = channel_id
        self.delivery: Delivery[Outgoing] = Delivery(surface, ctx.budgets.budgets(channel_id))
        self.delivered = False
        self._shown: Outgoing | None = None

    async def show(self, view: ReplyView) -> None:
        if not view.final:
            message = in_progress(view)
            if message != self._shown:  # an edit that changes nothing would only spend the channel's budget
                self._shown = message
                self.delivery.interim(message)
            return
        if view.has_answer:
            # the buttons go under the last piece; the first replaces the placeholder, and its Stop with it
            controls = on_answer(view)
            await self.delivery.deliver(
                answer_pieces(view),
                lambda piece, last: Outgoing(with_footer(piece, view.footer), controls) if last else Outgoing(piece),
            )
        else:
            await self.delivery.replace(Outgoing(failure(view)))
        self.delivered = True

    async def refuse(self, message: str) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.delivery.aclose()

    async def salvage(self, message: str) -> None:
        """Best effort after an unexpected failure: tell the user, never raise."""
        try:
            if self.delivery.placeholder is None:
                await self.refuse(message)
            elif not self.delivered:
                await self.delivery.replace(Outgoing(notice(message)))
        except Exception:  # already failing; telling the user is a courtesy
            log.warning(
                "could not tell the user about a failure in channel %s", self.channel_id, exc_info=True
            )


class MessageSink(DiscordSink):
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
        self._messages = ChannelMessages(ctx, channel_id, reply_to=source.id if source is not None else None)
        super().__init__(ctx, channel_id, self._messages)
        self._source = source
        self._open_thread = open_thread
        self._thread_name = thread_name
        if message_id is not None:  # reopened after a restart: the placeholder exists
            self.delivery.attach(str(message_id))

    async def open(self, view: ReplyView) -> dict[str, str]:
        if self._open_thread and self._source is not None:
            thread_id = await self._thread_for(self._source)
            if thread_id is not None:
                # the thread's first message needs no reference, and the thread has a budget of its own
                self.channel_id = self._messages.channel_id = thread_id
                self._messages.reply_to = None
                self.delivery = Delivery(self._messages, self._ctx.budgets.budgets(thread_id))
        self._shown = in_progress(view)
        placeholder = await self.delivery.open(self._shown)
        return placeholder_ref(self.channel_id, int(placeholder), "message")

    async def refuse(self, message: str) -> None:
        await self.delivery.send(lambda: self._messages.post(Outgoing(notice(message))))

    async def react(self, name: str) -> None:
        """A reaction on the question where the core posts no reply (🤷: seen, but no team source matched).

        Best effort: a channel where the bot may not add reactions gets nothing, and the log says why.
        """
        emoji = REACTIONS.get(name)
        if self._source is None or emoji is None:
            log.warning("no reaction %r on a Discord message", name)
            return
        try:
            await self._source.add_reaction(emoji)
        except discord.HTTPException as exc:
            log.warning("could not react on message %s (%s %s: %s)", self._source.id, exc.status, exc.code,
                        exc.text)

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
