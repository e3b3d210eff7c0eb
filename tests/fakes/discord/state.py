"""The fake Discord's world: users, guilds, channels and threads, DMs, messages, attachments, reactions,
interactions, commands.

No HTTP and no gateway here: REST (`rest.py`, `routes.py`), the CDN (`cdn.py`) and the gateway (`gateway.py`)
read and change this state. `FakeDiscord` is a `DiscordState`, so tests call these directly:

    dc.add_thread(dc.channel_id, "a thread")
    private = dc.add_channel(dc.guild_id, "staff", private=True)     # @everyone may not VIEW_CHANNEL
    old = dc.add_history(dc.channel_id, 30, days=400)                  # backfill material, oldest first
    assert dc.bot_messages(dc.channel_id)[-1].content == ...
    assert dc.original_response(inter.token).edit_count == 3

`message_payload` is how a stored message looks on the wire (REST or gateway form), since both sides need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import discord_payloads as p

JSON = dict[str, Any]


@dataclass
class StoredMessage:
    """A message in the fake's store, with everything tests want to assert on."""

    id: int
    channel_id: int
    guild_id: int | None
    author: JSON
    content: str
    created_at: float  # epoch seconds
    history: list[str]  # content after creation and after each edit; history[-1] == content
    allowed_mentions: list[JSON | None]  # `allowed_mentions` as received by each create / edit call
    pinged: set[int] = field(default_factory=set)  # user ids the current version notifies
    mention_everyone: bool = False
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    flags: int = 0
    message_type: int = p.MESSAGE_DEFAULT
    reference: JSON | None = None
    webhook_id: int | None = None
    interaction_token: str | None = None
    interaction_metadata: JSON | None = None
    thread_id: int | None = None  # thread started from this message
    edited_at: float | None = None
    edit_times: list[float] = field(default_factory=list)  # time.monotonic() of each edit
    deleted: bool = False
    attachments: list[JSON] = field(default_factory=list)  # {id, filename, content_type, size, ...}
    reactions: dict[str, list[int]] = field(default_factory=dict)  # emoji -> user ids, in order

    @property
    def author_id(self) -> int:
        return int(self.author["id"])

    @property
    def edit_count(self) -> int:
        return len(self.history) - 1

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & p.FLAG_EPHEMERAL)


@dataclass
class InteractionRecord:
    """An interaction the fake issued, and how the bot answered it."""

    id: int
    token: str
    command: str
    options: dict[str, Any]
    channel_id: int
    guild_id: int | None
    user: JSON
    payload: JSON  # the INTERACTION_CREATE `d` that was dispatched
    issued_at: float  # time.monotonic(); the token expires `interaction_token_ttl` later
    callback_type: int | None = None  # 4 message, 5 deferred, ...; None until acknowledged
    callback_data: JSON | None = None
    callback_attempts: int = 0  # including rejected ones (late, twice)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    interaction_type: int = p.INTERACTION_APPLICATION_COMMAND  # 3: a click on a message component
    custom_id: str | None = None  # the component clicked
    message_id: int | None = None  # the message it is on


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=p.iso)


def pings(content: str, allowed: JSON | None, replied_author: int | None) -> tuple[set[int], bool]:
    """Who a message notifies, per Discord's allowed_mentions rules; (user ids, @everyone/@here)."""
    mentioned = p.mentioned_user_ids(content)
    everyone_written = "@everyone" in content or "@here" in content
    if allowed is None:
        # No allowed_mentions: everything written pings, and a reply pings its author.
        users = set(mentioned)
        if replied_author is not None:
            users.add(replied_author)
        return users, everyone_written
    parse = allowed.get("parse") or []
    if "users" in parse:
        users = set(mentioned)
    else:
        listed = {int(u) for u in allowed.get("users") or []}
        users = {u for u in mentioned if u in listed}
    if replied_author is not None and allowed.get("replied_user"):
        users.add(replied_author)
    return users, everyone_written and "everyone" in parse


