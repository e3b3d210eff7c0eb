"""The fake Discord's world: users, guilds, channels and threads, DMs, messages, interactions, commands.

No HTTP and no gateway here: REST (`rest.py`, `routes.py`) and the gateway (`gateway.py`) read and change this
state. `FakeDiscord` is a `DiscordState`, so tests call these directly:

    dc.add_thread(dc.channel_id, "a thread")
    assert dc.bot_messages(dc.channel_id)[-1].content == ...
    assert dc.original_response(inter.token).edit_count == 3

`message_payload` is how a stored message looks on the wire (REST or gateway form), since both sides need it.
"""

from __future__ import annotations

import time
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

    def add_channel(self, guild_id: int, name: str, *, channel_type: int = p.GUILD_TEXT) -> int:
        """A guild channel (text by default; `p.GUILD_FORUM`, `p.GUILD_MEDIA`, ...); returns its id."""
        guild = self.guilds[guild_id]
        channel_id = p.snowflake()
        self.channels[channel_id] = p.text_channel(
            channel_id, guild_id, name, position=len(guild.channel_ids), channel_type=channel_type
        )
        guild.channel_ids.append(channel_id)
        return channel_id

    def add_thread(self, parent_id: int, name: str, *, owner_id: int | None = None) -> int:
        """An existing public thread (sent in GUILD_CREATE `threads`); returns its id."""
        parent = self.channels[parent_id]
        thread_id = p.snowflake()
        self.channels[thread_id] = p.thread_channel(
            thread_id, int(parent["guild_id"]), parent_id, owner_id or int(self.alice["id"]), name
        )
        return thread_id

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
        return [
            m
            for m in self._messages.values()
            if m.channel_id == channel_id and (include_deleted or not m.deleted)
        ]

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
        self, channel_id: int, content: str, *, author: JSON, reply_to: int | None, ping_reply: bool
    ) -> StoredMessage:
        """Store a message someone else typed (mentions parsed from `<@id>`; a reply pings its author)."""
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
            id=p.snowflake(),
            channel_id=int(channel["id"]),
            guild_id=guild_id,
            author=author,
            content=content,
            created_at=time.time(),
            history=[content],
            allowed_mentions=[None],
            pinged=pinged,
            mention_everyone="@everyone" in content or "@here" in content,
            message_type=p.MESSAGE_REPLY if reference else p.MESSAGE_DEFAULT,
            reference=reference,
        )
        self.store(msg)
        return msg

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
            components=message.components,
            reference=message.reference,
            referenced_message=referenced,
            webhook_id=message.webhook_id,
            application_id=self.application_id if message.webhook_id is not None else None,
            interaction_metadata=message.interaction_metadata,
            thread=thread,
        )
