"""`FakeDiscord`: the world (`state.py`) with its REST API, CDN and gateway on one port, and the test controls
that span them: each stores what someone did, then dispatches it as Discord would.

    inter = await dc.slash_command("moa", {"question": "why?"})          # INTERACTION_CREATE, type 2
    msg = await dc.user_message(channel, "see file", attachments=[("a.md", b"# A")])   # MESSAGE_CREATE
    await dc.user_edit(msg.id, "fixed")                                  # MESSAGE_UPDATE
    await dc.user_delete(msg.id); await dc.bulk_delete(channel, [id1, id2])   # MESSAGE_DELETE(_BULK)
    await dc.user_react(msg.id, "✅")                                     # MESSAGE_REACTION_ADD (remove=True)
    thread = await dc.user_thread(channel, "topic"); await dc.archive_thread(thread)   # THREAD_CREATE/UPDATE
    await dc.delete_thread(thread)                                       # THREAD_DELETE
    await dc.set_channel_private(channel)                                # CHANNEL_UPDATE (overwrites)
    click = await dc.click(answer.id, "moa:feedback:up")                 # INTERACTION_CREATE, type 3
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import yarl
from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.base import Forward, LoopbackServer, Signal
from tests.fakes.discord.cdn import Cdn
from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.rest import API_PREFIX, Rest
from tests.fakes.discord.routes import DiscordRoutes
from tests.fakes.discord.state import JSON, DiscordState, InteractionRecord, StoredMessage
from tests.fakes.ratelimit import Rate

T = TypeVar("T")

_SAME_AS_MESSAGE_RATE = Rate(-1, -1.0)  # sentinel: the hidden channel budget defaults to message_rate


class FakeDiscord(DiscordState, LoopbackServer):
    """aiohttp server on 127.0.0.1 (free port) speaking Discord's REST API v10 and gateway.

    Starts with one guild (`guild_id`, named "moa-test") holding text channels `channel_id` ("general") and
    `other_channel_id` ("random"), the bot user (`bot_id`, also the application id), two humans (`alice`,
    `bob`) and another bot (`other_bot`). Add more with `add_guild`, `add_channel`, `add_user`, `add_thread`
    before the client connects.
    """

    # REST plumbing (rest.py): records, controls, rate-limit knobs.
    calls = Forward("rest")
    rate_limited = Forward("rest")
    requests = Forward("rest")
    fail = Forward("rest")
    reset_limits = Forward("rest")
    token = Forward("rest")
    message_rate = Forward("rest")
    channel_message_rate = Forward("rest")
    webhook_rate = Forward("rest")
    reaction_rate = Forward("rest")
    default_rate = Forward("rest")
    global_rate = Forward("rest")
    # REST routes (routes.py): records and knobs.
    command_syncs = Forward("routes")
    interaction_token_ttl = Forward("routes")
    interaction_ack_deadline = Forward("routes")
    max_content = Forward("routes")
    recommended_shards = Forward("routes")
    # Gateway (gateway.py).
    identifies = Forward("gateway")
    resumes = Forward("gateway")
    heartbeats = Forward("gateway")
    ready_count = Forward("gateway")
    gateway_sent = Forward("gateway")
    intents = Forward("gateway")
    connections = Forward("gateway")
    dispatch = Forward("gateway")
    drop_connections = Forward("gateway")
    request_reconnect = Forward("gateway")
    heartbeat_interval_ms = Forward("gateway")
    privileged_intents = Forward("gateway")
    echo_bot_events = Forward("gateway")
    # CDN (cdn.py).
    cdn_fetches = Forward("cdn_server")

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "moa",
        interaction_token_ttl: float = 15 * 60,
        interaction_ack_deadline: float = 3.0,
        message_rate: Rate | tuple[int, float] = (5, 5.0),
        channel_message_rate: Rate | tuple[int, float] | None = _SAME_AS_MESSAGE_RATE,
        webhook_rate: Rate | tuple[int, float] = (5, 2.0),
        reaction_rate: Rate | tuple[int, float] = (1, 0.25),
        default_rate: Rate | tuple[int, float] = (50, 1.0),
        global_rate: Rate | tuple[int, float] | None = (50, 1.0),
        heartbeat_interval_ms: int = 41_250,
        privileged_intents: bool = True,
        echo_bot_events: bool = True,
        attachment_url_ttl_s: float = 86400.0,
        recommended_shards: int = 1,
        port: int = 0,
    ) -> None:
        """
        Args:
            token: the bot token REST (`Authorization: Bot <token>`) and IDENTIFY must carry.
            interaction_token_ttl: seconds an interaction token works for webhooks (Discord: 15 minutes);
                later calls get 401 code 50027.
            interaction_ack_deadline: seconds to call back an interaction (Discord: 3 s); later: 10062.
            message_rate: (limit, per seconds) advertised and enforced for message create and, separately,
                message edit, per channel.
            channel_message_rate: hidden per-channel budget shared by creates and edits (None: off); by
                default the same numbers as `message_rate`.
            webhook_rate: per interaction token, all webhook routes together.
            reaction_rate: per channel, adding and removing the bot's reactions together.
            default_rate: per route (and channel / guild) for everything else.
            global_rate: all bot-authenticated calls together (Discord: 50 per second; None: off).
            heartbeat_interval_ms: sent in HELLO.
            privileged_intents: False makes IDENTIFY with MESSAGE_CONTENT / GUILD_MEMBERS / GUILD_PRESENCES
                close with 4014, as for an app whose toggles are off in the developer portal.
            echo_bot_events: dispatch gateway events for the bot's own REST actions, as Discord does.
            attachment_url_ttl_s: how long a signed attachment URL works (Discord: about a day).
            recommended_shards: the shard count GET /gateway/bot recommends. Sessions that IDENTIFY with
                `shard: [id, count]` get only their shard's guilds, `(guild_id >> 22) % count == id`, and DMs
                and other events of no guild on shard 0, as on Discord.
            port: 0 for any free port; a fixed one lets a test restart "the same" Discord.
        """
        DiscordState.__init__(self, bot_name=bot_name, privileged_intents=privileged_intents)
        self.requested_port = port
        self._changed = Signal()
        self.gateway = Gateway(
            self,
            token=token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            privileged_intents=privileged_intents,
            echo_bot_events=echo_bot_events,
            url=lambda: self.gateway_url,
            notify=self._changed.notify,
        )
        self.routes = DiscordRoutes(
            self,
            self.gateway,
            interaction_token_ttl=interaction_token_ttl,
            interaction_ack_deadline=interaction_ack_deadline,
            gateway_url=lambda: self.gateway_url,
            recommended_shards=recommended_shards,
        )
        if channel_message_rate is _SAME_AS_MESSAGE_RATE:
            channel_message_rate = message_rate
        self.rest = Rest(
            self.routes.table(),
            token=token,
            message_rate=Rate(*message_rate),
            channel_message_rate=None if channel_message_rate is None else Rate(*channel_message_rate),
            webhook_rate=Rate(*webhook_rate),
            reaction_rate=Rate(*reaction_rate),
            default_rate=Rate(*default_rate),
            global_rate=None if global_rate is None else Rate(*global_rate),
            notify=self._changed.notify,
        )
        self.cdn_server = Cdn(self, base_url=lambda: self.url, url_ttl_s=attachment_url_ttl_s)
        self.attachment_urls = self.cdn_server.urls

    # --- lifecycle --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """Value for `discord.http.Route.BASE` (REST and interaction webhooks)."""
        return f"{self.url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """Value for `DiscordWebSocket.DEFAULT_GATEWAY` (as `yarl.URL`) and what `GET /gateway/bot` returns."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application()
        self.gateway.mount(app)
        self.cdn_server.mount(app)
        self.rest.mount(app)
        await self._serve(app, port=self.requested_port, handler_cancellation=True, shutdown_timeout=0.5)

    async def aclose(self) -> None:
        self.rest.stopping.set()
        await self.gateway.aclose()
        await self._stop_serving()

    # --- waiting ----------------------------------------------------------------------------------------

    @property
    def sync_count(self) -> int:
        return len(self.command_syncs)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Wait until `predicate()` is truthy and return its value; TimeoutError after `timeout` seconds.

        Woken by every change in the fake, and polled every 20 ms too, so predicates may look at the bot's
        own state as well.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            await self._changed.wait(min(remaining, 0.02))

    async def wait_ready(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` READY sequences (READY + GUILD_CREATEs) have been sent in total."""
        await self.wait_for(lambda: self.ready_count >= count, timeout)

    # --- pushing events ---------------------------------------------------------------------------------

    async def slash_command(
        self,
        name: str = "moa",
        options: Mapping[str, Any] | None = None,
        *,
        channel_id: int | None = None,
        user: JSON | None = None,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for a chat-input command typed by `user` (default alice).

        The command id (and `data.guild_id` for guild commands) comes from the synced definitions, as
        Discord would send them. `channel_id` may be a guild channel, a thread or a DM channel.
        """
        user = user or self.alice
        channel = self.channels[channel_id or self.channel_id]
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        command_id, command_guild_id = self.resolve_command(name, guild_id)
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(120)[:140]
        interaction_id = p.snowflake()
        payload = p.chat_input_interaction(
            interaction_id=interaction_id,
            application_id=self.application_id,
            token=token,
            command_id=command_id,
            command_name=name,
            options=dict(options or {}),
            channel=channel,
            invoker=user,
            guild_id=guild_id,
            command_guild_id=command_guild_id,
        )
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            command=name,
            options=dict(options or {}),
            channel_id=int(channel["id"]),
            guild_id=guild_id,
            user=user,
            payload=payload,
            issued_at=time.monotonic(),
        )
        self.interactions[token] = record
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self._changed.notify()
        return record

    async def user_message(
        self,
        channel_id: int | None = None,
        content: str = "",
        *,
        author: JSON | None = None,
        reply_to: int | None = None,
        ping_reply: bool = True,
        attachments: Sequence[tuple[str, bytes | str] | tuple[str, bytes | str, str]] = (),
    ) -> StoredMessage:
        """A message typed by someone else (default alice): stored, then MESSAGE_CREATE to the bot.

        Mentions are parsed from `<@id>` / `<@!id>` in `content`; `reply_to` makes it a reply (which also
        mentions the replied-to author unless `ping_reply=False`). `attachments` are (filename, content[,
        content_type]) files, served at signed CDN URLs. Sessions without MESSAGE_CONTENT get empty content
        (and no attachments) unless it is a DM or mentions the bot, as Discord sends it.
        """
        msg = self.add_user_message(
            channel_id or self.channel_id,
            content,
            author=author or self.alice,
            reply_to=reply_to,
            ping_reply=ping_reply,
            attachments=attachments,
        )
        await self.gateway.message_created(msg, by_bot=False)
        self._changed.notify()
        return msg

    async def user_edit(self, message_id: int, content: str) -> StoredMessage:
        """Someone edits their message: MESSAGE_UPDATE with the whole message and `edited_timestamp`."""
        msg = self.message(message_id)
        msg.content = content
        msg.history.append(content)
        msg.allowed_mentions.append(None)
        msg.pinged = set(p.mentioned_user_ids(content))
        msg.edited_at = time.time()
        msg.edit_times.append(time.monotonic())
        await self.gateway.message_updated(msg, by_bot=False)
        self._changed.notify()
        return msg

    async def user_delete(self, message_id: int) -> None:
        """Someone deletes a message: MESSAGE_DELETE (ids only)."""
        msg = self.message(message_id)
        msg.deleted = True
        await self.gateway.message_deleted(msg, by_bot=False)
        self._changed.notify()

    async def bulk_delete(self, channel_id: int, message_ids: Sequence[int]) -> None:
        """A moderator purges messages: MESSAGE_DELETE_BULK with their ids."""
        for message_id in message_ids:
            self.message(message_id).deleted = True
        guild_id = self.channels[channel_id].get("guild_id")
        await self.gateway.messages_deleted(
            channel_id, list(message_ids), int(guild_id) if guild_id is not None else None
        )
        self._changed.notify()

    async def user_react(
        self, message_id: int, emoji: str, *, user: JSON | None = None, remove: bool = False
    ) -> None:
        """Someone (default alice) adds, or with `remove` takes back, a reaction: MESSAGE_REACTION_ADD /
        _REMOVE to sessions with the reactions intent (GUILD_MESSAGE_REACTIONS, or DIRECT_... in a DM)."""
        msg = self.message(message_id)
        user_id = int((user or self.alice)["id"])
        users = msg.reactions.setdefault(emoji, [])
        if remove and user_id in users:
            users.remove(user_id)
        elif not remove and user_id not in users:
            users.append(user_id)
        if not users:
            del msg.reactions[emoji]
        await self.gateway.reaction_changed(msg, user_id, emoji, added=not remove)
        self._changed.notify()

    async def user_thread(
        self, parent_id: int, name: str, *, owner: JSON | None = None, thread_type: int = p.PUBLIC_THREAD
    ) -> int:
        """Someone (default alice) opens a thread in a channel: THREAD_CREATE (`newly_created`); its id."""
        thread_id = self.add_thread(
            parent_id, name, owner_id=int((owner or self.alice)["id"]), thread_type=thread_type
        )
        await self.gateway.thread_created(self.channels[thread_id], by_bot=False)
        self._changed.notify()
        return thread_id

    async def archive_thread(self, thread_id: int, *, archived: bool = True) -> None:
        """A thread is archived (or unarchived): THREAD_UPDATE; it moves to the archived-threads route."""
        metadata = self.channels[thread_id]["thread_metadata"]
        metadata["archived"] = archived
        metadata["archive_timestamp"] = p.iso()
        await self.gateway.thread_updated(self.channels[thread_id])
        self._changed.notify()

    async def set_channel_private(self, channel_id: int, private: bool = True) -> None:
        """An admin changes who may see a channel (@everyone denied VIEW_CHANNEL, or the overwrites cleared):
        CHANNEL_UPDATE with the whole channel."""
        channel = self.channels[channel_id]
        channel["permission_overwrites"] = self.view_overwrites(int(channel["guild_id"]), private=private)
        await self.gateway.channel_updated(channel)
        self._changed.notify()

    async def delete_thread(self, thread_id: int) -> None:
        """A thread is deleted with its messages: THREAD_DELETE."""
        thread = self.channels.pop(thread_id)
        for msg in self.messages(thread_id):
            msg.deleted = True
        await self.gateway.thread_deleted(thread)
        self._changed.notify()

    async def click(self, message_id: int, custom_id: str, *, user: JSON | None = None) -> InteractionRecord:
        """Someone (default alice) clicks the component `custom_id` of a message: INTERACTION_CREATE type 3.

        The component must be on the message (ValueError otherwise, or if disabled). Answer it as a command
        (4, 5), or with 6 DEFERRED_UPDATE_MESSAGE / 7 UPDATE_MESSAGE, after which the clicked message is
        `original_response(token)`. discord.py routes it to the View, persistent ones (`add_view`) included.
        """
        msg = self.message(message_id)
        component = _find_component(msg.components, custom_id)
        if component is None or component.get("disabled"):
            raise ValueError(f"message {message_id} has no enabled component {custom_id!r}")
        user = user or self.alice
        channel = self.channels[msg.channel_id]
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(120)[:140]
        interaction_id = p.snowflake()
        payload = p.component_interaction(
            interaction_id=interaction_id,
            application_id=self.application_id,
            token=token,
            custom_id=custom_id,
            component_type=int(component["type"]),
            message=self.message_payload(msg),
            channel=channel,
            invoker=user,
            guild_id=msg.guild_id,
        )
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            command="",
            options={},
            channel_id=msg.channel_id,
            guild_id=msg.guild_id,
            user=user,
            payload=payload,
            issued_at=time.monotonic(),
            interaction_type=p.INTERACTION_MESSAGE_COMPONENT,
            custom_id=custom_id,
            message_id=msg.id,
        )
        self.interactions[token] = record
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self._changed.notify()
        return record


def _find_component(components: list[JSON], custom_id: str) -> JSON | None:
    """The component with this custom_id anywhere in a message's component tree."""
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        for key in ("components", "accessory"):
            nested = component.get(key)
            children = nested if isinstance(nested, list) else [nested] if isinstance(nested, dict) else []
            found = _find_component(children, custom_id)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def discord_py_pointed_at(dc: FakeDiscord) -> Iterator[None]:
    """Point discord.py at the fake for the duration, then restore.

    Only the two public class attributes the adapter itself sets: `discord.http.Route.BASE` (REST and
    interaction webhooks) and `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`.
    """
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = dc.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(dc.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running_client(dc: FakeDiscord, client: Any, timeout: float = 5.0) -> AsyncIterator[None]:
    """Run a discord.py client against the fake (already `discord_py_pointed_at` it) until on_ready, and
    close it cleanly afterwards."""
    task = asyncio.create_task(client.start(dc.token))
    try:
        await dc.wait_ready(timeout=timeout)
        await asyncio.wait_for(client.wait_until_ready(), timeout)
        yield
    finally:
        await client.close()
        await asyncio.wait_for(task, timeout)