class DiscordState:
    """The bot's Discord: one guild (`guild_id`, "moa-test") with text channels `channel_id` ("general") and
    `other_channel_id` ("random"), the bot user (`bot_id`, also the application id), two humans (`alice`,
    `bob`) and another bot (`other_bot`). Add more with `add_guild`, `add_channel`, `add_user`, `add_thread`
    before the client connects."""

    def __init__(self, *, bot_name: str, privileged_intents: bool) -> None:
        self.users: dict[int, JSON] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, JSON] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        self._messages: dict[int, StoredMessage] = {}
        self._commands: dict[int | None, list[JSON]] = {}
        self._dms: dict[int, int] = {}  # recipient id -> DM channel id
        self.attachment_content: dict[int, bytes] = {}  # attachment id -> bytes the CDN serves
        self.custom_emojis: set[str] = set()  # "name:id" of the guilds' emojis, which reactions accept
        # (url, proxy_url) of an attachment; FakeDiscord signs them for its own CDN.
        self.attachment_urls: Callable[[int, int, str], tuple[str, str]] = _discord_cdn_urls

        self.bot_id = p.snowflake()
        self.application_id = self.bot_id  # modern apps: application id == bot user id
        self.bot_user = p.user(self.bot_id, bot_name, bot=True)
        self.users[self.bot_id] = self.bot_user
        self.alice = self.add_user("alice", guild_ids=())
        self.bob = self.add_user("bob", guild_ids=())
        self.other_bot = self.add_user("otherbot", bot=True, guild_ids=())
        self.guild_id = self.add_guild("moa-test", channel_names=("general", "random"))
        self.channel_id, self.other_channel_id = self.guilds[self.guild_id].channel_ids[:2]
        # The developer portal's intent toggles: privileged intents are allowed ("limited": under 100 guilds).
        self.application_flags = (
            p.APP_FLAG_GATEWAY_PRESENCE_LIMITED
            | p.APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED
            | p.APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED
            | p.APP_FLAG_APPLICATION_COMMAND_BADGE
            if privileged_intents
            else p.APP_FLAG_APPLICATION_COMMAND_BADGE
        )

    # --- world setup ------------------------------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False, guild_ids: tuple[int, ...] | None = None) -> JSON:
        """A user (member of the given guilds, default all); returns its user payload."""
        user_id = p.snowflake()
        self.users[user_id] = payload = p.user(user_id, username, bot=bot)
        for gid in self.guilds if guild_ids is None else guild_ids:
            self.guilds[gid].member_ids.append(user_id)
        return payload

    def add_guild(self, name: str, *, channel_names: tuple[str, ...] = ("general",)) -> int:
        """A guild the bot is in, with text channels and every known user as a member; returns its id."""
        guild_id = p.snowflake()
        self.guilds[guild_id] = FakeGuild(guild_id, name, owner_id=int(self.alice["id"]))
        self.guilds[guild_id].member_ids.extend(self.users)
        for channel_name in channel_names:
            self.add_channel(guild_id, channel_name)
        return guild_id

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        channel_type: int = p.GUILD_TEXT,
        private: bool = False,
        bot_can_view: bool = True,
    ) -> int:
        """A guild channel (text by default; `p.GUILD_FORUM`, `p.GUILD_MEDIA`, ...); returns its id.

        `private`: @everyone is denied VIEW_CHANNEL by a permission overwrite (in GUILD_CREATE and
        GET /channels/{id}), and the bot is let in by a member overwrite unless `bot_can_view=False`, in which
        case reading it answers 403 50001 Missing Access.
        """
        guild = self.guilds[guild_id]
        channel_id = p.snowflake()
        self.channels[channel_id] = p.text_channel(
            channel_id,
            guild_id,
            name,
            position=len(guild.channel_ids),
            channel_type=channel_type,
            permission_overwrites=self.view_overwrites(guild_id, private=private, bot_can_view=bot_can_view),
        )
        guild.channel_ids.append(channel_id)
        return channel_id

    def view_overwrites(self, guild_id: int, *, private: bool, bot_can_view: bool = True) -> list[JSON]:
        """Permission overwrites of a channel @everyone may (or, `private`, may not) see; the bot is let into a
        private one unless `bot_can_view=False`."""
        if not private:
            return []
        overwrites = [p.permission_overwrite(guild_id, p.OVERWRITE_ROLE, deny=p.PERMISSION_VIEW_CHANNEL)]
        if bot_can_view:
            overwrites.append(
                p.permission_overwrite(self.bot_id, p.OVERWRITE_MEMBER, allow=p.PERMISSION_VIEW_CHANNEL)
            )
        return overwrites

    def add_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int | None = None,
        thread_type: int = p.PUBLIC_THREAD,
        created_at: float | None = None,
        archived_at: float | None = None,
        thread_id: int | None = None,
    ) -> int:
        """An existing thread; returns its id. Active ones are in GUILD_CREATE `threads` and the active-threads
        route; `archived_at` (epoch seconds) makes it archived, listed by the archived-threads route.
        `thread_id` is the starter message's id for a thread started from a message."""
        parent = self.channels[parent_id]
        thread_id = thread_id or p.snowflake(created_at)
        self.channels[thread_id] = p.thread_channel(
            thread_id,
            int(parent["guild_id"]),
            parent_id,
            owner_id or int(self.alice["id"]),
            name,
            thread_type=thread_type,
            created_at=created_at,
            archived=archived_at is not None,
            archived_at=archived_at,
        )
        return thread_id

    def add_history(
        self,
        channel_id: int,
        count: int,
        *,
        days: float = 400.0,
        threads_every: int = 5,
        replies: int = 2,
        archive_after_days: float = 7.0,
        authors: Sequence[JSON] | None = None,
        text: Callable[[int], str] = lambda i: f"message {i}",
        reply_text: Callable[[int, int], str] = lambda i, k: f"reply {k} to message {i}",
        now: float | None = None,
    ) -> list[StoredMessage]:
        """Store `count` messages spread evenly over the last `days` days in a channel, oldest first.

        Every `threads_every`-th message (0: none) starts a public thread holding `replies` messages; threads
        older than `archive_after_days` are archived (as Discord auto-archives idle ones). Snowflakes carry the
        real times, so `before`/`after` and a backfill window apply. Returns the channel's messages.
        """
        end = time.time() if now is None else now
        step = days * 86400.0 / max(count, 1)
        people = list(authors or (self.alice, self.bob))
        made = []
        for i in range(count):
            at = end - days * 86400.0 + i * step
            msg = self.add_user_message(
                channel_id,
                text(i),
                author=people[i % len(people)],
                reply_to=None,
                ping_reply=False,
                created_at=at,
            )
            made.append(msg)
            if threads_every and i % threads_every == 0:
                last = at + step * replies / (replies + 1)
                archived = last + 86400.0 if end - last > archive_after_days * 86400.0 else None
                msg.thread_id = self.add_thread(
                    channel_id, f"thread {i}", created_at=at, archived_at=archived, thread_id=msg.id
                )
                msg.flags |= p.FLAG_HAS_THREAD
                for k in range(replies):
                    self.add_user_message(
                        msg.id,
                        reply_text(i, k),
                        author=people[(i + k + 1) % len(people)],
                        reply_to=None,
                        ping_reply=False,
                        created_at=at + step * (k + 1) / (replies + 1),
                    )
        return made

    def dm_channel_id(self, user: JSON) -> int:
        """The DM channel between the bot and `user`, created if needed (for `user_message` in DMs)."""
        recipient_id = int(user["id"])
        if recipient_id not in self._dms:
            channel_id = p.snowflake()
            self.channels[channel_id] = p.dm_channel(channel_id, user)
            self._dms[recipient_id] = channel_id
        return self._dms[recipient_id]

    # --- queries for tests ------------------------------------------------------------------------------

    def messages(self, channel_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        """Messages in a channel (or thread, or DM), oldest first."""
        found = [
            m
            for m in self._messages.values()
            if m.channel_id == channel_id and (include_deleted or not m.deleted)
        ]
        return sorted(found, key=lambda m: m.id)

    def message(self, message_id: int) -> StoredMessage:
        return self._messages[message_id]

    def find_message(self, message_id: int) -> StoredMessage | None:
        return self._messages.get(message_id)

    def bot_messages(self, channel_id: int) -> list[StoredMessage]:
        """Messages the bot posted in a channel (including interaction responses), oldest first."""
        return [m for m in self.messages(channel_id) if m.author_id == self.bot_id]

    def interaction(self, token: str) -> InteractionRecord:
        return self.interactions[token]

    def original_response(self, token: str) -> StoredMessage | None:
        """The interaction's original response message (None before the callback, or after deletion)."""
        record = self.interactions.get(token)
        if record is None or record.original_message_id is None:
            return None
        found = self._messages[record.original_message_id]
        return None if found.deleted else found

    def followups(self, token: str) -> list[StoredMessage]:
        record = self.interactions.get(token)
        return [] if record is None else [self._messages[i] for i in record.followup_ids]

    def channel(self, channel_id: int) -> JSON:
        return self.channels[channel_id]

    def threads(self, parent_id: int) -> list[JSON]:
        return [
            c
            for c in self.channels.values()
            if c.get("parent_id") == str(parent_id) and c["type"] in p.THREAD_TYPES
        ]

    def can_view(self, channel_id: int) -> bool:
        """Whether the bot may see a channel, per its permission overwrites (a thread: its parent's)."""
        channel = self.channels[channel_id]
        if channel["type"] in p.THREAD_TYPES:
            return self.can_view(int(channel["parent_id"]))
        overwrites = {(o["type"], o["id"]): o for o in channel.get("permission_overwrites") or []}
        view = p.PERMISSION_VIEW_CHANNEL
        mine = overwrites.get((p.OVERWRITE_MEMBER, str(self.bot_id)))
        if mine is not None and int(mine["allow"]) & view:
            return True
        everyone = overwrites.get((p.OVERWRITE_ROLE, channel.get("guild_id")))
        return not (everyone is not None and int(everyone["deny"]) & view)

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Registered commands, global (None) or for a guild."""
        return list(self._commands.get(guild_id, []))

    def set_commands(self, scope: int | None, commands: list[JSON]) -> None:
        self._commands[scope] = commands

    def resolve_command(self, name: str, guild_id: int | None) -> tuple[int, int | None]:
        """(command id, guild id when it is a guild command) for an invocation, from synced definitions."""
        if guild_id is not None:
            for command in self._commands.get(guild_id, []):
                if command["name"] == name:
                    return int(command["id"]), guild_id
        for command in self._commands.get(None, []):
            if command["name"] == name:
                return int(command["id"]), None
        return p.snowflake(), None

    # --- messages ---------------------------------------------------------------------------------------

    def store(self, message: StoredMessage) -> None:
        self._messages[message.id] = message
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            channel["last_message_id"] = str(message.id)
            if channel["type"] in p.THREAD_TYPES:
                channel["message_count"] += 1
                channel["total_message_sent"] += 1

    def add_user_message(
        self,
        channel_id: int,
        content: str,
        *,
        author: JSON,
        reply_to: int | None,
        ping_reply: bool,
        attachments: Sequence[tuple[str, bytes | str] | tuple[str, bytes | str, str]] = (),
        created_at: float | None = None,
    ) -> StoredMessage:
        """Store a message someone else typed (mentions parsed from `<@id>`; a reply pings its author).

        `attachments` are (filename, content) or (filename, content, content_type) files the CDN serves;
        `created_at` (epoch seconds) dates a message in the past (its snowflake too).
        """
        channel = self.channels[channel_id]
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        reference = None
        pinged = set(p.mentioned_user_ids(content))
        if reply_to is not None:
            target = self._messages[reply_to]
            reference = p.message_reference(target.id, target.channel_id, target.guild_id)
            if ping_reply:
                pinged.add(target.author_id)
        msg = StoredMessage(
            id=p.snowflake(created_at),
            channel_id=int(channel["id"]),
            guild_id=guild_id,
            author=author,
            content=content,
            created_at=time.time() if created_at is None else created_at,
            history=[content],
            allowed_mentions=[None],
            pinged=pinged,
            mention_everyone="@everyone" in content or "@here" in content,
            message_type=p.MESSAGE_REPLY if reference else p.MESSAGE_DEFAULT,
            reference=reference,
            attachments=[self._attachment(*spec) for spec in attachments],
        )
        self.store(msg)
        return msg

    def _attachment(self, filename: str, content: bytes | str, content_type: str | None = None) -> JSON:
        data = content.encode() if isinstance(content, str) else bytes(content)
        attachment_id = p.snowflake()
        self.attachment_content[attachment_id] = data
        record: JSON = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "content_type": content_type or p.content_type_for(filename),
        }
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            record["width"], record["height"] = int.from_bytes(data[16:20]), int.from_bytes(data[20:24])
        return record

    def attachment_payloads(self, message: StoredMessage) -> list[JSON]:
        """A message's attachments as Discord shows them, with freshly signed CDN URLs."""
        shown = []
        for record in message.attachments:
            url, proxy_url = self.attachment_urls(message.channel_id, record["id"], record["filename"])
            shown.append(
                p.attachment(
                    record["id"],
                    record["filename"],
                    size=record["size"],
                    url=url,
                    proxy_url=proxy_url,
                    content_type=record["content_type"],
                    width=record.get("width"),
                    height=record.get("height"),
                )
            )
        return shown

    def message_payload(
        self, message: StoredMessage, *, gateway: bool = False, content: str | None = None
    ) -> JSON:
        """The message as Discord shows it: REST form, or gateway form (with `guild_id` and `member`)."""
        guild = self.guilds.get(message.guild_id) if message.guild_id is not None else None
        mentions = []
        for uid in sorted(message.pinged):
            if uid in self.users:
                mentioned = dict(self.users[uid])
                if gateway and guild is not None:
                    mentioned["member"] = p.member(None, joined_at=guild.joined_at)
                mentions.append(mentioned)
        referenced = None
        if message.reference is not None:
            target = self._messages.get(int(message.reference["message_id"]))
            referenced = self.message_payload(target) if target is not None and not target.deleted else None
        thread = self.channels.get(message.thread_id) if message.thread_id is not None else None
        return p.message(
            message_id=message.id,
            channel_id=message.channel_id,
            author=message.author,
            content=message.content if content is None else content,
            guild_id=message.guild_id if gateway else None,
            member_payload=p.member(None, joined_at=guild.joined_at)
            if gateway and guild is not None
            else None,
            mentions=mentions,
            created_at=message.created_at,
            edited_at=message.edited_at,
            message_type=message.message_type,
            flags=message.flags,
            embeds=message.embeds if content is None else [],
            # Without MESSAGE_CONTENT (`content` given), Discord withholds attachments and components too.
            attachments=self.attachment_payloads(message) if content is None else [],
            components=message.components if content is None else [],
            reactions=[p.reaction_counts(e, users, self.bot_id) for e, users in message.reactions.items()],
            reference=message.reference,
            referenced_message=referenced,
            webhook_id=message.webhook_id,
            application_id=self.application_id if message.webhook_id is not None else None,
            interaction_metadata=message.interaction_metadata,
            thread=thread,
        )


def _discord_cdn_urls(channel_id: int, attachment_id: int, filename: str) -> tuple[str, str]:
    path = f"attachments/{channel_id}/{attachment_id}/{filename}"
    return f"https://cdn.discordapp.com/{path}", f"https://media.discordapp.net/{path}"
