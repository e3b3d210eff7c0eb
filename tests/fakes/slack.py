"""A faithful fake Slack for offline tests: Web API, rate limits, Socket Mode, response_url, signing.

It sits at the real network seam: tests point the real `slack_sdk.web.async_client.AsyncWebClient`
(`base_url=slack.api_url`) and the real Socket Mode client (via `apps.connections.open`) at it, so the SDKs'
parsing, retry handlers and our own error mapping run exactly as in production.

    async with FakeSlack(tier3_per_minute=50, window_s=6.0) as slack:   # 10x faster than real time
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        handler = AsyncSocketModeHandler(app, slack.app_token)          # app built with that client
        await handler.connect_async()
        ack = await slack.push_event(event_callback(app_mention("hi")))
        assert slack.bot_messages(CHANNEL_ID)[-1]["text"] == ...

What it serves:
- `/api/{method}`: auth.test, chat.postMessage, chat.update, chat.postEphemeral, chat.delete,
  conversations.replies, conversations.info, users.info, apps.connections.open. Form, query and JSON bodies;
  `Authorization: Bearer` (or a `token` field outside JSON). HTTP 200 `{"ok": false, "error"}` for API errors,
  as Slack does; `unknown_method`, `not_authed`, `invalid_auth`, `not_allowed_token_type` (bot token on
  apps.connections.open, app token elsewhere).
- Rate limits per method per workspace (sliding window, Tier 3 / Tier 4), and for chat.postMessage a token
  bucket per channel (1 per `post_interval_s`, burst `post_burst`). Over it: HTTP 429, integer `Retry-After`,
  `{"ok": false, "error": "ratelimited"}`. Rejected calls do not use up the window.
- `/socket?ticket=...`: Socket Mode. `hello` on connect, envelopes out, acks in; single-use tickets, as the
  URLs `apps.connections.open` returns are.
- `/commands/{team}/{id}/{secret}`: response_url endpoints (5 uses, as Slack allows).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import secrets
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes import slack_payloads as sp
from tests.fakes.base import LoopbackServer

Json = dict[str, Any]

# Rate-limit tier of each method (per minute at the default 60 s window). None: not limited by the fake.
# auth.test and apps.connections.open have their own generous tiers; limiting them only slows reconnect tests.
_TIER3 = "tier3"
_TIER4 = "tier4"
_METHOD_TIERS: dict[str, str | None] = {
    "auth.test": None,
    "apps.connections.open": None,
    "chat.postMessage": None,  # per-channel bucket instead, see _TokenBucket
    "chat.update": _TIER3,
    "chat.delete": _TIER3,
    "conversations.replies": _TIER3,
    "conversations.info": _TIER3,
    "chat.postEphemeral": _TIER4,
    "users.info": _TIER4,
}
_BLOCK_TYPES = {
    "section", "header", "markdown", "context", "divider", "rich_text", "actions",
    "image", "input", "file", "video", "table", "context_actions",
}  # fmt: skip
_MAX_BLOCKS = 50
_MAX_SECTION_TEXT = 3000
_MAX_SECTION_FIELD = 2000
_MAX_HEADER_TEXT = 150
_MAX_MARKDOWN_TOTAL = 12000  # all `markdown` blocks (and markdown_text) of one payload together
_RESPONSE_URL_USES = 5


class SlackApiFailure(Exception):
    """An error the fake answers with: `{"ok": false, "error": error}` at HTTP `status`."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class Call(NamedTuple):
    """One Web API request the fake received, with how it was answered."""

    method: str
    params: Json
    time: float  # the fake's clock (time.monotonic by default), at arrival
    status: int
    error: str | None  # None when ok
    retry_after: int | None  # set on 429s


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


class _SlidingWindow:
    """At most `limit` accepted calls in any `window_s` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def acquire(self, now: float) -> float:
        """Take a slot and return 0, or return the seconds until one frees up."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window_s - now
        self._times.append(now)
        return 0.0


class _TokenBucket:
    """One token per `interval_s`, holding at most `burst`: Slack's "1 per second with short bursts"."""

    def __init__(self, burst: int, interval_s: float, now: float) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._tokens = float(burst)
        self._updated = now

    def acquire(self, now: float) -> float:
        if self.interval_s > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) / self.interval_s)
        else:
            self._tokens = float(self.burst)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) * self.interval_s


@dataclass
class _QueuedFailure:
    error: str
    status: int
    retry_after: int | None
    remaining: int


