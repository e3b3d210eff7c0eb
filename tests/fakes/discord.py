"""A fake Discord (REST API v10 + gateway) for offline tests of a real discord.py client.

It sits at the real network seam: point discord.py at it with the two public class attributes the adapter
itself sets, and discord.py's own HTTP client, rate limiter, gateway handshake and models run as in production.

    async with FakeDiscord(interaction_token_ttl=2.0) as dc:
        with discord_py_pointed_at(dc):          # Route.BASE and DiscordWebSocket.DEFAULT_GATEWAY
            client = discord.Client(intents=..., allowed_mentions=discord.AllowedMentions.none())
            await client.login(dc.token)
            task = asyncio.create_task(client.connect())
            await dc.wait_ready()
            inter = await dc.slash_command("moa", {"question": "why?"})
            await dc.wait_for(lambda: dc.original_response(inter.token))
            ...
            await client.close()

REST (under `/api/v10`): the routes discord.py uses at login, command sync, interaction responses (callback,
`@original`, follow-ups), messages (create / get / edit / delete / history / typing), threads and DMs. JSON
bodies have `Content-Type: application/json` exactly, because discord.py only parses JSON when the header is
exactly that. Errors use Discord's codes and bodies: 50035 Invalid Form Body with an `errors` tree, 10003 Unknown
Channel, 10008 Unknown Message, 10015 Unknown Webhook, 10062 Unknown interaction (callback after the 3 s
deadline), 40060 already acknowledged, 50027 Invalid Webhook Token (expired interaction token), 401 for a bad
bot token.

Rate limits: every response carries `X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket` for its route's
bucket (message create and message edit are separate buckets per channel; interaction webhooks one bucket per
token; other routes a generous one). On top, creates and edits in one channel share a hidden budget
(`channel_message_rate`, "about 5 creates or edits per 5 s per channel"), which is what makes discord.py, which
paces itself by the headers, still meet 429s when it mixes sends and edits. A 429 has Discord's body, a
`Retry-After` header, `X-RateLimit-Scope` and `Via: 1.1 google` (without `Via` discord.py blames Cloudflare and
raises). 429s are counted per route in `rate_limited`.

Gateway (`/gateway`, plain JSON text frames whatever `compress` the client asks for): HELLO -> IDENTIFY -> READY
(+ GUILD_CREATE per guild when the GUILDS intent is on) -> dispatches, ACK for every heartbeat, RESUME with replay
of missed events -> RESUMED, INVALID_SESSION for an unknown session, close 4004 for a bad token and 4014 for
privileged intents the app is not allowed. The bot's own REST actions are echoed as gateway events
(MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE / THREAD_CREATE) to sessions whose intents ask for them, as
Discord does, so self-filtering gets tested; user messages without the MESSAGE_CONTENT intent arrive with empty
content unless they are DMs or mention the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yarl
from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.base import LoopbackServer

JSON = dict[str, Any]
T = TypeVar("T")

API_PREFIX = f"/api/v{p.API_VERSION}"
Rate = tuple[int, float]
_SAME_AS_MESSAGE_RATE: Rate = (-1, -1.0)  # sentinel: the hidden channel budget defaults to message_rate

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_DESCRIPTION = 4096
MAX_EMBED_TOTAL = 6000
_COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")

# Routes whose rate-limit bucket is per channel and that also draw on the channel's shared message budget.
ROUTE_CREATE_MESSAGE = "POST /channels/{channel_id}/messages"
ROUTE_EDIT_MESSAGE = "PATCH /channels/{channel_id}/messages/{message_id}"
ROUTE_EDIT_ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
ROUTE_FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
ROUTE_CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"


# --- recorded state ----------------------------------------------------------------------------------------


@dataclass
class Call:
    """One REST request as the fake received it."""

    method: str
    path: str  # relative to the API base, e.g. "/channels/1/messages"
    route: str  # method + template, e.g. "POST /channels/{channel_id}/messages"
    query: dict[str, str]
    json: Any  # parsed JSON body (or multipart `payload_json`), None without a body
    time: float  # time.monotonic() at arrival
    status: int = 0  # filled in once answered


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


@dataclass
class _Window:
    """A fixed-window counter: opens at the first request, resets `per` seconds later."""

    limit: int
    per: float
    bucket: str
    count: int = 0
    reset_at: float = 0.0

    def refresh(self, now: float) -> None:
        if now >= self.reset_at:
            self.count = 0
            self.reset_at = now + self.per

    def headers(self, now: float) -> dict[str, str]:
        reset_after = _ceil_ms(max(self.reset_at - now, 0.0))
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - self.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
        }


@dataclass(eq=False)
class _Session:
    id: str
    intents: int
    seq: int = 0
    frames: list[JSON] = field(default_factory=list)  # every dispatch, for RESUME replay
    conn: _Connection | None = None


@dataclass(eq=False)  # kept in a set, by identity
class _Connection:
    ws: web.WebSocketResponse
    query: dict[str, str]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None
    closed_by_server: bool = False

    async def close(self, code: int, reason: bytes) -> None:
        self.closed_by_server = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason)

    async def send(self, frame: JSON) -> None:
        # aiohttp frames are not safe to interleave from several tasks; one sender at a time.
        async with self.lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(json.dumps(frame))


class ApiError(Exception):
    """Raised by route handlers; becomes a JSON error response."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def _ceil_ms(seconds: float) -> float:
    # Rounded up so a client sleeping exactly this long never wakes inside the old window.
    return math.ceil(seconds * 1000) / 1000


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json", no charset: discord.py's json_or_text compares the header verbatim.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _unknown(code: int, text: str) -> ApiError:
    return ApiError(404, p.error(code, text))


