"""Team knowledge from Slack: knowledge channels indexed live and backfilled, files shared there, ✅ reactions.

The adapter hands every `message` event of a knowledge channel here (new messages, thread replies, edits,
deletions, shared files) and every reaction event; they are never questions here (`addressing` decides those).
Everything goes to `moa.knowledge.Librarian`, which alone touches the index:
- a person's new message or reply is indexed, with its files (`documents.py`); an edit indexes it again; a
  deletion (or a thread parent turned into a tombstone) removes it and its files at once;
- backfill: on start, each knowledge channel whose backfill is not done reads `conversations.history` (newest first,
  back MOA_KNOWLEDGE_BACKFILL_DAYS) page by page, with `conversations.replies` for each thread, and saves its
  cursor after every page, so a restart resumes where it stopped and a finished channel is never read again. A
  channel the bot cannot read yet (not invited) is tried again when a message arrives from it. Reads spend one
  budget per workspace, well inside Slack's Tier 3, so that answers reading a thread still find room;
- a ✅ (`white_check_mark`) on one of the bot's answers verifies it, and taking it away un-verifies it; whether
  the reacting person may (the asker or a curator) is the core's rule. A refusal is only logged: people react ✅
  for many reasons, and a note to everyone who agrees with an answer would be noise.

Changes to one channel go through one lock, in the order they arrived, and a backfill page read before a live edit
or deletion of one of its messages leaves that message alone: what was deleted is never put back. A message that
is also a question (a knowledge channel answers every message) is indexed once it is answered, so that the answer
does not find the question itself as its source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from adapters.pacing import RateBudget, RetryLater
from adapters.slack.addressing import is_human_message
from adapters.slack.api import PLATFORM, SlackApi, SlackCallError
from adapters.slack.documents import Documents, file_source, message_source, valid_ts
from adapters.slack.outbox import SlackPacing
from adapters.tasks import TaskOwner
from moa.errors import StorageError
from moa.knowledge import Cursor, Document, Librarian
from moa.knowledge.extract import Skipped

log = logging.getLogger("adapters.slack")

Json = Mapping[str, Any]

VERIFY_REACTION = "white_check_mark"  # ✅
HISTORY_PAGE = 200  # messages per conversations.history page (Slack recommends no more than 200)
REPLIES_PAGE = 200
DAY_S = 86_400.0
READ_ATTEMPTS = 5  # tries of a read Slack did not answer (timeouts, 5xx) before the backfill waits for later
REMEMBERED_CHANGES = 10_000
LIVE_GRACE_S = 5.0  # at shutdown, for messages being indexed to land
# Slack's answers that mean the bot cannot read the channel: said once, tried again when it can.
_CANNOT_READ = frozenset(
    {"not_in_channel", "channel_not_found", "missing_scope", "is_archived", "access_denied"}
)


class SlackKnowledge:
    def __init__(
        self,
        librarian: Librarian,
        reads: SlackApi,
        documents: Documents,
        *,
        channels: Collection[str],
        backfill_days: int,
        pacing: SlackPacing,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._librarian = librarian
        self._api = reads
        self._documents = documents
        self._channels = frozenset(channels)
        self._backfill_s = backfill_days * DAY_S
        self._pacing = pacing
        self._clock = clock
        self._tasks = TaskOwner(log)
        self._team = ""
        self._budget = RateBudget(
            pacing.backfill_reads_per_window, pacing.window_s, burst=pacing.backfill_burst
        )
        self._backfills: dict[str, asyncio.Task[Any]] = {}
        self._done: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed: OrderedDict[str, float] = OrderedDict()  # source -> when a live event last changed it
        self._live_tasks: set[asyncio.Task[Any]] = set()
        self._awaiting: set[str] = set()  # messages that are questions, indexed once answered

    @property
    def pending(self) -> int:
        """Live events being indexed and backfills under way."""
        return len(self._tasks)

    def watches(self, channel: object) -> bool:
        return channel in self._channels

    def start(self, team: str) -> None:
        """Backfill every knowledge channel not done yet (in the background)."""
        self._team = team
        self._tasks.reopen()
        for channel in sorted(self._channels):
            self._backfill_soon(channel)

    async def aclose(self) -> None:
        """Let live indexing finish (briefly), then stop it and the backfills (they resume from their cursor)."""
        live = [task for task in self._live_tasks if not task.done()]
        if live:
            await asyncio.wait(live, timeout=LIVE_GRACE_S)
        await self._tasks.cancel_all()
        self._backfills.clear()

    def message(self, team: str, event: Json, *, seen_at: float | None = None) -> None:
        """A `message` event of a knowledge channel (`seen_at`: when it arrived, if that was earlier): indexed in
        the background, in arrival order."""
        channel = str(event.get("channel") or "")
        if not self.watches(channel):
            return
        lock = self._locks.setdefault(channel, asyncio.Lock())
        seen = time.monotonic() if seen_at is None else seen_at
        task = self._tasks.spawn(self._live(lock, team, channel, event, seen), f"slack-knowledge-{channel}")
        if task is not None:
            self._live_tasks.add(task)
            task.add_done_callback(self._live_tasks.discard)
        if channel not in self._done and channel not in self._backfills and self._team:
            self._backfill_soon(channel)  # a channel the bot could not read before: it can now

    def after_answer(self, team: str, event: Json) -> Callable[[], None]:
        """For a message that is also a question: what indexes it once it is answered, so that its answer never
        cites the question itself (an edit or deletion arriving meanwhile wins)."""
        seen_at = time.monotonic()
        awaiting = message_source(team, str(event.get("channel") or ""), str(event.get("ts") or ""))
        self._awaiting.add(awaiting)  # a backfill page holding it leaves it too

        def index() -> None:
            self._awaiting.discard(awaiting)
            self.message(team, event, seen_at=seen_at)

        return index

    def reaction(self, event: Json) -> None:
        """A `reaction_added` / `reaction_removed` event: a ✅ on one of the bot's answers (un)verifies it."""
        item = event.get("item")
        if str(event.get("reaction", "")).split("::", 1)[0] != VERIFY_REACTION or not isinstance(
            item, Mapping
        ):
            return
        if item.get("type") != "message":
            return
        author = event.get("item_user")
        if author is not None and author != self._documents.bot_user_id:
            return  # a ✅ on someone else's message: nothing the bot answered
        channel, ts, user = (
            str(item.get("channel") or ""),
            valid_ts(item.get("ts")),
            str(event.get("user") or ""),
        )
        if channel and ts and user:
            added = event.get("type") == "reaction_added"
            self._tasks.spawn(self._verify(channel, ts, user, added), f"slack-verify-{ts}")

    # ------------------------------------------------------------------------------------ live events

    async def _live(self, lock: asyncio.Lock, team: str, channel: str, event: Json, seen_at: float) -> None:
        async with lock:
            try:
                await self._apply(team, channel, event, seen_at)
            except StorageError as exc:
                log.error("knowledge: could not index a change in %s: %s", channel, exc)

    async def _apply(self, team: str, channel: str, event: Json, seen_at: float) -> None:
        subtype = event.get("subtype")
        if subtype == "message_deleted":
            await self._remove(team, channel, event.get("deleted_ts"))
        elif subtype == "message_changed":
            message = event.get("message")
            if not isinstance(message, Mapping):
                return
            if message.get("subtype") == "tombstone":  # a thread's parent deleted while its replies remain
                await self._remove(team, channel, message.get("ts"))
            elif is_human_message(message):
                document = await self._documents.message(team, channel, message)
                if document is not None:
                    self._changed_now(document.source)
                    await self._librarian.index_message(document)
        elif is_human_message(event):
            document = await self._documents.message(team, channel, event)
            if document is not None and not self._changed_since(document.source, seen_at):
                await self._librarian.index_message(document)
                for file in _files(event):
                    await self._index_file(document, file)

    async def _remove(self, team: str, channel: str, ts: object) -> None:
        if valid_ts(ts):
            source = message_source(team, channel, str(ts))
            self._changed_now(source)
            if await self._librarian.delete(source):
                log.info("knowledge: %s deleted in Slack, removed from the index", source)

    async def _index_file(self, message: Document, file: Json) -> None:
        source = file_source(message.source, str(file.get("id") or ""))
        if any(d.source == source for d in await self._librarian.documents(source)):
            return  # a shared file does not change: one indexed is never downloaded again (a backfill page, a retry)
        shared = await self._documents.file(message, file)
        if isinstance(shared, Skipped):
            log.info("knowledge: skipped a file shared in %s: %s", message.channel, shared.reason)
            return
        name = shared.document.title
        data = self._librarian.accepts_file(name, shared.size) or await self._documents.download(shared.url)
        if isinstance(data, Skipped):
            log.info("knowledge: skipped file %r in %s: %s", name, message.channel, data.reason)
            return
        await self._librarian.index_file(shared.document, data)

    def _changed_since(self, source: str, moment: float) -> bool:
        """A live edit or deletion of `source` came after `moment` (what was read then is out of date)."""
        return self._changed.get(source, -1.0) >= moment

    def _changed_now(self, source: str) -> None:
        self._changed.pop(source, None)
        self._changed[source] = time.monotonic()
        while len(self._changed) > REMEMBERED_CHANGES:
            self._changed.popitem(last=False)

    # ------------------------------------------------------------------------------------ ✅ reactions

    async def _verify(self, channel: str, ts: str, user: str, added: bool) -> None:
        try:
            if added:
                private = await self._documents.private(channel)
                link = await self._documents.links.exact(channel, ts)
                result = await self._librarian.verify(PLATFORM, channel, ts, user, private=private, link=link)
            else:
                result = await self._librarian.unverify(PLATFORM, channel, ts, user)
        except StorageError as exc:
            log.error("knowledge: could not record the ✅ on %s in %s: %s", ts, channel, exc)
            return
        log.info(
            "knowledge: ✅ %s on %s in %s by %s: %s",
            "added" if added else "removed",
            ts,
            channel,
            user,
            result.value,
        )

    # ------------------------------------------------------------------------------------ backfill

    def _backfill_soon(self, channel: str) -> None:
        task = self._tasks.spawn(self._backfill(channel), f"slack-backfill-{channel}")
        if task is not None:
            self._backfills[channel] = task
            task.add_done_callback(lambda _: self._backfills.pop(channel, None))

    async def _backfill(self, channel: str) -> None:
        team = self._team
        try:
            cursor = await self._librarian.cursor(PLATFORM, team, channel) or Cursor(PLATFORM, team, channel)
            if not cursor.done:
                log.info(
                    "knowledge: backfill of slack channel %s %s",
                    channel,
                    f"resumes after {cursor.messages} messages" if cursor.messages else "starts",
                )
                await self._read_history(cursor)
            self._done.add(channel)
        except SlackCallError as exc:
            if exc.error in _CANNOT_READ:
                log.warning(
                    "knowledge channel %s: the bot cannot read its history (%s); invite it with /invite @moa "
                    "(it reads the history once it can)",
                    channel,
                    exc.error,
                )
            else:
                log.warning(
                    "knowledge: backfill of %s stopped (%s); it resumes on the next start", channel, exc
                )
        except StorageError as exc:
            log.error("knowledge: backfill of %s stopped: %s", channel, exc)

    async def _read_history(self, cursor: Cursor) -> None:
        since = f"{self._clock() - self._backfill_s:.6f}"
        latest = ""  # after Slack refused a stored cursor: read on from the oldest message indexed
        while not cursor.done:
            params: dict[str, Any] = {"channel": cursor.channel, "limit": HISTORY_PAGE, "oldest": since}
            if cursor.cursor:
                params["cursor"] = cursor.cursor
            elif latest:
                params.update(latest=latest, inclusive=True)
            read_at = time.monotonic()
            try:
                page = await self._read("conversations.history", **params)
            except SlackCallError as exc:
                if exc.error != "invalid_cursor" or not cursor.cursor:
                    raise
                log.info(
                    "knowledge: Slack refused the stored cursor of %s; reading on from its oldest message",
                    cursor.channel,
                )
                latest, cursor = f"{cursor.oldest:.6f}" if cursor.oldest else "", replace(cursor, cursor="")
                continue
            messages = [m for m in page.get("messages") or [] if isinstance(m, Mapping)]
            found = list(messages)
            for message in messages:
                if message.get("reply_count") and valid_ts(message.get("ts")):
                    found += await self._replies(cursor.channel, str(message["ts"]))
            indexed = await self._index_page((cursor.workspace, cursor.channel), found, read_at)
            following = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            stamps = [float(ts) for m in messages if (ts := valid_ts(m.get("ts")))]
            cursor = replace(
                cursor,
                cursor=following,
                done=not following,
                messages=cursor.messages + indexed,
                oldest=min([*stamps, cursor.oldest or float("inf")]) if stamps else cursor.oldest,
            )
            await self._librarian.save_cursor(cursor)

    async def _replies(self, channel: str, thread_ts: str) -> list[Json]:
        """A thread's replies (its parent left out: the history page has it)."""
        replies: list[Json] = []
        following = ""
        while True:
            params: dict[str, Any] = {"channel": channel, "ts": thread_ts, "limit": REPLIES_PAGE}
            if following:
                params["cursor"] = following
            try:
                page = await self._read("conversations.replies", **params)
            except SlackCallError as exc:
                if exc.error != "thread_not_found":
                    raise
                return replies  # deleted since the history page was read
            replies += [
                m for m in page.get("messages") or [] if isinstance(m, Mapping) and m.get("ts") != thread_ts
            ]
            following = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not following:
                return replies

    async def _index_page(self, where: tuple[str, str], messages: Sequence[Json], read_at: float) -> int:
        """Index what a page of history (with its threads) holds; how many messages of people it held."""
        team, channel = where
        found: dict[str, tuple[Document, Json]] = {}
        for message in messages:
            if is_human_message(message):
                document = await self._documents.message(team, channel, message)
                if document is not None:
                    found[document.source] = (document, message)  # a broadcast reply comes twice
        async with self._locks.setdefault(channel, asyncio.Lock()):
            fresh = [
                (d, m)
                for d, m in found.values()
                if not self._changed_since(d.source, read_at) and d.source not in self._awaiting
            ]
            await self._librarian.index_messages([d for d, _ in fresh])
            for document, message in fresh:
                for file in _files(message):
                    await self._index_file(document, file)
        return len(found)

    async def _read(self, method: str, **params: Any) -> dict[str, Any]:
        """A history read within the workspace's backfill budget; 429s (after slack_sdk's own retries) pause it,
        a read Slack did not answer is tried again a few times, anything else is raised."""
        failures = 0
        while True:
            await self._budget.acquire()
            try:
                return await self._api.call(method, **params)
            except RetryLater as exc:
                self._budget.pause(exc.seconds)
                await asyncio.sleep(exc.seconds)
            except SlackCallError as exc:
                failures += 1
                if not exc.retryable or failures >= READ_ATTEMPTS:
                    raise
                await asyncio.sleep(self._pacing.window_s / 60.0 * 2**failures)


def _files(message: Json) -> list[Json]:
    files = message.get("files")
    return [f for f in files if isinstance(f, Mapping)] if isinstance(files, list) else []
