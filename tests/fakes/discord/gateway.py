"""The fake Discord's gateway (`/gateway`): sessions, the handshake, heartbeats, dispatches and resumes.

Plain JSON text frames whatever `compress` the client asks for: HELLO -> IDENTIFY -> READY (+ GUILD_CREATE per
guild when the GUILDS intent is on) -> dispatches, ACK for every heartbeat, RESUME with replay of missed
events -> RESUMED, INVALID_SESSION for an unknown session, close 4004 for a bad token and 4014 for privileged
intents the app is not allowed. The bot's own REST actions are echoed as gateway events (MESSAGE_CREATE /
MESSAGE_UPDATE / MESSAGE_DELETE / THREAD_CREATE / MESSAGE_REACTION_ADD / _REMOVE) to sessions whose intents
ask for them, as Discord does, so self-filtering gets tested; user messages without the MESSAGE_CONTENT intent
arrive with empty content (and no embeds, attachments or components) unless they are DMs or mention the bot.
What other people do arrives the same way: MESSAGE_CREATE / _UPDATE (the full message, as Discord now sends
it) / _DELETE / _DELETE_BULK (ids only) under GUILD_MESSAGES or DIRECT_MESSAGES, reactions under
GUILD_MESSAGE_REACTIONS or DIRECT_MESSAGE_REACTIONS, THREAD_CREATE / _UPDATE / _DELETE under GUILDS.
GUILD_CREATE lists only active threads, as Discord does. Sharding: an IDENTIFY with `shard: [id, count]` gets
READY (naming the shard) and GUILD_CREATEs for its own guilds only, `(guild_id >> 22) % count == id`, and every
dispatch goes to the sessions whose shard holds its guild (events of no guild, DMs among them, to shard 0); a
shard id not below the count closes 4010.

To send a new event: call `dispatch(name, data, intent=...)` with a payload built in `discord_payloads.py`, or
add a method here next to `message_created` when REST actions should echo it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.discord.state import DiscordState, FakeGuild, StoredMessage

JSON = dict[str, Any]


@dataclass(eq=False)
class _Session:
    id: str
    intents: int
    seq: int = 0
    frames: list[JSON] = field(default_factory=list)  # every dispatch, for RESUME replay
    conn: _Connection | None = None
    shard: tuple[int, int] = (0, 1)  # (id, count) from IDENTIFY

    def holds(self, guild_id: int | None) -> bool:
        """Whether this session's shard gets the events of `guild_id` (None: events of no guild, DMs)."""
        shard, count = self.shard
        return shard == 0 if guild_id is None else (guild_id >> 22) % count == shard


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