Handler = Callable[[web.Request, Any], Awaitable[tuple[int, Any]]]
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- the fake ----------------------------------------------------------------------------------------------


class FakeDiscord(LoopbackServer):
    """aiohttp server on 127.0.0.1 (free port) speaking Discord's REST API v10 and gateway.

    Starts with one guild (`guild_id`, named "moa-test") holding text channels `channel_id` ("general") and
    `other_channel_id` ("random"), the bot user (`bot_id`, also the application id), two humans (`alice`,
    `bob`) and another bot (`other_bot`). Add more with `add_guild`, `add_channel`, `add_user`, `add_thread`
    before the client connects.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "moa",
        interaction_token_ttl: float = 15 * 60,
        interaction_ack_deadline: float = 3.0,
        message_rate: Rate = (5, 5.0),
        channel_message_rate: Rate | None = _SAME_AS_MESSAGE_RATE,
        webhook_rate: Rate = (5, 2.0),
        default_rate: Rate = (50, 1.0),
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
            heartbeat_interval_ms: sent in HELLO.
            privileged_intents: False makes IDENTIFY with MESSAGE_CONTENT / GUILD_MEMBERS / GUILD_PRESENCES
                close with 4014, as for an app whose toggles are off in the developer portal.
            echo_bot_events: dispatch gateway events for the bot's own REST actions, as Discord does.
            port: 0 for any free port; a fixed one lets a test restart "the same" Discord.
        """
        self.token = token
        self.interaction_token_ttl = interaction_token_ttl
        self.interaction_ack_deadline = interaction_ack_deadline
        self.message_rate = message_rate
        self.channel_message_rate = (
            message_rate if channel_message_rate is _SAME_AS_MESSAGE_RATE else channel_message_rate
        )
        self.webhook_rate = webhook_rate
        self.default_rate = default_rate
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self.echo_bot_events = echo_bot_events

        # Recorded for assertions.
        self.calls: list[Call] = []
        self.rate_limited: Counter[str] = Counter()  # route -> 429s sent
        self.identifies: list[JSON] = []  # IDENTIFY `d` payloads
        self.resumes: list[JSON] = []  # RESUME `d` payloads
        self.heartbeats = 0
        self.ready_count = 0  # READY + GUILD_CREATEs fully sent
        self.command_syncs: list[tuple[int | None, list[JSON]]] = []  # (guild id or None, PUT body)
        self.gateway_sent: list[JSON] = []  # every frame the gateway sent, in order

        # World state.
        self.users: dict[int, JSON] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, JSON] = {}
        self._messages: dict[int, StoredMessage] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        self._commands: dict[int | None, list[JSON]] = {}
        self._dms: dict[int, int] = {}  # recipient id -> DM channel id

        self._windows: dict[tuple[str, str], _Window] = {}
        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.requested_port = port
        self._port: int | None = None

        self.bot_id = p.snowflake()
        self.application_id = self.bot_id  # modern apps: application id == bot user id
        self.bot_user = p.user(self.bot_id, bot_name, bot=True)
        self.users[self.bot_id] = self.bot_user
        self.alice = self.add_user("alice", guild_ids=())
        self.bob = self.add_user("bob", guild_ids=())
        self.other_bot = self.add_user("otherbot", bot=True, guild_ids=())
        self.guild_id = self.add_guild("moa-test", channel_names=("general", "random"))
        self.channel_id, self.other_channel_id = self.guilds[self.guild_id].channel_ids[:2]
        self.application_flags = (
            p.APP_FLAG_GATEWAY_PRESENCE_LIMITED
            | p.APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED
            | p.APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED
            | p.APP_FLAG_APPLICATION_COMMAND_BADGE
            if privileged_intents
            else p.APP_FLAG_APPLICATION_COMMAND_BADGE
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
        app.router.add_get("/gateway", self._gateway)
        for method, template, handler, auth in self._route_table():
            app.router.add_route(
                method, API_PREFIX + template, self._endpoint(method, template, handler, auth)
            )
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.requested_port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        # Close sockets first (1001 going away) so the server's shutdown does not wait on them.
        for conn in list(self._connections):
            await conn.close(1001, b"shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    @property
    def sync_count(self) -> int:
        return len(self.command_syncs)

    def requests(self, route: str) -> list[Call]:
        """Calls to one route, e.g. `dc.requests("PATCH /channels/{channel_id}/messages/{message_id}")`."""
        return [c for c in self.calls if c.route == route]

    @property
    def intents(self) -> int | None:
        """Intents of the last IDENTIFY."""
        return self.identifies[-1].get("intents") if self.identifies else None

    @property
    def connections(self) -> int:
        """Open gateway sockets."""
        return sum(1 for c in self._connections if not c.ws.closed)

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.02))

    async def wait_ready(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` READY sequences (READY + GUILD_CREATEs) have been sent in total."""
        await self.wait_for(lambda: self.ready_count >= count, timeout)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- pushing events ---------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Any, *, intent: int | None = None) -> int:
        """Send a DISPATCH (op 0) to every identified session; returns how many were connected.

        `intent`, when given, limits delivery to sessions that asked for it. Sessions whose socket is down
        keep the event for replay on RESUME, as Discord does.
        """
        delivered = 0
        for session in list(self._sessions.values()):
            if intent is not None and not session.intents & intent:
                continue
            delivered += await self._send_dispatch(session, event, data)
        return delivered

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
        command_id, command_guild_id = self._resolve_command(name, guild_id)
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
        await self.dispatch("INTERACTION_CREATE", payload)
        self._notify()
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
        author = author or self.alice
        channel = self.channels[channel_id or self.channel_id]
        cid = int(channel["id"])
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
            channel_id=cid,
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
        self._store(msg)
        await self._echo_create(msg, force=True)
        self._notify()
        return msg

    async def drop_connections(self, code: int = 4000, *, invalidate: bool = False) -> None:
        """Close every gateway socket (default 4000, resumable); `invalidate=True` forgets the sessions."""
        for conn in list(self._connections):
            await conn.close(code, b"dropped by test")
        if invalidate:
            self._sessions.clear()
        self._notify()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT on every socket: the client closes and resumes."""
        for conn in list(self._connections):
            await self._send_frame(conn, {"op": 7, "d": None, "s": None, "t": None})

    # --- gateway ----------------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=0)
        await ws.prepare(request)
        # `encoding`, `v` and `compress=zlib-stream` are accepted and ignored: frames are JSON text.
        conn = _Connection(ws=ws, query=dict(request.query))
        self._connections.add(conn)
        try:
            await self._send_frame(conn, p.hello(self.heartbeat_interval_ms))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await conn.close(4002, b"Error while decoding payload.")
                        break
                    await self._on_gateway_frame(conn, frame)
                elif msg.type is WSMsgType.BINARY:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
        finally:
            self._connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A client closing with 1000/1001 ends its session for good, as on Discord: no RESUME after.
                if not conn.closed_by_server and ws.close_code in (1000, 1001):
                    self._sessions.pop(session.id, None)
            self._notify()
        return ws

    async def _send_frame(self, conn: _Connection, frame: JSON) -> None:
        self.gateway_sent.append(frame)
        await conn.send(frame)

    async def _send_dispatch(self, session: _Session, event: str, data: Any) -> int:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.conn is None or session.conn.ws.closed:
            return 0
        await self._send_frame(session.conn, frame)
        return 1

    async def _on_gateway_frame(self, conn: _Connection, frame: JSON) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            await self._send_frame(conn, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:  # IDENTIFY
            await self._identify(conn, d or {})
        elif op == 6:  # RESUME
            await self._resume(conn, d or {})
        elif conn.session is None:
            await conn.close(4003, b"Not authenticated.")
        elif op == 8:  # REQUEST_GUILD_MEMBERS
            await self._members_chunk(conn.session, d or {})
        elif op in (3, 4):  # presence / voice state updates: accepted, nothing to do
            pass
        else:
            await conn.close(4001, b"Unknown opcode.")

    async def _identify(self, conn: _Connection, d: JSON) -> None:
        self.identifies.append(d)
        self._notify()
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
            return
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        intents = int(d.get("intents", 0))
        if not self.privileged_intents and intents & p.PRIVILEGED_INTENTS:
            await conn.close(4014, b"Disallowed intent(s).")
            return
        session = _Session(id=secrets.token_hex(16), intents=intents, conn=conn)
        conn.session = session
        self._sessions[session.id] = session
        ready = p.ready(
            bot_user=self.bot_user,
            guild_ids=list(self.guilds),
            session_id=session.id,
            resume_gateway_url=self.gateway_url,
            application_id=self.application_id,
            application_flags=self.application_flags,
        )
        await self._send_dispatch(session, "READY", ready)
        if intents & p.INTENT_GUILDS:
            for guild in self.guilds.values():
                await self._send_dispatch(session, "GUILD_CREATE", self._guild_create(guild))
        self.ready_count += 1
        self._notify()

    async def _resume(self, conn: _Connection, d: JSON) -> None:
        self.resumes.append(d)
        self._notify()
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(d.get("session_id")))
        if session is None:
            # d=false: not resumable, the client must IDENTIFY again.
            await self._send_frame(conn, {"op": 9, "d": False, "s": None, "t": None})
            return
        old = session.conn
        session.conn, conn.session = conn, session
        if old is not None and old is not conn:
            await old.close(4000, b"Session resumed elsewhere.")
        last_seen = int(d.get("seq") or 0)
        for frame in list(session.frames):
            if frame["s"] > last_seen:
                await self._send_frame(conn, frame)
        await self._send_dispatch(session, "RESUMED", {"_trace": ['["fake-gateway",{}]']})
        self._notify()

    async def _members_chunk(self, session: _Session, d: JSON) -> None:
        guild_id = int(d.get("guild_id") or 0)
        guild = self.guilds.get(guild_id)
        members = [] if guild is None else [self._member(uid, guild) for uid in guild.member_ids]
        chunk: JSON = {
            "guild_id": str(guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _member(self, user_id: int, guild: FakeGuild) -> JSON:
        return p.member(self.users[user_id], joined_at=guild.joined_at)

    def _guild_create(self, guild: FakeGuild) -> JSON:
        channels = [self.channels[c] for c in guild.channel_ids]
        threads = [
            c
            for c in self.channels.values()
            if c.get("guild_id") == str(guild.id) and c["type"] in p.THREAD_TYPES
        ]
        members = [self._member(uid, guild) for uid in guild.member_ids]
        return p.guild_create(
            guild.id,
            guild.name,
            owner_id=guild.owner_id,
            channels=channels,
            threads=threads,
            members=members,
            joined_at=guild.joined_at,
        )

    # --- REST plumbing ----------------------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, str, Handler, bool]]:
        """(method, template, handler, needs bot auth)."""
        return [
            ("GET", "/gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True),
            ("GET", "/users/@me", self._get_me, True),
            ("GET", "/oauth2/applications/@me", self._get_application, True),
            ("GET", "/applications/{application_id}/commands", self._get_commands, True),
            ("PUT", "/applications/{application_id}/commands", self._put_commands, True),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._get_commands, True),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._put_commands, True),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback, False),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._followup, False),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._get_webhook_msg,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._edit_webhook_msg,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._del_webhook_msg,
                False,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel, True),
            ("GET", "/channels/{channel_id}/messages", self._get_history, True),
            ("POST", "/channels/{channel_id}/messages", self._create_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message, True),
            ("POST", "/channels/{channel_id}/typing", self._typing, True),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._thread_from_message, True),
            ("POST", "/channels/{channel_id}/threads", self._thread_without_message, True),
            ("POST", "/users/@me/channels", self._open_dm, True),
        ]

    def _endpoint(self, method: str, template: str, handler: Handler, auth: bool) -> Endpoint:
        route = f"{method} {template}"

        async def endpoint(request: web.Request) -> web.StreamResponse:
            call = Call(
                method, request.path[len(API_PREFIX) :], route, dict(request.query), None, time.monotonic()
            )
            self.calls.append(call)
            try:
                call.json = await _read_body(request)
            except ApiError as exc:
                response: web.StreamResponse = _json_response(exc.status, exc.body)
            else:
                response = await self._answer(request, route, handler, auth, call.json)
            call.status = response.status
            self._notify()
            return response

        return endpoint

    async def _answer(
        self, request: web.Request, route: str, handler: Handler, auth: bool, body: Any
    ) -> web.StreamResponse:
        if auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json_response(401, p.error(0, "401: Unauthorized"))
        windows = self._windows_for(route, request.match_info)
        now = time.monotonic()
        for window in windows:
            window.refresh(now)
        headers = windows[0].headers(now)
        full = next((w for w in windows if w.count >= w.limit), None)
        if full is not None:
            # Nothing is charged for a refused request.
            self.rate_limited[route] += 1
            retry_after = max(_ceil_ms(full.reset_at - now), 0.001)
            scope = "shared" if full is not windows[0] else "user"
            headers.update(
                {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": scope, "Via": "1.1 google"}
            )
            return _json_response(429, p.rate_limited(retry_after), headers)
        for window in windows:
            window.count += 1
        headers = windows[0].headers(now)
        try:
            status, payload = await handler(request, body)
        except ApiError as exc:
            return _json_response(exc.status, exc.body, headers)
        if status == 204:
            return web.Response(status=204, headers=headers)
        return _json_response(status, payload, headers)

    def _windows_for(self, route: str, match: Mapping[str, str]) -> list[_Window]:
        """The route's advertised bucket first, then any hidden shared budget."""
        if route in (ROUTE_CREATE_MESSAGE, ROUTE_EDIT_MESSAGE):
            channel = match["channel_id"]
            windows = [self._window(route, channel, self.message_rate)]
            if self.channel_message_rate is not None:
                windows.append(self._window("channel messages", channel, self.channel_message_rate))
            return windows
        if "webhook_token" in match:
            # One bucket for all of a token's webhook routes, as discord.py's webhook adapter assumes.
            return [self._window("webhook", match["webhook_token"], self.webhook_rate)]
        major = match.get("channel_id") or match.get("guild_id") or match.get("interaction_id") or ""
        return [self._window(route, major, self.default_rate)]

    def _window(self, name: str, major: str, rate: Rate) -> _Window:
        key = (name, major)
        if key not in self._windows:
            self._windows[key] = _Window(limit=rate[0], per=rate[1], bucket=p.bucket_hash(name))
        return self._windows[key]

    async def _not_found(self, request: web.Request) -> web.Response:
        body = await _read_body(request)
        self.calls.append(
            Call(
                request.method,
                request.path[len(API_PREFIX) :],
                "?",
                dict(request.query),
                body,
                time.monotonic(),
                404,
            )
        )
        return _json_response(404, p.error(0, "404: Not Found"))

    # --- REST: login and commands -----------------------------------------------------------------------

    async def _get_gateway(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, p.gateway_bot(self.gateway_url)

    async def _get_me(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, p.current_user(self.bot_id, self.bot_user["username"])

    async def _get_application(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, p.application(
            self.application_id,
            self.bot_user["username"],
            owner=self.alice,
            bot=self.bot_user,
            flags=self.application_flags,
        )

    def _command_scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.application_id):
            raise ApiError(403, p.error(50001, "Missing Access"))
        guild = request.match_info.get("guild_id")
        if guild is None:
            return None
        if int(guild) not in self.guilds:
            raise ApiError(403, p.error(50001, "Missing Access"))
        return int(guild)

    async def _get_commands(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self.commands(self._command_scope(request))

    async def _put_commands(self, request: web.Request, body: Any) -> tuple[int, Any]:
        scope = self._command_scope(request)
        if not isinstance(body, list):
            raise ApiError(
                400, p.form_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            )
        seen: set[tuple[str, int]] = set()
        for index, definition in enumerate(body):
            _validate_command(index, definition, seen)
        # Bulk overwrite keeps the id of a command whose name and type are unchanged, as Discord does.
        existing = {(c["name"], c["type"]): c for c in self._commands.get(scope, [])}
        registered = []
        for definition in body:
            old = existing.get((definition["name"], definition.get("type", 1)))
            registered.append(
                p.application_command(
                    definition,
                    command_id=int(old["id"]) if old else p.snowflake(),
                    application_id=self.application_id,
                    guild_id=scope,
                    version=p.snowflake(),
                )
            )
        self._commands[scope] = registered
        self.command_syncs.append((scope, body))
        return 200, registered

    def _resolve_command(self, name: str, guild_id: int | None) -> tuple[int, int | None]:
        """(command id, guild id when it is a guild command) for an invocation, from synced definitions."""
        if guild_id is not None:
            for command in self._commands.get(guild_id, []):
                if command["name"] == name:
                    return int(command["id"]), guild_id
        for command in self._commands.get(None, []):
            if command["name"] == name:
                return int(command["id"]), None
        return p.snowflake(), None

    # --- REST: interactions -----------------------------------------------------------------------------

    async def _callback(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self.interactions.get(request.match_info["interaction_token"])
        if record is None or str(record.id) != request.match_info["interaction_id"]:
            raise _unknown(10062, "Unknown interaction")
        record.callback_attempts += 1
        if time.monotonic() - record.issued_at > self.interaction_ack_deadline:
            raise _unknown(10062, "Unknown interaction")
        if record.callback_type is not None:
            raise ApiError(400, p.error(40060, "Interaction has already been acknowledged."))
        body = body or {}
        callback_type = int(body.get("type", 0))
        data = body.get("data") or {}
        message: StoredMessage | None = None
        if callback_type == 4:
            message = self._new_message(
                record.channel_id,
                self.bot_user,
                data,
                field_prefix=("data",),
                interaction=record,
                message_type=p.MESSAGE_CHAT_INPUT_COMMAND,
            )
        elif callback_type == 5:
            # A deferred response is a "thinking..." message with the LOADING flag until the first edit.
            flags = p.FLAG_LOADING | (int(data.get("flags", 0)) & p.FLAG_EPHEMERAL)
            message = self._new_message(
                record.channel_id,
                self.bot_user,
                {"content": ""},
                allow_empty=True,
                interaction=record,
                message_type=p.MESSAGE_CHAT_INPUT_COMMAND,
                flags=flags,
            )
        elif callback_type not in (6, 7, 8, 9, 10, 12):
            raise ApiError(
                400,
                p.form_error(
                    ["type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}."
                ),
            )
        record.callback_type = callback_type
        record.callback_data = data
        if message is not None:
            record.original_message_id = message.id
            self._store(message)
            await self._echo_create(message)
        if not _truthy(request.query.get("with_response")):
            return 204, None
        return 200, p.interaction_callback(
            interaction_id=record.id,
            callback_type=callback_type,
            message_payload=self._payload(message) if message else None,
            loading=callback_type == 5,
            ephemeral=bool(message and message.ephemeral),
        )

    def _webhook_record(self, request: web.Request) -> InteractionRecord:
        """The interaction behind an application webhook token, or Discord's error for it."""
        record = self.interactions.get(request.match_info["webhook_token"])
        if record is None or request.match_info["webhook_id"] != str(self.application_id):
            raise _unknown(10015, "Unknown Webhook")
        if time.monotonic() - record.issued_at > self.interaction_token_ttl:
            raise ApiError(401, p.error(50027, "Invalid Webhook Token"))
        if record.callback_type is None:
            # The interaction webhook only exists once the interaction has been acknowledged.
            raise _unknown(10015, "Unknown Webhook")
        return record

    def _webhook_message(self, request: web.Request, record: InteractionRecord) -> StoredMessage:
        raw = request.match_info["message_id"]
        message_id = record.original_message_id if raw == "@original" else int(raw) if raw.isdigit() else None
        allowed = {record.original_message_id, *record.followup_ids}
        if message_id is None or message_id not in allowed or self._messages[message_id].deleted:
            raise _unknown(10008, "Unknown Message")
        return self._messages[message_id]

    async def _followup(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        channel_id = int(request.query.get("thread_id") or record.channel_id)
        self._channel(channel_id)
        message = self._new_message(channel_id, self.bot_user, body or {}, interaction=record)
        record.followup_ids.append(message.id)
        self._store(message)
        await self._echo_create(message)
        if not _truthy(request.query.get("wait")):
            return 204, None
        return 200, self._payload(message)

    async def _get_webhook_msg(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        return 200, self._payload(self._webhook_message(request, record))

    async def _edit_webhook_msg(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        message = self._webhook_message(request, record)
        await self._apply_edit(message, body or {})
        return 200, self._payload(message)

    async def _del_webhook_msg(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        await self._apply_delete(self._webhook_message(request, record))
        return 204, None

    # --- REST: channels and messages --------------------------------------------------------------------

    def _channel(self, channel_id: int | str) -> JSON:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise _unknown(10003, "Unknown Channel") from None

    def _channel_message(self, request: web.Request) -> StoredMessage:
        channel = self._channel(request.match_info["channel_id"])
        raw = request.match_info["message_id"]
        found = self._messages.get(int(raw)) if raw.isdigit() else None
        if found is None or found.deleted or str(found.channel_id) != channel["id"]:
            raise _unknown(10008, "Unknown Message")
        return found

    async def _get_channel(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self._channel(request.match_info["channel_id"])

    async def _get_history(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel = self._channel(request.match_info["channel_id"])
        limit = min(max(int(request.query.get("limit", 50)), 1), 100)
        found = self.messages(int(channel["id"]))
        if "before" in request.query:
            found = [m for m in found if m.id < int(request.query["before"])][-limit:]
        elif "after" in request.query:
            found = [m for m in found if m.id > int(request.query["after"])][:limit]
        else:
            found = found[-limit:]
        # Newest first, as Discord returns history.
        return 200, [self._payload(m) for m in reversed(found)]

    async def _create_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel = self._channel(request.match_info["channel_id"])
        if channel["type"] in (p.GUILD_FORUM, p.GUILD_MEDIA):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        message = self._new_message(int(channel["id"]), self.bot_user, body or {})
        self._store(message)
        await self._echo_create(message)
        return 200, self._payload(message)

    async def _get_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self._payload(self._channel_message(request))

    async def _edit_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self._channel_message(request)
        if message.author_id != self.bot_id:
            raise ApiError(403, p.error(50005, "Cannot edit a message authored by another user"))
        await self._apply_edit(message, body or {})
        return 200, self._payload(message)

    async def _delete_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        await self._apply_delete(self._channel_message(request))
        return 204, None

    async def _typing(self, request: web.Request, body: Any) -> tuple[int, Any]:
        self._channel(request.match_info["channel_id"])
        return 204, None

    async def _thread_from_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self._channel_message(request)
        parent = self.channels[message.channel_id]
        body = body or {}
        if parent["type"] == p.DM:
            raise ApiError(400, p.error(50003, "Cannot execute action on a DM channel"))
        if parent["type"] not in (p.GUILD_TEXT, p.GUILD_ANNOUNCEMENT):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        if message.thread_id is not None:
            raise ApiError(400, p.error(160004, "A thread has already been created for this message"))
        name = _thread_name(body)
        # The thread started from a message has the message's id.
        thread = p.thread_channel(
            message.id,
            int(parent["guild_id"]),
            message.channel_id,
            self.bot_id,
            name,
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
        )
        self.channels[message.id] = thread
        message.thread_id = message.id
        message.flags |= p.FLAG_HAS_THREAD
        await self._echo_thread(thread)
        return 201, thread

    async def _thread_without_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        parent = self._channel(request.match_info["channel_id"])
        body = body or {}
        if parent["type"] not in (p.GUILD_TEXT, p.GUILD_ANNOUNCEMENT):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        name = _thread_name(body)
        thread_type = int(body.get("type") or p.PRIVATE_THREAD)
        thread_id = p.snowflake()
        thread = p.thread_channel(
            thread_id,
            int(parent["guild_id"]),
            int(parent["id"]),
            self.bot_id,
            name,
            thread_type=thread_type,
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
            invitable=bool(body.get("invitable", True)),
        )
        self.channels[thread_id] = thread
        await self._echo_thread(thread)
        return 201, thread

    async def _open_dm(self, request: web.Request, body: Any) -> tuple[int, Any]:
        recipient_id = int((body or {}).get("recipient_id") or 0)
        if recipient_id not in self.users:
            raise _unknown(10013, "Unknown User")
        if recipient_id not in self._dms:
            channel_id = p.snowflake()
            self.channels[channel_id] = p.dm_channel(channel_id, self.users[recipient_id])
            self._dms[recipient_id] = channel_id
        return 200, self.channels[self._dms[recipient_id]]

    def dm_channel_id(self, user: JSON) -> int:
        """The DM channel between the bot and `user`, created if needed (for `user_message` in DMs)."""
        recipient_id = int(user["id"])
        if recipient_id not in self._dms:
            channel_id = p.snowflake()
            self.channels[channel_id] = p.dm_channel(channel_id, user)
            self._dms[recipient_id] = channel_id
        return self._dms[recipient_id]

    # --- message model ----------------------------------------------------------------------------------

    def _new_message(
        self,
        channel_id: int,
        author: JSON,
        body: JSON,
        *,
        field_prefix: tuple[str, ...] = (),
        allow_empty: bool = False,
        interaction: InteractionRecord | None = None,
        message_type: int | None = None,
        flags: int | None = None,
    ) -> StoredMessage:
        """Validate a create body as Discord does and build the message (not stored yet)."""
        channel = self.channels[channel_id]
        content = body.get("content")
        content = "" if content is None else str(content)
        embeds = list(body.get("embeds") or [])
        _validate_content(content, embeds, field_prefix)
        has_files = bool(body.get("attachments"))
        if not allow_empty and not (
            content
            or embeds
            or body.get("sticker_ids")
            or body.get("poll")
            or has_files
            or body.get("components")
        ):
            raise ApiError(400, p.error(50006, "Cannot send an empty message"))
        reference = None
        replied_author: int | None = None
        raw_ref = body.get("message_reference")
        if raw_ref:
            target = self._messages.get(int(raw_ref.get("message_id") or 0))
            if target is None or target.deleted:
                if raw_ref.get("fail_if_not_exists", True):
                    raise ApiError(
                        400,
                        p.form_error(
                            ["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                        ),
                    )
            else:
                reference = p.message_reference(target.id, target.channel_id, target.guild_id)
                replied_author = target.author_id
        allowed = body.get("allowed_mentions")
        pinged, everyone = _pings(content, allowed, replied_author)
        if flags is None:
            settable = p.FLAG_SUPPRESS_EMBEDS | p.FLAG_SUPPRESS_NOTIFICATIONS
            if interaction is not None:
                settable |= p.FLAG_EPHEMERAL
            flags = int(body.get("flags") or 0) & settable
        if message_type is None:
            message_type = p.MESSAGE_REPLY if reference else p.MESSAGE_DEFAULT
        msg = StoredMessage(
            id=p.snowflake(),
            channel_id=channel_id,
            guild_id=int(channel["guild_id"]) if "guild_id" in channel else None,
            author=author,
            content=content,
            created_at=time.time(),
            history=[content],
            allowed_mentions=[allowed],
            pinged=pinged,
            mention_everyone=everyone,
            embeds=embeds,
            components=list(body.get("components") or []),
            flags=flags,
            message_type=message_type,
            reference=reference,
        )
        if interaction is not None:
            msg.webhook_id = self.application_id
            msg.interaction_token = interaction.token
            owners = interaction.payload["authorizing_integration_owners"]
            msg.interaction_metadata = p.interaction_metadata(
                interaction.id, interaction.user, owners, interaction.original_message_id
            )
        return msg

    def _store(self, message: StoredMessage) -> None:
        self._messages[message.id] = message
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            channel["last_message_id"] = str(message.id)
            if channel["type"] in p.THREAD_TYPES:
                channel["message_count"] += 1
                channel["total_message_sent"] += 1

    async def _apply_edit(self, message: StoredMessage, body: JSON) -> None:
        if "content" in body:
            content = "" if body["content"] is None else str(body["content"])
        else:
            content = message.content
        embeds = list(body["embeds"] or []) if "embeds" in body else message.embeds
        _validate_content(content, embeds, ())
        allowed = body.get("allowed_mentions")
        # An edit without allowed_mentions is parsed with the defaults: mentions in it do ping.
        message.pinged, message.mention_everyone = _pings(content, allowed, None)
        message.content = content
        message.embeds = embeds
        if "components" in body:
            message.components = list(body["components"] or [])
        if body.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be changed by an edit; the other flags are Discord's to set.
            message.flags = (message.flags & ~p.FLAG_SUPPRESS_EMBEDS) | (
                int(body["flags"]) & p.FLAG_SUPPRESS_EMBEDS
            )
        message.flags &= ~p.FLAG_LOADING  # the first edit ends a deferred response's "thinking..." state
        message.history.append(content)
        message.allowed_mentions.append(allowed)
        message.edited_at = time.time()
        message.edit_times.append(time.monotonic())
        if self.echo_bot_events and not message.ephemeral:
            await self.dispatch(
                "MESSAGE_UPDATE", self._payload(message, gateway=True), intent=self._message_intent(message)
            )

    async def _apply_delete(self, message: StoredMessage) -> None:
        message.deleted = True
        if self.echo_bot_events and not message.ephemeral:
            data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                data["guild_id"] = str(message.guild_id)
            await self.dispatch("MESSAGE_DELETE", data, intent=self._message_intent(message))

    def _message_intent(self, message: StoredMessage) -> int:
        return p.INTENT_GUILD_MESSAGES if message.guild_id is not None else p.INTENT_DIRECT_MESSAGES

    def _payload(self, message: StoredMessage, *, gateway: bool = False, content: str | None = None) -> JSON:
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
            referenced = self._payload(target) if target is not None and not target.deleted else None
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

    async def _echo_create(self, message: StoredMessage, *, force: bool = False) -> None:
        """MESSAGE_CREATE to each session whose intents cover it (bot echoes only if `echo_bot_events`)."""
        if message.ephemeral or not (force or self.echo_bot_events):
            return
        intent = self._message_intent(message)
        for session in list(self._sessions.values()):
            if not session.intents & intent:
                continue
            await self._send_dispatch(
                session,
                "MESSAGE_CREATE",
                self._payload(message, gateway=True, content=self._visible_content(session, message)),
            )

    def _visible_content(self, session: _Session, message: StoredMessage) -> str | None:
        """None (full content) or "" where Discord withholds content for lack of MESSAGE_CONTENT."""
        if session.intents & p.INTENT_MESSAGE_CONTENT:
            return None
        if message.guild_id is None or message.author_id == self.bot_id or self.bot_id in message.pinged:
            return None
        return ""

    async def _echo_thread(self, thread: JSON) -> None:
        if self.echo_bot_events:
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}, intent=p.INTENT_GUILDS)


# --- validation helpers ------------------------------------------------------------------------------------


async def _read_body(request: web.Request) -> Any:
    """Parsed JSON body, or the `payload_json` part of a multipart upload; None without a body."""
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    text = await request.text()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(400, p.error(50109, "The request body contains invalid JSON.")) from None


def _validate_content(content: str, embeds: list[JSON], prefix: tuple[str, ...]) -> None:
    if len(content) > MAX_CONTENT:
        raise ApiError(
            400,
            p.form_error(
                [*prefix, "content"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            ),
        )
    if len(embeds) > MAX_EMBEDS:
        raise ApiError(
            400,
            p.form_error(
                [*prefix, "embeds"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
            ),
        )
    total = 0
    for index, embed in enumerate(embeds):
        description = str(embed.get("description") or "")
        if len(description) > MAX_EMBED_DESCRIPTION:
            raise ApiError(
                400,
                p.form_error(
                    [*prefix, "embeds", str(index), "description"],
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {MAX_EMBED_DESCRIPTION} or fewer in length.",
                ),
            )
        total += len(description) + len(str(embed.get("title") or ""))
        total += len(str((embed.get("footer") or {}).get("text") or ""))
        total += len(str((embed.get("author") or {}).get("name") or ""))
        total += sum(
            len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in embed.get("fields") or []
        )
    if total > MAX_EMBED_TOTAL:
        raise ApiError(
            400,
            p.form_error(
                [*prefix, "embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            ),
        )


def _validate_command(index: int, definition: Any, seen: set[tuple[str, int]]) -> None:
    if not isinstance(definition, dict):
        raise ApiError(
            400,
            p.form_error([str(index)], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"),
        )
    name = definition.get("name")
    command_type = int(definition.get("type", 1))
    if not isinstance(name, str) or (command_type == 1 and not _COMMAND_NAME.match(name)):
        raise ApiError(
            400,
            p.form_error([str(index), "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"),
        )
    description = definition.get("description", "")
    if command_type == 1 and not 1 <= len(description) <= 100:
        raise ApiError(
            400,
            p.form_error(
                [str(index), "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            ),
        )
    if (name, command_type) in seen:
        raise ApiError(
            400,
            p.form_error(
                [str(index), "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            ),
        )
    seen.add((name, command_type))


def _thread_name(body: JSON) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise ApiError(
            400, p.form_error(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        )
    return name


def _pings(content: str, allowed: JSON | None, replied_author: int | None) -> tuple[set[int], bool]:
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