def sign_request(
    body: bytes | str,
    signing_secret: str,
    timestamp: int | str | None = None,
    *,
    content_type: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with an HTTP-mode request: timestamp, `v0=` HMAC-SHA256 signature, content type.

    `content_type` defaults from the body: JSON for `{...}` (events), form-encoded otherwise (commands).
    `retry_num`/`retry_reason` add `X-Slack-Retry-Num`/`-Reason`, as Slack does on redelivery.
    """
    raw = body.encode() if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    if content_type is None:
        is_json = raw.lstrip().startswith(b"{")
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return headers


def _flag(value: Any, default: bool) -> bool:
    """Slack booleans arrive as true/false, "true"/"false" or "1"/"0"."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"1", "true", "yes"}


def _ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec), int(frac.ljust(6, "0")[:6] or 0)


class FakeSlack(LoopbackServer):
    """A Slack workspace, its Web API and Socket Mode server on 127.0.0.1 (a free port).

    Time knobs: `window_s` is Slack's 60 s rate-limit minute; shrink it to speed tests up (the per-channel
    post interval follows it unless given). `clock` lets a test drive time itself.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-1-fake-bot-token",
        app_token: str = "xapp-1-A0FAKEAPP-1-fake-app-token",
        tier3_per_minute: int = 50,
        tier4_per_minute: int = 100,
        window_s: float = 60.0,
        post_burst: int = 3,
        post_interval_s: float | None = None,
        min_retry_after: int = 1,
        max_text_chars: int = 4000,
        replies_max_limit: int = 1000,
        echo_bot_events: bool = False,
        latency_s: float = 0.0,
        connect_wait_s: float = 5.0,
        response_url_ttl_s: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = sp.TEAM_ID
        self.team_name = sp.TEAM_NAME
        self.team_domain = sp.TEAM_DOMAIN
        self.api_app_id = sp.API_APP_ID
        self.bot_user_id = sp.BOT_USER_ID
        self.bot_id = sp.BOT_ID
        self.tier_limits = {_TIER3: tier3_per_minute, _TIER4: tier4_per_minute}
        self.window_s = window_s
        self.post_burst = post_burst
        self.post_interval_s = window_s / 60.0 if post_interval_s is None else post_interval_s
        self.min_retry_after = min_retry_after
        self.max_text_chars = max_text_chars
        self.replies_max_limit = replies_max_limit
        self.echo_bot_events = echo_bot_events
        self.latency_s = latency_s
        self.connect_wait_s = connect_wait_s
        self.response_url_ttl_s = response_url_ttl_s
        self.requested_port = port  # 0: any free port; a fixed one lets a test restart "the same" Slack
        self.clock = clock

        # Recorded state, for assertions.
        self.calls: list[Call] = []
        self.rate_limited: Counter[str] = Counter()
        self.envelopes: list[Envelope] = []
        self.acks: list[Json] = []  # every ack frame received, in order, including unknown envelope ids
        self.connections: list[SocketConnection] = []
        self.ephemerals: list[Json] = []
        self.response_url_posts: list[Json] = []
        self.channels: dict[str, Json] = {}
        self.users: dict[str, Json] = {}

        self._messages: dict[str, list[Json]] = {}
        self._windows: dict[str, _SlidingWindow] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._failures: dict[str, deque[_QueuedFailure]] = {}
        self._latency: dict[str, float] = {}
        self._tickets: set[str] = set()
        self._pending: dict[str, Envelope] = {}
        self._response_urls: dict[str, Json] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn_ids = itertools.count(1)
        self._conn_changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._seed()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/socket", self._handle_socket)
        app.router.add_post("/commands/{team}/{hook}/{secret}", self._handle_response_url)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        # Bind ourselves: the port is known without reaching into the site's private server.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.requested_port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._conn_changed = asyncio.Event()

    async def aclose(self) -> None:
        """Close sockets, stop serving, cancel envelopes nobody acked."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.connections:
            if conn.live:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for env in self.envelopes:
            if not env.future.done():
                env.future.cancel()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, for `AsyncWebClient(base_url=...)` and `SLACK_API_URL`."""
        return f"{self.base_url}/api/"

    # ---------------------------------------------------------------- workspace setup

    def _seed(self) -> None:
        self.add_user(sp.USER_ID, sp.USER_NAME, real_name="Alice Example")
        self.add_user(sp.OTHER_USER_ID, sp.OTHER_USER_NAME, real_name="Bob Example")
        self.add_user(sp.BOT_USER_ID, sp.BOT_NAME, is_bot=True, bot_id=sp.BOT_ID)
        self.add_user(sp.OTHER_BOT_USER_ID, "otherbot", is_bot=True, bot_id=sp.OTHER_BOT_ID)
        self.add_channel(sp.CHANNEL_ID, sp.CHANNEL_NAME, is_general=True)
        self.add_channel(sp.OTHER_CHANNEL_ID, "random")
        self.add_channel(sp.KNOWLEDGE_CHANNEL_ID, "knowledge")
        self.add_channel(sp.PRIVATE_CHANNEL_ID, "secret-project", is_private=True)
        self.add_channel(sp.NOT_MEMBER_CHANNEL_ID, "not-joined", is_member=False)
        self.add_channel(sp.DM_CHANNEL_ID, is_im=True, user=sp.USER_ID)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        is_bot: bool = False,
        bot_id: str | None = None,
        tz: str = "Europe/Paris",
    ) -> Json:
        """Add (or replace) a workspace member; returns the `users.info` user object."""
        real = real_name or name
        user: Json = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real,
            "tz": tz,
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {
                "real_name": real,
                "display_name": name,
                "real_name_normalized": real,
                "display_name_normalized": name,
                "team": self.team_id,
                **({"bot_id": bot_id} if bot_id else {}),
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1700000000,
        }
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_member: bool = True,
        is_private: bool = False,
        is_im: bool = False,
        user: str | None = None,
        is_archived: bool = False,
        is_general: bool = False,
    ) -> Json:
        """Add (or replace) a conversation; returns the `conversations.info` channel object.

        `is_member=False` makes posting answer `not_in_channel`. An IM needs `user`, the other party.
        """
        channel: Json
        if is_im:
            channel = {
                "id": channel_id,
                "created": 1700000000,
                "is_archived": is_archived,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "user": user or sp.USER_ID,
                "is_user_deleted": False,
                "priority": 0,
                "is_open": True,
            }
        else:
            name = name or channel_id.lower()
            channel = {
                "id": channel_id,
                "name": name,
                "is_channel": not is_private,
                "is_group": is_private,
                "is_im": False,
                "is_mpim": False,
                "is_private": is_private,
                "created": 1700000000,
                "is_archived": is_archived,
                "is_general": is_general,
                "unlinked": 0,
                "name_normalized": name,
                "is_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "is_ext_shared": False,
                "context_team_id": self.team_id,
                "creator": sp.USER_ID,
                "is_member": is_member,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        self.channels[channel_id] = channel
        self._messages.setdefault(channel_id, [])
        return channel

    def set_member(self, channel_id: str, is_member: bool) -> None:
        """Join or leave a channel as the bot."""
        self.channels[channel_id]["is_member"] = is_member

    def channel_type(self, channel_id: str) -> str:
        """The `channel_type` Slack puts on message events in this conversation."""
        ch = self.channels[channel_id]
        if ch.get("is_im"):
            return "im"
        if ch.get("is_mpim"):
            return "mpim"
        return "group" if ch.get("is_private") else "channel"

    # ---------------------------------------------------------------- messages (state)

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = sp.USER_ID,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        blocks: list[Json] | None = None,
    ) -> Json:
        """Store a message as if someone had posted it (e.g. the human question an event refers to)."""
        if channel not in self.channels:
            raise KeyError(f"unknown channel {channel}; add_channel() it first")
        rec: Json = {
            "type": "message",
            "channel": channel,
            "ts": ts or sp.next_ts(),
            "thread_ts": thread_ts,
            "text": text,
            "blocks": blocks,
            "markdown_text": None,
            "user": user,
            "bot_id": bot_id,
            "app_id": self.api_app_id if bot_id == self.bot_id else None,
            "team": self.team_id,
            "mrkdwn": True,
            "edited": None,
            "edits": [],
            "deleted": False,
            "posted_at": self.clock(),
            "updated_at": None,
        }
        msgs = self._messages[channel]
        msgs.append(rec)
        msgs.sort(key=lambda m: _ts_key(m["ts"]))
        return rec

    def store_event(self, payload: Mapping[str, Any]) -> Json | None:
        """Store the message an event (or `event_callback` body) refers to, once; None if not a new message.

        In real Slack the message exists before its event arrives, so `conversations.replies` must see it.
        `push_event` calls this for you; call it yourself in HTTP-mode tests.
        """
        event = payload.get("event", payload)
        if event.get("type") not in {"message", "app_mention"} or event.get("subtype") not in {
            None,
            "bot_message",
            "thread_broadcast",
            "file_share",
        }:
            return None
        channel, ts = event.get("channel"), event.get("ts")
        if channel not in self.channels or not ts or self._find(channel, ts) is not None:
            return None
        return self.add_message(
            channel,
            event.get("text", ""),
            user=event.get("user"),
            ts=ts,
            thread_ts=event.get("thread_ts"),
            bot_id=event.get("bot_id"),
            blocks=event.get("blocks"),
        )

    def messages(self, channel: str, *, include_deleted: bool = False) -> list[Json]:
        """Every message in a channel (top level and thread replies), oldest first.

        Each is a dict: ts, thread_ts, text, blocks, markdown_text, user, bot_id, mrkdwn, deleted,
        `edits` (previous versions, oldest first: {text, blocks, markdown_text, at}), posted_at, updated_at.
        """
        return [m for m in self._messages.get(channel, []) if include_deleted or not m["deleted"]]

    def message(self, channel: str, ts: str) -> Json:
        """One stored message (deleted ones included); KeyError if none has that ts."""
        rec = self._find(channel, ts)
        if rec is None:
            raise KeyError(f"no message {ts} in {channel}")
        return rec

    def thread(self, channel: str, thread_ts: str) -> list[Json]:
        """The thread's parent, then its replies, oldest first (deleted ones left out)."""
        return [
            m
            for m in self.messages(channel)
            if m["ts"] == thread_ts or (m["thread_ts"] == thread_ts and m["ts"] != thread_ts)
        ]

    def bot_messages(self, channel: str, *, thread_ts: str | None = None) -> list[Json]:
        """Messages this app's bot posted in a channel, or only in one thread."""
        msgs = self.thread(channel, thread_ts) if thread_ts else self.messages(channel)
        return [m for m in msgs if m["bot_id"] == self.bot_id]

    def _find(self, channel: str, ts: str) -> Json | None:
        for rec in self._messages.get(channel, []):
            if rec["ts"] == ts:
                return rec
        return None

    # ---------------------------------------------------------------- test controls

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Answer the next `times` authenticated calls of `method` with `error`.

        "ratelimited" defaults to HTTP 429 with `Retry-After: retry_after` and counts in `rate_limited`;
        other errors default to HTTP 200 (e.g. "internal_error" with status=500, "fatal_error").
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        queued = _QueuedFailure(error, status, retry_after if status == 429 else None, times)
        self._failures.setdefault(method, deque()).append(queued)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every answer of `method` (a slow Slack); `latency_s` applies to the rest."""
        self._latency[method] = seconds

    def reset_limits(self) -> None:
        """Forget rate-limit history (e.g. between phases of one test)."""
        self._windows.clear()
        self._buckets.clear()

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        """Calls of one method; `ok=True` only the successful ones, `ok=False` only the failed ones."""
        return [c for c in self.calls if c.method == method and (ok is None or (c.error is None) == ok)]

    # ---------------------------------------------------------------- Web API

    async def _read_params(self, request: web.Request) -> tuple[Json, str | None]:
        """Merge query string and body; return them with the token found outside the Authorization header."""
        params: Json = dict(request.query)
        body_token: str | None = params.pop("token", None)
        if request.content_type == "application/json":
            raw = await request.text()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                raise SlackApiFailure("invalid_json") from exc
            if not isinstance(body, dict):
                raise SlackApiFailure("invalid_json")
            body.pop("token", None)  # Slack ignores tokens inside JSON bodies: only the header counts
            params.update(body)
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = value
            body_token = params.pop("token", body_token)
        return params, body_token

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        now = self.clock()
        params: Json = {}
        try:
            params, body_token = await self._read_params(request)
            delay = self._latency.get(method, self.latency_s)
            if delay:
                await asyncio.sleep(delay)
            result = self._dispatch(method, params, request.headers.get("Authorization"), body_token, now)
            self.calls.append(Call(method, params, now, 200, None, None))
            return web.json_response({"ok": True, **result}, headers=self._extra_headers(method))
        except SlackApiFailure as failure:
            retry_after = int(failure.headers["Retry-After"]) if "Retry-After" in failure.headers else None
            self.calls.append(Call(method, params, now, failure.status, failure.error, retry_after))
            body = {"ok": False, "error": failure.error, **failure.extra}
            return web.json_response(body, status=failure.status, headers=failure.headers)

    def _extra_headers(self, method: str) -> dict[str, str]:
        if method == "auth.test":
            return {
                "x-oauth-scopes": "app_mentions:read,channels:history,chat:write,commands,im:history,users:read"
            }
        return {}

    def _dispatch(
        self, method: str, params: Json, authorization: str | None, body_token: str | None, now: float
    ) -> Json:
        handler = self._handlers().get(method)
        if handler is None:
            raise SlackApiFailure("unknown_method", extra={"req_method": method})
        self._authenticate(method, authorization, body_token)
        self._injected_failure(method)
        self._rate_limit(method, params, now)
        return handler(params)

    def _handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }

    def _authenticate(self, method: str, authorization: str | None, body_token: str | None) -> None:
        token = body_token
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if not token:
            raise SlackApiFailure("not_authed")
        wants_app_token = method == "apps.connections.open"
        if token == (self.app_token if wants_app_token else self.bot_token):
            return
        if token in (self.app_token, self.bot_token):
            raise SlackApiFailure("not_allowed_token_type")
        raise SlackApiFailure("invalid_auth")

    def _injected_failure(self, method: str) -> None:
        queue = self._failures.get(method)
        if not queue:
            return
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.popleft()
        headers: dict[str, str] = {}
        if failure.status == 429:
            self.rate_limited[method] += 1
            headers["Retry-After"] = str(failure.retry_after if failure.retry_after is not None else 1)
        raise SlackApiFailure(failure.error, status=failure.status, headers=headers)

    def _rate_limit(self, method: str, params: Json, now: float) -> None:
        wait = 0.0
        if method == "chat.postMessage":
            key = str(params.get("channel", ""))
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _TokenBucket(self.post_burst, self.post_interval_s, now)
            wait = bucket.acquire(now)
        else:
            tier = _METHOD_TIERS.get(method)
            if tier is not None:
                window = self._windows.get(method)
                if window is None:
                    window = self._windows[method] = _SlidingWindow(self.tier_limits[tier], self.window_s)
                wait = window.acquire(now)
        if wait > 0:
            self.rate_limited[method] += 1
            retry_after = max(self.min_retry_after, math.ceil(wait))
            raise SlackApiFailure("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    # --- helpers shared by the methods

    def _channel(self, value: Any, *, allow_names: bool = False) -> Json:
        """Resolve a channel id (or, for posting, a name or user id opening the IM); check membership."""
        key = str(value or "")
        channel = self.channels.get(key)
        if channel is None and allow_names:
            name = key.removeprefix("#")
            channel = next((c for c in self.channels.values() if c.get("name") == name), None)
            if channel is None and key in self.users:
                channel = next(
                    (c for c in self.channels.values() if c.get("is_im") and c.get("user") == key), None
                ) or self.add_channel(f"D0{key[1:]}", is_im=True, user=key)
        if channel is None:
            raise SlackApiFailure("channel_not_found")
        if channel.get("is_archived"):
            raise SlackApiFailure("is_archived")
        if not channel.get("is_im") and not channel.get("is_member"):
            # A private channel the bot is not in is invisible to it, as in Slack.
            raise SlackApiFailure("channel_not_found" if channel.get("is_private") else "not_in_channel")
        return channel

    def _content(self, params: Json, *, require: bool = True) -> Json:
        """Validate text / blocks / markdown_text as Slack does; return the normalized ones given."""
        text = params.get("text")
        text = None if text is None else str(text)
        markdown_text = params.get("markdown_text")
        markdown_text = None if markdown_text is None else str(markdown_text)
        blocks = self._blocks(params.get("blocks"))
        attachments = params.get("attachments")
        if markdown_text and (text or blocks):
            raise SlackApiFailure("markdown_text_conflict")
        if require and not (text or blocks or markdown_text or attachments):
            raise SlackApiFailure("no_text")
        if text is not None and len(text) > self.max_text_chars:
            raise SlackApiFailure("msg_too_long")
        if markdown_text is not None and len(markdown_text) > _MAX_MARKDOWN_TOTAL:
            raise SlackApiFailure("msg_too_long")
        if blocks is not None:
            self._validate_blocks(blocks)
        return {"text": text, "blocks": blocks, "markdown_text": markdown_text}

    @staticmethod
    def _blocks(value: Any) -> list[Json] | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise SlackApiFailure("invalid_blocks_format") from exc
        if not isinstance(value, list):
            raise SlackApiFailure("invalid_blocks_format")
        return value

    @staticmethod
    def _validate_blocks(blocks: list[Any]) -> None:
        errors: list[str] = []
        if len(blocks) > _MAX_BLOCKS:
            errors.append(f"no more than {_MAX_BLOCKS} items allowed [json-pointer:/blocks]")
        markdown_total = 0
        for i, block in enumerate(blocks):
            where = f"[json-pointer:/blocks/{i}"
            if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
                errors.append(f"unsupported type {where}/type]")
                continue
            kind = block["type"]
            text_obj = block.get("text")
            body = text_obj.get("text", "") if isinstance(text_obj, dict) else text_obj
            if kind == "section":
                fields = block.get("fields") or []
                if not body and not fields:
                    errors.append(f"must provide either text or fields {where}]")
                if body and len(body) > _MAX_SECTION_TEXT:
                    errors.append(f"must be less than {_MAX_SECTION_TEXT + 1} characters {where}/text/text]")
                if len(fields) > 10:
                    errors.append(f"no more than 10 items allowed {where}/fields]")
                for j, f in enumerate(fields):
                    if len(f.get("text", "")) > _MAX_SECTION_FIELD:
                        errors.append(
                            f"must be less than {_MAX_SECTION_FIELD + 1} characters {where}/fields/{j}]"
                        )
            elif kind == "header":
                if not body or len(body) > _MAX_HEADER_TEXT:
                    errors.append(f"must be less than {_MAX_HEADER_TEXT + 1} characters {where}/text/text]")
            elif kind == "markdown":
                if not isinstance(body, str) or not body:
                    errors.append(f"must provide text {where}/text]")
                else:
                    markdown_total += len(body)
        if markdown_total > _MAX_MARKDOWN_TOTAL:
            errors.append(
                f"markdown blocks exceed {_MAX_MARKDOWN_TOTAL} characters in total [json-pointer:/blocks]"
            )
        if errors:
            raise SlackApiFailure(
                "invalid_blocks",
                extra={"errors": errors, "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}},
            )

    def _api_message(self, rec: Json) -> Json:
        """A stored message as the Web API shows it (no fake-only bookkeeping)."""
        msg: Json = {"type": "message", "ts": rec["ts"], "text": rec["text"] or rec["markdown_text"] or ""}
        for key in ("user", "bot_id", "app_id", "team"):
            if rec.get(key):
                msg[key] = rec[key]
        blocks = rec["blocks"]
        if blocks is None and rec["markdown_text"]:
            # Slack renders markdown_text as a markdown block.
            blocks = [{"type": "markdown", "text": rec["markdown_text"]}]
        if blocks is not None:
            msg["blocks"] = blocks
        if rec["bot_id"] == self.bot_id:
            msg["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.api_app_id,
                "name": sp.BOT_NAME,
                "deleted": False,
                "team_id": self.team_id,
            }
        if rec["edited"]:
            msg["edited"] = dict(rec["edited"])
        thread_ts = rec["thread_ts"]
        if thread_ts and thread_ts != rec["ts"]:
            msg["thread_ts"] = thread_ts
            parent = self._find(rec["channel"], thread_ts)
            msg["parent_user_id"] = (parent or {}).get("user") or rec.get("user")
        else:
            replies = [m for m in self.thread(rec["channel"], rec["ts"]) if m["ts"] != rec["ts"]]
            if replies:
                reply_users = list(dict.fromkeys(m["user"] for m in replies if m.get("user")))
                msg.update(
                    thread_ts=rec["ts"],
                    reply_count=len(replies),
                    reply_users_count=len(reply_users),
                    latest_reply=replies[-1]["ts"],
                    reply_users=reply_users,
                    is_locked=False,
                    subscribed=False,
                )
        return msg

    # --- the methods

    def _auth_test(self, params: Json) -> Json:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": sp.BOT_NAME,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Json) -> Json:
        channel = self._channel(params.get("channel"), allow_names=True)
        content = self._content(params)
        thread_ts = params.get("thread_ts") or None
        rec = self.add_message(
            channel["id"],
            content["text"] or "",
            user=self.bot_user_id,
            thread_ts=str(thread_ts) if thread_ts else None,
            bot_id=self.bot_id,
            blocks=content["blocks"],
        )
        rec["markdown_text"] = content["markdown_text"]
        rec["mrkdwn"] = _flag(params.get("mrkdwn"), True)
        if self.echo_bot_events:
            self._echo(
                sp.bot_message(
                    rec["text"] or rec["markdown_text"] or "",
                    channel=channel["id"],
                    bot_id=self.bot_id,
                    user=self.bot_user_id,
                    app_id=self.api_app_id,
                    ts=rec["ts"],
                    thread_ts=rec["thread_ts"],
                    channel_type=self.channel_type(channel["id"]),
                )
            )
        return {"channel": channel["id"], "ts": rec["ts"], "message": self._api_message(rec)}

    def _chat_update(self, params: Json) -> Json:
        channel = self._channel(params.get("channel"))
        rec = self._find(channel["id"], str(params.get("ts") or ""))
        if rec is None or rec["deleted"]:
            raise SlackApiFailure("message_not_found")
        if rec["bot_id"] != self.bot_id:
            raise SlackApiFailure("cant_update_message")
        content = self._content(params)
        previous_text = rec["text"] or rec["markdown_text"] or ""
        rec["edits"].append(
            {
                "text": rec["text"],
                "blocks": rec["blocks"],
                "markdown_text": rec["markdown_text"],
                "at": rec["updated_at"] or rec["posted_at"],
            }
        )
        if content["markdown_text"] is not None:
            rec.update(text=None, blocks=None, markdown_text=content["markdown_text"])
        else:
            # As documented for chat.update: blocks left out are kept; `blocks: []` removes them.
            rec["markdown_text"] = None
            if content["text"] is not None:
                rec["text"] = content["text"]
            if content["blocks"] is not None:
                rec["blocks"] = content["blocks"] or None
        if "mrkdwn" in params:
            rec["mrkdwn"] = _flag(params.get("mrkdwn"), True)
        rec["edited"] = {"user": self.bot_user_id, "ts": sp.next_ts()}
        rec["updated_at"] = self.clock()
        if self.echo_bot_events:
            self._echo(
                sp.message_changed(
                    channel=channel["id"],
                    ts=rec["ts"],
                    text=rec["text"] or rec["markdown_text"] or "",
                    previous_text=previous_text,
                    thread_ts=rec["thread_ts"],
                    channel_type=self.channel_type(channel["id"]),
                )
            )
        message = self._api_message(rec)
        return {"channel": channel["id"], "ts": rec["ts"], "text": message["text"], "message": message}

    def _chat_post_ephemeral(self, params: Json) -> Json:
        channel = self._channel(params.get("channel"))
        user = str(params.get("user") or "")
        if user not in self.users:
            raise SlackApiFailure("user_not_found")
        content = self._content(params)
        ts = sp.next_ts()
        self.ephemerals.append(
            {
                "channel": channel["id"],
                "user": user,
                "ts": ts,
                "thread_ts": params.get("thread_ts"),
                **content,
            }
        )
        return {"message_ts": ts}

    def _chat_delete(self, params: Json) -> Json:
        channel = self._channel(params.get("channel"))
        rec = self._find(channel["id"], str(params.get("ts") or ""))
        if rec is None or rec["deleted"]:
            raise SlackApiFailure("message_not_found")
        if rec["bot_id"] != self.bot_id:
            raise SlackApiFailure("cant_delete_message")
        rec["deleted"] = True
        rec["updated_at"] = self.clock()
        return {"channel": channel["id"], "ts": rec["ts"]}

    def _conversations_replies(self, params: Json) -> Json:
        channel = self._channel(params.get("channel"))
        rec = self._find(channel["id"], str(params.get("ts") or ""))
        if rec is None or rec["deleted"]:
            raise SlackApiFailure("thread_not_found")
        root = rec["thread_ts"] or rec["ts"]
        thread = self.thread(channel["id"], root) or [rec]
        limit = min(int(params.get("limit") or 1000), self.replies_max_limit)
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                start = int(base64.b64decode(str(cursor)).decode().removeprefix("offset:"))
            except ValueError as exc:
                raise SlackApiFailure("invalid_cursor") from exc
        page = thread[start : start + limit]
        has_more = start + limit < len(thread)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if has_more else ""
        return {
            "messages": [self._api_message(m) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_info(self, params: Json) -> Json:
        key = str(params.get("channel") or "")
        channel = self.channels.get(key)
        if channel is None or (channel.get("is_private") and not channel.get("is_member")):
            raise SlackApiFailure("channel_not_found")
        return {"channel": dict(channel)}

    def _users_info(self, params: Json) -> Json:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": user}

    def _apps_connections_open(self, params: Json) -> Json:
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        host = self.base_url.removeprefix("http://")
        return {"url": f"ws://{host}/socket?ticket={ticket}&app_id={self.api_app_id}"}

    # ---------------------------------------------------------------- response_url

    def new_response_url(self, channel_id: str = sp.CHANNEL_ID, user_id: str = sp.USER_ID) -> str:
        """A response_url served by the fake, tied to the channel and user of a slash command."""
        hook = str(len(self._response_urls) + 1)
        secret = secrets.token_hex(12)
        self._response_urls[hook] = {
            "channel": channel_id,
            "user": user_id,
            "uses": 0,
            "created": self.clock(),
        }
        return f"{self.base_url}/commands/{self.team_id}/{hook}/{secret}"

    def slash_command_form(self, text: str, **fields: Any) -> dict[str, str]:
        """`slash_command(...)` fields with a response_url served by this fake (for HTTP-mode tests)."""
        form = sp.slash_command(text, **fields)
        form["response_url"] = self.new_response_url(form["channel_id"], form["user_id"])
        return form

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        hook = self._response_urls.get(request.match_info["hook"])
        try:
            body: Json = (
                await request.json()
                if request.content_type == "application/json"
                else dict(await request.post())
            )
        except json.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self.response_url_posts.append({"url": str(request.url), "body": body, "time": self.clock()})
        if hook is None:
            return web.json_response({"ok": False, "error": "invalid_url"}, status=404)
        if self.clock() - hook["created"] > self.response_url_ttl_s:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if hook["uses"] >= _RESPONSE_URL_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        hook["uses"] += 1
        text, blocks = body.get("text"), body.get("blocks")
        if body.get("response_type") == "in_channel" and hook["channel"] in self.channels:
            self.add_message(
                hook["channel"],
                str(text or ""),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=body.get("thread_ts"),
                blocks=self._blocks(blocks),
            )
        elif not body.get("delete_original") and not body.get("replace_original"):
            self.ephemerals.append(
                {
                    "channel": hook["channel"],
                    "user": hook["user"],
                    "ts": sp.next_ts(),
                    "text": text,
                    "blocks": blocks,
                }
            )
        return web.json_response({"ok": True})

    # ---------------------------------------------------------------- Socket Mode

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
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
                "connection_info": {"app_id": self.api_app_id},
            }
        )
        self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(conn, msg.data)
        finally:
            conn.closed_at = self.clock()
            self._notify()
        return ws

    def _on_socket_text(self, conn: SocketConnection, data: str) -> None:
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

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        if self._conn_changed is not None:
            self._conn_changed.set()
            self._conn_changed = asyncio.Event()

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
            if remaining <= 0 or self._conn_changed is None:
                raise TimeoutError(f"no Socket Mode connection #{total} within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._conn_changed.wait(), remaining)

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        """Wait until no Socket Mode connection is live (e.g. after the app closed its client)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.live_connections:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._conn_changed is None:
                raise TimeoutError(f"Socket Mode connections still open after {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._conn_changed.wait(), remaining)

    def push_envelope(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> Envelope:
        """Send any envelope to the newest live connection (waiting up to `connect_wait_s` for one)."""
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
        self._spawn(self._deliver(env))
        return env

    def push_event(
        self,
        payload: Mapping[str, Any],
        retry_attempt: int = 0,
        retry_reason: str | None = None,
        *,
        store: bool = True,
    ) -> Envelope:
        """Deliver an `event_callback` body as an `events_api` envelope; `await` it for the ack.

        A retry (`retry_attempt` > 0) defaults to reason "timeout", like Slack's redelivery of an un-acked
        envelope. `store` first records the message the event refers to (see `store_event`).
        """
        if store:
            self.store_event(payload)
        if retry_attempt and retry_reason is None:
            retry_reason = "timeout"
        return self.push_envelope(
            "events_api", payload, retry_attempt=retry_attempt, retry_reason=retry_reason or ""
        )

    def push_slash_command(self, form: Mapping[str, str]) -> Envelope:
        """Deliver slash command fields as a `slash_commands` envelope; `await` it for the ack.

        A response_url that does not point at this fake (builders default to hooks.slack.com) is replaced by
        one it serves, so `respond()` calls are recorded in `response_url_posts`.
        """
        fields = dict(form)
        url = fields.get("response_url", "")
        if not url.startswith(self.base_url):
            fields["response_url"] = self.new_response_url(
                fields.get("channel_id", sp.CHANNEL_ID), fields.get("user_id", sp.USER_ID)
            )
        return self.push_envelope("slash_commands", fields, accepts_response_payload=True)

    async def _deliver(self, env: Envelope) -> None:
        try:
            conn = await self.wait_connected(timeout=self.connect_wait_s)
            await conn.ws.send_str(json.dumps(env.to_wire()))
            env.sent_at = self.clock()
            env.connection_id = conn.id
        except (TimeoutError, ConnectionError, RuntimeError) as exc:  # the test awaiting it gets the cause
            self._pending.pop(env.envelope_id, None)
            if not env.future.done():
                env.future.set_exception(
                    ConnectionError(f"envelope {env.envelope_id} not delivered: {exc!r}")
                )

    def _echo(self, event: Json) -> None:
        """Send this bot's own activity back as events, as Slack does when the app subscribes to message.*."""
        if self.live_connections:
            self.push_event(sp.event_callback(event), store=False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    # ---------------------------------------------------------------- HTTP mode

    @staticmethod
    def signed_request(
        body: bytes | str,
        signing_secret: str,
        timestamp: int | str | None = None,
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> dict[str, str]:
        """Headers for POSTing `body` to an app's `/slack/events` as Slack would (see `sign_request`)."""
        return sign_request(body, signing_secret, timestamp, retry_num=retry_num, retry_reason=retry_reason)

    async def deliver_http(
        self,
        url: str,
        payload: Mapping[str, Any] | str | bytes,
        signing_secret: str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout_s: float = 3.0,
    ) -> tuple[int, str]:
        """POST a signed event (dict -> JSON) or slash command (dict with "command" -> form) to an app.

        Returns (status, body text). Slack gives an app 3 s (`timeout_s`) before it counts a failure and
        retries; a slower answer raises TimeoutError here. Event payloads are stored first, as in `push_event`.
        """
        if isinstance(payload, Mapping):
            if "command" in payload:
                body = sp.form_body({k: str(v) for k, v in payload.items()})
            else:
                self.store_event(payload)
                body = json.dumps(payload)
        else:
            body = payload.decode() if isinstance(payload, bytes) else payload
        headers = sign_request(
            body, signing_secret, timestamp, retry_num=retry_num, retry_reason=retry_reason
        )
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost"}:
            raise ValueError(f"refusing to POST test payloads off this machine: {url}")
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.post(url, data=body.encode(), headers=headers) as resp,
        ):
            return resp.status, await resp.text()


__all__ = [
    "Call",
    "Envelope",
    "FakeSlack",
    "SlackApiFailure",
    "SocketConnection",
    "sign_request",
]
