"""The fake Slack's Socket Mode server: `/socket?ticket=...` WebSockets, envelopes out, acks in.

`hello` on connect; tickets are single-use, as the URLs `apps.connections.open` returns are; envelopes go to
the newest live connection (waiting `connect_wait_s` for one), or to the one a test names (Slack spreads events
over an app's connections, up to 10: several processes each hold one), and `await envelope` gives the client's
ack.
Slack's `{"type": "disconnect"}` and abrupt drops are test controls. With `echo_bot_events`, the bot's own
messages come back as events, as they do for an app subscribed to `message.*`.

To push a new kind of envelope (`interactive` for block_actions, say): build its payload in
`slack_payloads.py` and call `push_envelope(type, payload, accepts_response_payload=...)`, or add a `push_*`
helper to `FakeSlack` when it also touches the workspace (as `push_event` stores the message first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import uuid
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes import slack_payloads as sp
from tests.fakes.base import Signal

Json = dict[str, Any]


@dataclass
class SocketConnection:
    """One Socket Mode WebSocket as the server sees it."""

    id: int
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    opened_at: float
    closed_at: float | None = None

    @property
    def live(self) -> bool:
        return self.closed_at is None and not self.ws.closed


@dataclass
class Envelope:
    """A Socket Mode envelope pushed to the app. `await envelope` gives the client's ack dict."""

    envelope_id: str
    type: str
    payload: Json
    accepts_response_payload: bool
    retry_attempt: int | None
    retry_reason: str | None
    future: asyncio.Future[Json]
    created_at: float
    sent_at: float | None = None
    acked_at: float | None = None
    ack: Json | None = None
    connection_id: int | None = None

    def to_wire(self) -> Json:
        """The JSON Slack sends: events_api envelopes carry retry fields, slash_commands do not."""
        wire: Json = {
            "envelope_id": self.envelope_id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.retry_attempt is not None:
            wire["retry_attempt"] = self.retry_attempt
            wire["retry_reason"] = self.retry_reason or ""
        return wire

    @property
    def ack_latency_s(self) -> float | None:
        """Seconds from sending the envelope to receiving its ack (Slack wants < 3 s)."""
        if self.sent_at is None or self.acked_at is None:
            return None
        return self.acked_at - self.sent_at

    def __await__(self) -> Generator[Any, None, Json]:
        return self.future.__await__()


class SocketMode:
    """Socket Mode connections and the envelopes sent over them (`envelopes`, `acks`, `connections`)."""

    def __init__(
        self, *, app_id: str, connect_wait_s: float, echo_bot_events: bool, clock: Callable[[], float]
    ) -> None:
        self.app_id = app_id
        self.connect_wait_s = connect_wait_s
        self.echo_bot_events = echo_bot_events
        self.clock = clock
        self.envelopes: list[Envelope] = []
        self.acks: list[Json] = []  # every ack frame received, in order, including unknown envelope ids
        self.connections: list[SocketConnection] = []
        self._tickets: set[str] = set()
        self._pending: dict[str, Envelope] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn_ids = itertools.count(1)
        self._changed = Signal()

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/socket", self._handle)

    def open_url(self, base_url: str) -> str:
        """A single-use WebSocket URL, as `apps.connections.open` returns."""
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        host = base_url.removeprefix("http://")
        return f"ws://{host}/socket?ticket={ticket}&app_id={self.app_id}"

    async def aclose(self) -> None:
        """Stop delivering, close live sockets (going away)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.connections:
            if conn.live:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1.0)

    def cancel_unacked(self) -> None:
        for env in self.envelopes:
            if not env.future.done():
                env.future.cancel()

    # ---------------------------------------------------------------- connections

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket: call apps.connections.open again")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn = SocketConnection(next(self._conn_ids), ws, request.transport, self.clock())
        self.connections.append(conn)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.live_connections),
                "debug_info": {
                    "host": f"applink-fake-{conn.id}",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._changed.notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
        finally:
            conn.closed_at = self.clock()
            self._changed.notify()
        return ws

    def _on_text(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except json.JSONDecodeError:
            return  # Slack drops what it cannot parse; the envelope stays un-acked
        if not isinstance(frame, dict) or "envelope_id" not in frame:
            return
        self.acks.append(frame)
        env = self._pending.pop(str(frame["envelope_id"]), None)
        if env is not None and not env.future.done():
            env.acked_at = self.clock()
            env.ack = frame
            env.future.set_result(frame)

    @property
    def live_connections(self) -> list[SocketConnection]:
        return [c for c in self.connections if c.live]

    async def wait_connected(self, total: int = 1, timeout: float = 5.0) -> SocketConnection:
        """Wait until `total` connections were ever opened and one is live; return the newest live one."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            live = self.live_connections
            if len(self.connections) >= total and live:
                return live[-1]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no Socket Mode connection #{total} within {timeout} s")
            await self._changed.wait(remaining)

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        """Wait until no Socket Mode connection is live (e.g. after the app closed its client)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.live_connections:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"Socket Mode connections still open after {timeout} s")
            await self._changed.wait(remaining)

    async def disconnect_all(self, *, abrupt: bool = False) -> int:
        """Close every live connection (a close frame; `abrupt` drops TCP instead). Returns how many."""
        live = self.live_connections
        for conn in live:
            if abrupt and conn.transport is not None:
                conn.transport.close()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 2.0)
        return len(live)

    async def send_disconnect(self, reason: str = "refresh_requested") -> int:
        """Send Slack's `{"type": "disconnect", "reason": ...}` to every live connection ("warning",
        "refresh_requested", "link_disabled"); the SDK then reconnects through apps.connections.open."""
        live = self.live_connections
        for conn in live:
            await conn.ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": f"applink-fake-{conn.id}"}}
            )
        return len(live)

    # ---------------------------------------------------------------- envelopes

    def push_envelope(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: int | None = None,
    ) -> Envelope:
        """Send any envelope to the newest live connection (waiting up to `connect_wait_s` for one), or to the
        connection whose id is `connection`."""
        loop = asyncio.get_running_loop()
        env = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=type,
            payload=dict(payload),
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            future=loop.create_future(),
            created_at=self.clock(),
        )
        # Mark a failure as seen even if the test never awaits this envelope, so asyncio does not log it.
        env.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.envelopes.append(env)
        self._pending[env.envelope_id] = env
        self._spawn(self._deliver(env, connection))
        return env

    def push_event(
        self,
        payload: Mapping[str, Any],
        retry_attempt: int = 0,
        retry_reason: str | None = None,
        connection: int | None = None,
    ) -> Envelope:
        """An `event_callback` body as an `events_api` envelope; a retry defaults to reason "timeout"."""
        if retry_attempt and retry_reason is None:
            retry_reason = "timeout"
        return self.push_envelope(
            "events_api", payload, retry_attempt=retry_attempt, retry_reason=retry_reason or "",
            connection=connection,
        )

    def echo(self, event: Json) -> None:
        """Send the bot's own activity back as an event, as Slack does for an app subscribed to message.*."""
        if self.echo_bot_events and self.live_connections:
            self.push_event(sp.event_callback(event))

    async def _deliver(self, env: Envelope, connection: int | None) -> None:
        try:
            conn = await self.wait_connected(timeout=self.connect_wait_s)
            if connection is not None:
                named = [c for c in self.live_connections if c.id == connection]
                if not named:
                    raise ConnectionError(f"connection {connection} is not live")
                conn = named[0]
            await conn.ws.send_str(json.dumps(env.to_wire()))
            env.sent_at = self.clock()
            env.connection_id = conn.id
        except (TimeoutError, ConnectionError, RuntimeError) as exc:  # the test awaiting it gets the cause
            self._pending.pop(env.envelope_id, None)
            if not env.future.done():
                env.future.set_exception(
                    ConnectionError(f"envelope {env.envelope_id} not delivered: {exc!r}")
                )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