class Gateway:
    """Gateway sessions over one `DiscordState`; records IDENTIFYs, RESUMEs, heartbeats, every frame sent."""

    def __init__(
        self,
        state: DiscordState,
        *,
        token: str,
        heartbeat_interval_ms: int,
        privileged_intents: bool,
        echo_bot_events: bool,
        url: Callable[[], str],
        notify: Callable[[], None],
    ) -> None:
        self.state = state
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self.echo_bot_events = echo_bot_events
        self.identifies: list[JSON] = []  # IDENTIFY `d` payloads
        self.resumes: list[JSON] = []  # RESUME `d` payloads
        self.heartbeats = 0
        self.ready_count = 0  # READY + GUILD_CREATEs fully sent
        self.gateway_sent: list[JSON] = []  # every frame the gateway sent, in order
        self._url = url
        self._notify = notify
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[_Connection] = set()

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self._handle)

    async def aclose(self) -> None:
        # Close sockets first (1001 going away) so the server's shutdown does not wait on them.
        for conn in list(self._sockets):
            await conn.close(1001, b"shutting down")

    @property
    def intents(self) -> int | None:
        """Intents of the last IDENTIFY."""
        return self.identifies[-1].get("intents") if self.identifies else None

    @property
    def connections(self) -> int:
        """Open gateway sockets."""
        return sum(1 for c in self._sockets if not c.ws.closed)

    # --- test controls ----------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Any, *, intent: int | None = None) -> int:
        """Send a DISPATCH (op 0) to every identified session; returns how many were connected.

        `intent`, when given, limits delivery to sessions that asked for it. Sessions whose socket is down
        keep the event for replay on RESUME, as Discord does.
        """
        delivered = 0
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        for session in list(self._sessions.values()):
            if intent is not None and not session.intents & intent:
                continue
            if not session.holds(None if guild_id is None else int(guild_id)):
                continue
            delivered += await self._send_dispatch(session, event, data)
        return delivered

    async def drop_connections(self, code: int = 4000, *, invalidate: bool = False) -> None:
        """Close every gateway socket (default 4000, resumable); `invalidate=True` forgets the sessions."""
        for conn in list(self._sockets):
            await conn.close(code, b"dropped by test")
        if invalidate:
            self._sessions.clear()
        self._notify()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT on every socket: the client closes and resumes."""
        for conn in list(self._sockets):
            await self._send_frame(conn, {"op": 7, "d": None, "s": None, "t": None})

    # --- what REST actions echo -------------------------------------------------------------------------

    async def message_created(self, message: StoredMessage, *, by_bot: bool = True) -> None:
        """MESSAGE_CREATE to each session whose intents cover it (the bot's own only if `echo_bot_events`)."""
        if message.ephemeral or (by_bot and not self.echo_bot_events):
            return
        intent = _message_intent(message)
        for session in list(self._sessions.values()):
            if not session.intents & intent or not session.holds(message.guild_id):
                continue
            content = self._visible_content(session, message)
            payload = self.state.message_payload(message, gateway=True, content=content)
            await self._send_dispatch(session, "MESSAGE_CREATE", payload)

    async def message_updated(self, message: StoredMessage, *, by_bot: bool = True) -> None:
        """MESSAGE_UPDATE with the full message, content withheld as for MESSAGE_CREATE."""
        if message.ephemeral or (by_bot and not self.echo_bot_events):
            return
        intent = _message_intent(message)
        for session in list(self._sessions.values()):
            if session.intents & intent and session.holds(message.guild_id):
                content = self._visible_content(session, message)
                payload = self.state.message_payload(message, gateway=True, content=content)
                await self._send_dispatch(session, "MESSAGE_UPDATE", payload)

    async def message_deleted(self, message: StoredMessage, *, by_bot: bool = True) -> None:
        if message.ephemeral or (by_bot and not self.echo_bot_events):
            return
        data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self.dispatch("MESSAGE_DELETE", data, intent=_message_intent(message))

    async def messages_deleted(self, channel_id: int, message_ids: list[int], guild_id: int | None) -> None:
        """MESSAGE_DELETE_BULK: only ids, as a moderator's purge sends them."""
        data: JSON = {"ids": [str(i) for i in message_ids], "channel_id": str(channel_id)}
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        intent = p.INTENT_GUILD_MESSAGES if guild_id is not None else p.INTENT_DIRECT_MESSAGES
        await self.dispatch("MESSAGE_DELETE_BULK", data, intent=intent)

    async def reaction_changed(
        self, message: StoredMessage, user_id: int, emoji: str, *, added: bool
    ) -> None:
        """MESSAGE_REACTION_ADD / _REMOVE, only to sessions with the reactions intent for the place."""
        if user_id == self.state.bot_id and not self.echo_bot_events:
            return
        guild = self.state.guilds.get(message.guild_id) if message.guild_id is not None else None
        member = None
        if added and guild is not None and user_id in self.state.users:
            member = self._member(user_id, guild)
        data = p.reaction_event(
            user_id=user_id,
            channel_id=message.channel_id,
            message_id=message.id,
            emoji=emoji,
            guild_id=message.guild_id,
            member_payload=member,
            message_author_id=message.author_id,
            added=added,
        )
        intent = p.INTENT_GUILD_MESSAGE_REACTIONS if guild is not None else p.INTENT_DIRECT_MESSAGE_REACTIONS
        event = "MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE"
        await self.dispatch(event, data, intent=intent)

    async def thread_created(self, thread: JSON, *, by_bot: bool = True) -> None:
        if self.echo_bot_events or not by_bot:
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}, intent=p.INTENT_GUILDS)

    async def thread_updated(self, thread: JSON) -> None:
        await self.dispatch("THREAD_UPDATE", dict(thread), intent=p.INTENT_GUILDS)

    async def channel_updated(self, channel: JSON) -> None:
        await self.dispatch("CHANNEL_UPDATE", dict(channel), intent=p.INTENT_GUILDS)

    async def thread_deleted(self, thread: JSON) -> None:
        data = {k: thread[k] for k in ("id", "guild_id", "parent_id", "type")}
        await self.dispatch("THREAD_DELETE", data, intent=p.INTENT_GUILDS)

    def _visible_content(self, session: _Session, message: StoredMessage) -> str | None:
        """None (full content) or "" where Discord withholds content for lack of MESSAGE_CONTENT."""
        if session.intents & p.INTENT_MESSAGE_CONTENT:
            return None
        bot_id = self.state.bot_id
        if message.guild_id is None or message.author_id == bot_id or bot_id in message.pinged:
            return None
        return ""

    # --- the socket -------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=0)
        await ws.prepare(request)
        # `encoding`, `v` and `compress=zlib-stream` are accepted and ignored: frames are JSON text.
        conn = _Connection(ws=ws, query=dict(request.query))
        self._sockets.add(conn)
        try:
            await self._send_frame(conn, p.hello(self.heartbeat_interval_ms))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await conn.close(4002, b"Error while decoding payload.")
                        break
                    await self._on_frame(conn, frame)
                elif msg.type is WSMsgType.BINARY:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
        finally:
            self._sockets.discard(conn)
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

    async def _on_frame(self, conn: _Connection, frame: JSON) -> None:
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
        shard = d.get("shard")
        if shard is not None and not _valid_shard(shard):
            await conn.close(4010, b"Invalid shard.")
            return
        session = _Session(id=secrets.token_hex(16), intents=intents, conn=conn)
        if shard is not None:
            session.shard = (shard[0], shard[1])
        conn.session = session
        self._sessions[session.id] = session
        state = self.state
        guilds = [guild for guild in state.guilds.values() if session.holds(guild.id)]
        ready = p.ready(
            bot_user=state.bot_user,
            guild_ids=[guild.id for guild in guilds],
            session_id=session.id,
            resume_gateway_url=self._url(),
            application_id=state.application_id,
            application_flags=state.application_flags,
            shard=None if shard is None else session.shard,
        )
        await self._send_dispatch(session, "READY", ready)
        if intents & p.INTENT_GUILDS:
            for guild in guilds:
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
        guild = self.state.guilds.get(guild_id)
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
        return p.member(self.state.users[user_id], joined_at=guild.joined_at)

    def _guild_create(self, guild: FakeGuild) -> JSON:
        channels = self.state.channels
        threads = [
            c
            for c in channels.values()
            if c.get("guild_id") == str(guild.id)
            and c["type"] in p.THREAD_TYPES
            and not c["thread_metadata"]["archived"]
        ]
        return p.guild_create(
            guild.id,
            guild.name,
            owner_id=guild.owner_id,
            channels=[channels[c] for c in guild.channel_ids],
            threads=threads,
            members=[self._member(uid, guild) for uid in guild.member_ids],
            joined_at=guild.joined_at,
        )


def _valid_shard(shard: Any) -> bool:
    """`[shard_id, num_shards]`, with 0 <= shard_id < num_shards."""
    return (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(n, int) for n in shard)
        and 0 <= shard[0] < shard[1]
    )


def _message_intent(message: StoredMessage) -> int:
    return p.INTENT_GUILD_MESSAGES if message.guild_id is not None else p.INTENT_DIRECT_MESSAGES
