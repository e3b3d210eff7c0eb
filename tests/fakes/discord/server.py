"""`FakeDiscord`: the world (`state.py`) with its REST API and gateway on one port, and the test controls that
span them (`slash_command`, `user_message` store something and dispatch it)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import yarl
from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.base import Forward, LoopbackServer, Signal
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
    default_rate = Forward("rest")
    global_rate = Forward("rest")
    # REST routes (routes.py): records and knobs.
    command_syncs = Forward("routes")
    interaction_token_ttl = Forward("routes")
    interaction_ack_deadline = Forward("routes")
    max_content = Forward("routes")
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
        default_rate: Rate | tuple[int, float] = (50, 1.0),
        global_rate: Rate | tuple[int, float] | None = (50, 1.0),
        heartbeat_interval_ms: int = 41_250,
        privileged_intents: bool = True,
        echo_bot_events: bool = True,
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
            default_rate: per route (and channel / guild) for everything else.
            global_rate: all bot-authenticated calls together (Discord: 50 per second; None: off).
            heartbeat_interval_ms: sent in HELLO.
            privileged_intents: False makes IDENTIFY with MESSAGE_CONTENT / GUILD_MEMBERS / GUILD_PRESENCES
                close with 4014, as for an app whose toggles are off in the developer portal.
            echo_bot_events: dispatch gateway events for the bot's own REST actions, as Discord does.
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
        )
        if channel_message_rate is _SAME_AS_MESSAGE_RATE:
            channel_message_rate = message_rate
        self.rest = Rest(
            self.routes.table(),
            token=token,
            message_rate=Rate(*message_rate),
            channel_message_rate=None if channel_message_rate is None else Rate(*channel_message_rate),
            webhook_rate=Rate(*webhook_rate),
            default_rate=Rate(*default_rate),
            global_rate=None if global_rate is None else Rate(*global_rate),
            notify=self._changed.notify,
        )

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
    ) -> StoredMessage:
        """A message typed by someone else (default alice): stored, then MESSAGE_CREATE to the bot.

        Mentions are parsed from `<@id>` / `<@!id>` in `content`; `reply_to` makes it a reply (which also
        mentions the replied-to author unless `ping_reply=False`). Sessions without MESSAGE_CONTENT get
        empty content unless it is a DM or mentions the bot, as Discord sends it.
        """
        msg = self.add_user_message(
            channel_id or self.channel_id,
            content,
            author=author or self.alice,
            reply_to=reply_to,
            ping_reply=ping_reply,
        )
        await self.gateway.message_created(msg, by_bot=False)
        self._changed.notify()
        return msg


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
