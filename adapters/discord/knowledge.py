"""Team knowledge from Discord: knowledge channels indexed as people write there, their history backfilled,
and ✅ reactions that verify the bot's answers. Everything goes through the core's `Librarian`; nothing here
touches storage.

- Live: a message a person posts in a knowledge channel or in one of its public threads is indexed as it
  arrives, with its text-like files (size-checked, then downloaded from Discord's CDN with the bot's session);
  an edit indexes it again; a deletion (alone, in a moderator's bulk delete, or with its thread) removes it at
  once. Events of one message are handled in the order they came, so a deletion never loses a race with a slow
  download. Private threads are left out: fewer people read them than their channel, and passages are kept per
  channel.
- Backfill: each knowledge channel's history, newest first, back `backfill_days`, then its public threads (the
  guild's active ones, then the archived ones, most recently archived first), at `DiscordPacing.backfill_per_s`
  reads per second for all channels together, so that answers written meanwhile are never starved. The cursor
  is saved after every page: a restart resumes there. A finished channel is not read again, except its newest
  pages (and its active threads'), to catch up on what was written while the bot was away, until a page
  already indexed.
- Privacy: a channel @everyone cannot read is private, and its passages are only for questions asked there
  (the rule is the core's). A channel whose privacy changed is purged and read again, at once or at the next
  start.
- Verified answers: a ✅ on one of the bot's answers (its first message) by the asker or a curator.

Sources are "discord:GUILD:CHANNEL:MESSAGE", CHANNEL being where the message is (a thread's id for a reply in
a thread), so that a delete event, which carries only ids, finds its message; a file adds "/file:ATTACHMENT".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiohttp
import discord

from adapters.discord.addressing import is_from_a_person
from adapters.discord.api import PLATFORM, resolved_channel
from adapters.discord.pacing import DiscordPacing
from adapters.pacing import RateBudget
from adapters.tasks import TaskOwner
from moa.errors import StorageError
from moa.knowledge import Document, Kind, Librarian, Visibility
from moa.knowledge.librarian import Verification
from moa.knowledge.model import Cursor, Upsert
from moa.policy import TurnLocks

log = logging.getLogger("adapters.discord")

T = TypeVar("T")

DAY_S = 86400.0
PAGE = 100  # messages per history read: Discord's most
THREAD_PAGE = 50  # archived threads per read
READ_ATTEMPTS = 4  # a backfill read that keeps failing for now stops the backfill until the next start
VERIFY = "✅"
CHANNEL_STAGE, THREAD_STAGE = "before", "threads"  # a cursor is "before:MESSAGE_ID" or "threads:ARCHIVED_AT"


@dataclass(frozen=True)
class Place:
    """Where a message sits, as the index keeps it: its knowledge channel (a thread's parent), its thread."""

    guild: int
    channel: int
    private: bool  # the channel is one @everyone cannot read
    thread: int | None = None

    def source(self, message_id: int) -> str:
        return message_source(self.guild, self.thread or self.channel, message_id)


def channel_prefix(guild: int, channel: int) -> str:
    """What the sources of a channel's (or a thread's) own messages start with."""
    return f"{PLATFORM}:{guild}:{channel}:"


def message_source(guild: int, channel: int, message: int) -> str:
    return f"{channel_prefix(guild, channel)}{message}"


def jump_url(guild: int, channel: int, message: int) -> str:
    return f"https://discord.com/channels/{guild}/{channel}/{message}"


def is_private(channel: discord.abc.GuildChannel) -> bool:
    """A channel @everyone cannot read: only its members may see what comes from it."""
    return not channel.permissions_for(channel.guild.default_role).view_channel


def document(message: discord.Message, place: Place) -> Document:
    """A message as the index keeps it: its text with mentions as names, author, date and jump URL."""
    return Document(
        source=place.source(message.id),
        kind=Kind.MESSAGE,
        platform=PLATFORM,
        workspace=str(place.guild),
        channel=str(place.channel),
        text=message.clean_content,
        visibility=Visibility.PRIVATE if place.private else Visibility.PUBLIC,
        author=message.author.display_name,
        created_at=message.created_at.timestamp(),
        link=message.jump_url,
        thread=str(place.thread or ""),
    )


async def _nothing() -> None:
    return None


class DiscordKnowledge:
    """The knowledge channels of one connected client: live indexing, backfill tasks, verifications."""

    def __init__(
        self,
        client: discord.Client,
        librarian: Librarian,
        channels: Collection[str],
        *,
        backfill_days: int,
        pacing: DiscordPacing,
        events: TaskOwner,
        background: TaskOwner,
        read_timeout_s: float = 30.0,
        file_timeout_s: float = 60.0,
    ) -> None:
        """`events`: owns the tasks of gateway events (the adapter counts them as in progress); `background`:
        owns the backfills."""
        self._client = client
        self._librarian = librarian
        self.channels = frozenset(channels)
        self._backfill_days = backfill_days
        self._pacing = pacing
        self._events = events
        self._background = background
        self._read_timeout_s = read_timeout_s
        self._file_timeout_s = file_timeout_s
        self._reads = RateBudget(1, 1.0 / pacing.backfill_per_s, burst=1)
        self._turns = TurnLocks()  # one message's create, edits and delete, in the order they came
        self._backfills: dict[str, asyncio.Task[Any]] = {}
        # What live events wrote or removed while a backfill runs: a page read before them must not undo them.
        self._running = 0
        self._fresh: set[str] = set()
        self._gone_threads: set[int] = set()

    # --- where a message belongs ------------------------------------------------------------------------

    def place(self, channel: object) -> Place | None:
        """The knowledge channel a message posted in `channel` belongs to; None for any other channel and for
        private threads."""
        if isinstance(channel, discord.Thread):
            if channel.is_private() or str(channel.parent_id) not in self.channels:
                return None
            parent = channel.parent
            return Place(
                channel.guild.id, channel.parent_id, parent is None or is_private(parent), channel.id
            )
        if isinstance(channel, discord.abc.GuildChannel) and str(channel.id) in self.channels:
            return Place(channel.guild.id, channel.id, is_private(channel))
        return None

    def _touch(self, *sources: str) -> None:
        if self._running:
            self._fresh.update(sources)

    # --- live: messages, edits, deletions -------------------------------------------------------------

    async def message_created(self, message: discord.Message, channel: object) -> str:
        """Index a person's new message when it belongs to a knowledge channel; its source, else "".

        Awaited before the message is answered, so that its files can answer it; a database that fails here
        is logged, and the question is answered all the same.
        """
        place = self.place(channel)
        if place is None:
            return ""
        indexed = document(message, place)
        async with self._turns.turn(message.id, _nothing):
            self._touch(indexed.source)
            try:
                if indexed.text.strip():
                    await self._librarian.index_message(indexed)
                await self._files(message, indexed)
            except StorageError as exc:
                log.error("knowledge: could not index message %s: %s", message.id, exc)
        return indexed.source

    def on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        # the bot edits its answers all the time, people edit elsewhere: dropped before any task is made
        message = payload.message
        if payload.guild_id is None or not is_from_a_person(message):
            return
        if (
            not isinstance(message.channel, discord.PartialMessageable)
            and self.place(message.channel) is None
        ):
            return  # a channel discord.py knows, not a knowledge channel (an unknown thread is looked up)
        self._events.spawn(self._edited(message), f"discord-edit-{payload.message_id}")

    async def _edited(self, message: discord.Message) -> None:
        async with self._turns.turn(message.id, _nothing):
            place = self.place(await resolved_channel(self._client, message))
            if place is None:
                return
            indexed = document(message, place)
            self._touch(indexed.source)
            await self._librarian.index_message(indexed)  # an edit down to nothing removes it
            await self._files(message, indexed, edited=True)

    def on_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            ids = (payload.message_id,)
            self._events.spawn(
                self._deleted(payload.guild_id, payload.channel_id, ids), f"discord-delete-{ids[0]}"
            )

    def on_bulk_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            ids = tuple(sorted(payload.message_ids))
            name = f"discord-bulk-delete-{payload.channel_id}"
            self._events.spawn(self._deleted(payload.guild_id, payload.channel_id, ids), name)

    async def _deleted(self, guild: int, channel: int, message_ids: Sequence[int]) -> None:
        # every deleted message, whatever its channel: checking would cost as much as deleting, and could miss
        for message_id in message_ids:
            source = message_source(guild, channel, message_id)
            async with self._turns.turn(message_id, _nothing):
                self._touch(source)
                await self._librarian.delete(source)

    def on_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        if str(payload.parent_id) in self.channels:
            name = f"discord-thread-delete-{payload.thread_id}"
            self._events.spawn(self._thread_deleted(payload.guild_id, payload.thread_id), name)

    async def _thread_deleted(self, guild: int, thread: int) -> None:
        if self._running:
            self._gone_threads.add(thread)
        removed = 0
        for info in await self._librarian.documents(channel_prefix(guild, thread)):
            removed += await self._librarian.delete(info.source)
        log.info("knowledge: thread %s deleted; %d documents removed", thread, removed)

    # --- files --------------------------------------------------------------------------------------------

    async def _files(self, message: discord.Message, indexed: Document, *, edited: bool = False) -> None:
        """Index the message's files not indexed yet; after an edit, drop those it no longer has."""
        if not message.attachments and not edited:
            return
        prefix = f"{indexed.source}/file:"
        known = {info.source for info in await self._librarian.documents(prefix)}
        current = set()
        for attachment in message.attachments:
            source = f"{prefix}{attachment.id}"
            current.add(source)
            if source not in known:
                await self._file(
                    attachment, replace(indexed, source=source, kind=Kind.FILE, title=attachment.filename)
                )
        for gone in known - current:
            await self._librarian.delete(gone)

    async def _file(self, attachment: discord.Attachment, indexed: Document) -> None:
        refused = self._librarian.accepts_file(attachment.filename, attachment.size)
        if refused is not None:  # known before a byte is downloaded
            log.info(
                "knowledge: skipped file %r in %s: %s", attachment.filename, indexed.channel, refused.reason
            )
            return
        try:
            async with asyncio.timeout(self._file_timeout_s):
                data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "knowledge: could not download file %r in %s (%s); not indexed",
                attachment.filename,
                indexed.channel,
                exc,
            )
            return
        await self._librarian.index_file(indexed, data)

    # --- verified answers -----------------------------------------------------------------------------------

    def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        bot = self._client.user
        if (
            str(payload.emoji) != VERIFY
            or payload.guild_id is None
            or bot is None
            or payload.user_id == bot.id
        ):
            return
        if payload.event_type == "REACTION_ADD" and payload.message_author_id not in (None, bot.id):
            return  # a ✅ on someone else's message
        self._events.spawn(self._reacted(payload), f"discord-reaction-{payload.message_id}")

    async def _reacted(self, payload: discord.RawReactionActionEvent) -> None:
        channel, message, user = str(payload.channel_id), str(payload.message_id), str(payload.user_id)
        if payload.event_type == "REACTION_REMOVE":
            outcome = await self._librarian.unverify(PLATFORM, channel, message, user)
        else:
            private, scope = await self._scope(payload.channel_id)
            link = jump_url(payload.guild_id or 0, payload.channel_id, payload.message_id)
            outcome = await self._librarian.verify(
                PLATFORM, channel, message, user, private=private, scope_channel=scope, link=link
            )
        if outcome is Verification.NOT_ALLOWED:
            log.info(
                "knowledge: %s's ✅ on message %s ignored: neither the asker nor a curator", user, message
            )

    async def _scope(self, channel_id: int) -> tuple[bool, str]:
        """(private, the channel whose questions may see a verified answer) for an answer in `channel_id`."""
        channel: object = self._client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self._client.fetch_channel(channel_id)
            except discord.HTTPException:
                return True, str(channel_id)  # unknown: the narrowest audience
        if isinstance(channel, discord.Thread):
            parent = channel.parent
            if channel.is_private() or parent is None:
                return True, str(channel.id)
            return is_private(parent), str(parent.id)
        if isinstance(channel, discord.abc.GuildChannel):
            return is_private(channel), str(channel.id)
        return True, str(channel_id)

    # --- backfill -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Read every knowledge channel's history in the background (or catch up with it)."""
        for channel_id in sorted(self.channels):
            self._start_backfill(channel_id)

    def _start_backfill(self, channel_id: str) -> None:
        task = self._background.spawn(self._backfill(channel_id), f"discord-backfill-{channel_id}")
        if task is not None:
            self._backfills[channel_id] = task
            task.add_done_callback(lambda done: self._backfill_ended(channel_id, done))

    def _backfill_ended(self, channel_id: str, task: asyncio.Task[Any]) -> None:
        if self._backfills.get(channel_id) is task:
            del self._backfills[channel_id]

    def on_channel_update(self, before: discord.abc.GuildChannel, after: discord.abc.GuildChannel) -> None:
        """A knowledge channel turned private (or public): what was indexed is read again, with its privacy."""
        if str(after.id) not in self.channels or is_private(before) == is_private(after):
            return
        log.info(
            "knowledge: channel %s is now %s; indexing it again",
            after.id,
            "private" if is_private(after) else "public",
        )
        running = self._backfills.pop(str(after.id), None)
        if running is not None:
            running.cancel()
        self._start_backfill(str(after.id))

    async def _backfill(self, channel_id: str) -> None:
        channel = self._client.get_channel(int(channel_id))
        if not isinstance(channel, discord.abc.GuildChannel):
            log.warning(
                "knowledge: channel %s is not a Discord channel the bot can see (is the bot in its server?); "
                "only live messages there will be indexed",
                channel_id,
            )
            return
        place = Place(channel.guild.id, channel.id, is_private(channel))
        self._running += 1
        try:
            cursor = await self._cursor(place)
            if cursor.done:
                await self._catch_up(channel, place)
            else:
                await self._read_history(channel, place, cursor)
        except discord.Forbidden as exc:
            log.warning(
                "knowledge: cannot read the history of channel %s (%s): give the bot View Channel and "
                "Read Message History there",
                channel_id,
                exc.text,
            )
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "knowledge: backfill of channel %s stopped (%s); it resumes where it stopped at the next "
                "start",
                channel_id,
                exc,
            )
        finally:
            self._running -= 1
            if not self._running:
                self._fresh.clear()
                self._gone_threads.clear()

    async def _cursor(self, place: Place) -> Cursor:
        """The channel's cursor; a fresh one when nothing was read yet, or when its privacy changed since."""
        guild, channel = str(place.guild), str(place.channel)
        cursor = await self._librarian.cursor(PLATFORM, guild, channel)
        wanted = Visibility.PRIVATE if place.private else Visibility.PUBLIC
        indexed = await self._librarian.documents(channel_prefix(place.guild, place.channel))
        if any(info.visibility is not wanted for info in indexed):
            await self._librarian.purge_channel(PLATFORM, guild, channel)
            cursor = None
        return cursor or Cursor(PLATFORM, guild, channel)

    async def _read_history(self, channel: discord.abc.GuildChannel, place: Place, cursor: Cursor) -> None:
        cutoff = time.time() - self._backfill_days * DAY_S
        stage, _, mark = cursor.cursor.partition(":")
        progress = _Progress(self._librarian, cursor)
        log.info(
            "knowledge: backfill of channel %s %s", place.channel, "resumes" if cursor.cursor else "starts"
        )
        if stage in ("", CHANNEL_STAGE):
            if isinstance(channel, discord.abc.Messageable):

                async def page_read(page: list[discord.Message]) -> bool:
                    await progress.page(
                        page, await self._index_page(page, place), f"{CHANNEL_STAGE}:{page[-1].id}"
                    )
                    return True

                await self._walk(channel, int(mark) if mark else None, cutoff, page_read)
            await progress.save(f"{THREAD_STAGE}:")
            mark = ""
        if isinstance(channel, (discord.TextChannel, discord.ForumChannel)):
            await self._read_threads(channel, place, cutoff, mark, progress)
        await progress.save("", done=True)

    async def _read_threads(
        self,
        channel: discord.TextChannel | discord.ForumChannel,
        place: Place,
        cutoff: float,
        mark: str,
        progress: _Progress,
    ) -> None:
        """The channel's public threads: the active ones (unless resuming among the archived), then the
        archived ones, most recently archived first, until one archived before `cutoff` (nothing in it is
        newer)."""
        if not mark:
            active = await self._read(channel.guild.active_threads)
            for thread in active:
                if thread.parent_id == channel.id and not thread.is_private():
                    await self._read_thread(thread, place, cutoff, progress)
            await progress.save(f"{THREAD_STAGE}:")
        before = dt.datetime.fromisoformat(mark) if mark else None
        while True:
            threads = await self._read(_archived_page, channel, before)
            for thread in threads:
                archived_at = thread.archive_timestamp
                if archived_at.timestamp() < cutoff:
                    return
                await self._read_thread(thread, place, cutoff, progress)
                await progress.save(f"{THREAD_STAGE}:{archived_at.isoformat()}")
            if len(threads) < THREAD_PAGE:
                return
            before = threads[-1].archive_timestamp

    async def _read_thread(
        self, thread: discord.Thread, place: Place, cutoff: float, progress: _Progress
    ) -> None:
        inside = replace(place, thread=thread.id)

        async def page_read(page: list[discord.Message]) -> bool:
            if thread.id in self._gone_threads:
                return False
            progress.count(page, await self._index_page(page, inside))
            return True

        try:
            await self._walk(thread, None, cutoff, page_read)
        except discord.NotFound:
            log.info("knowledge: thread %s was deleted while it was read", thread.id)

    async def _catch_up(self, channel: discord.abc.GuildChannel, place: Place) -> None:
        """Index what was written while the bot was away: the newest pages of the channel and of its active
        threads, until a page already indexed."""
        cutoff = time.time() - self._backfill_days * DAY_S
        added = 0

        def until_known(at: Place) -> Callable[[list[discord.Message]], Awaitable[bool]]:
            async def page_read(page: list[discord.Message]) -> bool:
                nonlocal added
                outcomes = await self._index_page(page, at)
                added += sum(outcome is Upsert.ADDED for outcome in outcomes)
                return Upsert.UNCHANGED not in outcomes

            return page_read

        if isinstance(channel, discord.abc.Messageable):
            await self._walk(channel, None, cutoff, until_known(place))
        if isinstance(channel, (discord.TextChannel, discord.ForumChannel)):
            for thread in await self._read(channel.guild.active_threads):
                if thread.parent_id == channel.id and not thread.is_private():
                    await self._walk(thread, None, cutoff, until_known(replace(place, thread=thread.id)))
        if added:
            log.info(
                "knowledge: channel %s caught up: %d messages written while the bot was away",
                place.channel,
                added,
            )

    async def _walk(
        self,
        messageable: discord.abc.Messageable,
        before: int | None,
        cutoff: float,
        page_read: Callable[[list[discord.Message]], Awaitable[bool]],
    ) -> None:
        """Read a channel's or thread's messages newest first, a page at a time, back to `cutoff` (unix time),
        while `page_read` says to go on."""
        while True:
            page = await self._read(_history_page, messageable, before)
            kept = [m for m in page if m.created_at.timestamp() >= cutoff]
            if kept and not await page_read(kept):
                return
            if len(kept) < PAGE:
                return
            before = kept[-1].id

    async def _read(self, fetch: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """One backfill read, paced; one Discord could not serve for now is tried again a little later."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            await self._reads.acquire()
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    return await fetch(*args)
            except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
                refused = isinstance(exc, discord.HTTPException) and exc.status != 429 and exc.status < 500
                if refused or attempt == READ_ATTEMPTS:
                    raise
                log.warning(
                    "knowledge: a backfill read failed (%s); trying again in %g s",
                    exc,
                    self._pacing.backfill_retry_s,
                )
                await asyncio.sleep(self._pacing.backfill_retry_s)
        raise AssertionError("unreachable")

    async def _index_page(self, messages: Sequence[discord.Message], place: Place) -> list[Upsert]:
        """Index a page of history in one transaction (unchanged messages are left as they are), then its
        files. Messages that live events wrote or removed since the page was read are left alone."""
        read = [(m, document(m, place)) for m in messages if is_from_a_person(m)]
        read = [(m, d) for m, d in read if d.source not in self._fresh]
        outcomes = await self._librarian.index_messages([d for _, d in read if d.text.strip()])
        for message, indexed in read:
            if message.attachments:
                # in turn with the message's live events: a deletion during a download removes the file too
                async with self._turns.turn(message.id, _nothing):
                    if indexed.source not in self._fresh:
                        await self._files(message, indexed)
        return outcomes


class _Progress:
    """A channel's backfill cursor as it advances, saved after every page (the core logs it)."""

    def __init__(self, librarian: Librarian, cursor: Cursor) -> None:
        self._librarian = librarian
        self.cursor = cursor

    def count(self, page: Sequence[discord.Message], outcomes: Sequence[Upsert]) -> None:
        """A page read: the messages it indexed (a page read again after a restart adds none), its oldest."""
        oldest = page[-1].created_at.timestamp()
        self.cursor = replace(
            self.cursor,
            messages=self.cursor.messages + sum(o in (Upsert.ADDED, Upsert.REPLACED) for o in outcomes),
            oldest=min(oldest, self.cursor.oldest) if self.cursor.oldest else oldest,
        )

    async def page(self, page: Sequence[discord.Message], outcomes: Sequence[Upsert], mark: str) -> None:
        self.count(page, outcomes)
        await self.save(mark)

    async def save(self, mark: str, *, done: bool = False) -> None:
        self.cursor = replace(self.cursor, cursor=mark, done=done)
        await self._librarian.save_cursor(self.cursor)


async def _history_page(messageable: discord.abc.Messageable, before: int | None) -> list[discord.Message]:
    """One read of history: up to 100 messages before `before` (None: the newest), newest first."""
    start = discord.Object(before) if before is not None else None
    return [message async for message in messageable.history(limit=PAGE, before=start)]


async def _archived_page(
    channel: discord.TextChannel | discord.ForumChannel, before: dt.datetime | None
) -> list[discord.Thread]:
    """One read of archived public threads, archived before `before` (None: the latest), latest first."""
    return [thread async for thread in channel.archived_threads(limit=THREAD_PAGE, before=before)]
