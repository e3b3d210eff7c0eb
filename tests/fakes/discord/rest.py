"""The fake Discord's REST plumbing (API v10): routes in, Discord's answers and rate-limit headers out.

For every call, in order: record a `Call`, parse the JSON body (or a multipart upload's `payload_json`), check
`Authorization: Bot <token>` on routes that need it (401 otherwise), meet any injected `Failure`, charge the
rate limits, run the route's handler. JSON answers have `Content-Type: application/json` exactly, because
discord.py only parses JSON when the header is exactly that.

Rate limits (counted by `tests.fakes.ratelimit`): every response carries `X-RateLimit-Limit/Remaining/Reset/
Reset-After/Bucket` for its route's bucket: message create and message edit are separate buckets per channel,
adding and removing the bot's reactions one per channel (`reaction_rate`, Discord: 1 per 0.25 s), interaction
webhooks one bucket per token, other routes a generous one per route and major parameter. On top,
creates and edits in one channel share a hidden budget (`channel_message_rate`, "about 5 creates or edits per
5 s per channel"), which is what makes discord.py, which paces itself by the headers, still meet 429s when it
mixes sends and edits; and bot-authenticated routes share the global limit (`global_rate`, 50 per second;
interaction callbacks and webhooks are exempt, as on Discord). A 429 has Discord's body (`retry_after`,
`global`), a `Retry-After` header, `X-RateLimit-Scope` (user, shared or global) and `Via: 1.1 google` (without
`Via` discord.py blames Cloudflare and raises). 429s are counted per route in `rate_limited`.

The routes themselves are in `routes.py`. To add a route: write its handler there and add a `Route` line to
`DiscordRoutes.table()`; its name ("POST /channels/{channel_id}/messages") is what `requests()` and `fail()`
take. Nothing here changes unless the route needs a rate-limit bucket of its own (`_limits_for`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.failures import Failure, FailureQueue, drop_connection, refuse_stream_only
from tests.fakes.ratelimit import FixedWindow, Rate, RateLimiter

JSON = dict[str, Any]

API_PREFIX = f"/api/v{p.API_VERSION}"

# Routes whose rate-limit bucket is per channel and that also draw on the channel's shared message budget.
ROUTE_CREATE_MESSAGE = "POST /channels/{channel_id}/messages"
ROUTE_EDIT_MESSAGE = "PATCH /channels/{channel_id}/messages/{message_id}"
ROUTE_EDIT_ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
ROUTE_FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
ROUTE_CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
ROUTE_HISTORY = "GET /channels/{channel_id}/messages"
ROUTE_ADD_REACTION = "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
ROUTE_REMOVE_REACTION = "DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
ROUTE_ARCHIVED_THREADS = "GET /channels/{channel_id}/threads/archived/public"

_STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Call:
    """One REST request as the fake received it."""

    method: str
    path: str  # relative to the API base, e.g. "/channels/1/messages"
    route: str  # method + template, e.g. "POST /channels/{channel_id}/messages"
    query: dict[str, str]
    json: Any  # parsed JSON body (or multipart `payload_json`), None without a body
    time: float  # time.monotonic() at arrival
    status: int = 0  # filled in once answered; stays 0 for an injected disconnect or hang


class ApiError(Exception):
    """Raised by route handlers; becomes a JSON error response."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def unknown(code: int, text: str) -> ApiError:
    """Discord's 404 for a missing resource: 10003 Unknown Channel, 10008 Unknown Message, ..."""
    return ApiError(404, p.error(code, text))


Handler = Callable[[web.Request, Any], Awaitable[tuple[int, Any]]]  # (request, parsed body) -> (status, body)


@dataclass(frozen=True)
class Route:
    """One REST route: `handler` answers (status, JSON body); 204 sends no body."""

    method: str
    template: str  # relative to the API base, aiohttp-style: "/channels/{channel_id}/messages"
    handler: Handler
    auth: bool = True  # needs the bot token; interaction callbacks and webhooks authenticate by their token

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json", no charset: discord.py's json_or_text compares the header verbatim.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


async def read_body(request: web.Request) -> Any:
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


def _ceil_ms(seconds: float) -> float:
    # Rounded up so a client sleeping exactly this long never wakes inside the old window.
    return math.ceil(seconds * 1000) / 1000


def _route_key(name: str) -> str:
    """A route name with its parameters blanked, so `{id}` and `{channel_id}` name the same route."""
    return re.sub(r"\{[^}]*\}", "{}", name)


@dataclass(frozen=True)
class _Bucket:
    """One of a call's rate limits, with what its 429 says."""

    name: str
    window: FixedWindow
    scope: str  # X-RateLimit-Scope: "user" (the route's advertised bucket), "shared" or "global"


class Rest:
    """Serves a table of `Route`s under `/api/v10`; records `calls`, 429s in `rate_limited`."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        token: str,
        message_rate: Rate,
        channel_message_rate: Rate | None,
        webhook_rate: Rate,
        reaction_rate: Rate,
        default_rate: Rate,
        global_rate: Rate | None,
        notify: Callable[[], None],
    ) -> None:
        self.routes = list(routes)
        self.token = token
        self.message_rate = message_rate
        self.channel_message_rate = channel_message_rate
        self.webhook_rate = webhook_rate
        self.reaction_rate = reaction_rate
        self.default_rate = default_rate
        self.global_rate = global_rate
        self.calls: list[Call] = []
        self.rate_limited: Counter[str] = Counter()  # route -> 429s sent
        self.stopping = asyncio.Event()  # set when the server stops: releases hung calls
        self._notify = notify
        self._limiter = RateLimiter()
        self._names = {_route_key(r.name): r.name for r in self.routes}
        self._failures = FailureQueue(self._check_failure)

    # --- test controls ----------------------------------------------------------------------------------

    def fail(self, route: str, *failures: Failure, times: int = 1) -> None:
        """The next calls of `route` ("PATCH /channels/{id}/messages/{id}" or a `ROUTE_*`) meet `failures`.

        `Failure.http(500)`: 500 `{"code": 0, "message": "500: Internal Server Error"}`; `Failure.error(50035,
        message=...)`: 400 with that code; `Failure.rate_limit(retry_after=2, is_global=True)`: Discord's 429;
        `.disconnect()`, `.hang()`. Repeated `times`, consumed one per authenticated call.
        """
        self._failures.add(route, failures, times)

    def _check_failure(self, route: str, failure: Failure) -> str:
        name = self._names.get(_route_key(route))
        if name is None:
            raise ValueError(
                f"the fake Discord has no route {route!r}; it has: {sorted(self._names.values())}"
            )
        refuse_stream_only(name, failure)
        if failure.code is not None and not isinstance(failure.code, int):
            raise ValueError(f"Discord error codes are numbers such as 50035, not {failure.code!r}")
        return name

    def requests(self, route: str) -> list[Call]:
        """Calls to one route, e.g. `dc.requests("PATCH /channels/{channel_id}/messages/{message_id}")`."""
        return [c for c in self.calls if c.route == route]

    def reset_limits(self) -> None:
        """Forget rate-limit history (e.g. between phases of one test)."""
        self._limiter.reset()

    # --- serving ----------------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, API_PREFIX + route.template, self._endpoint(route))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._not_found)

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            path = request.path[len(API_PREFIX) :]
            call = Call(route.method, path, route.name, dict(request.query), None, time.monotonic())
            self.calls.append(call)
            try:
                call.json = await read_body(request)
            except ApiError as exc:
                response: web.StreamResponse = json_response(exc.status, exc.body)
            else:
                response = await self._answer(request, route, call.json)
            # 0 when the connection is gone (an injected disconnect or hang): nothing was answered.
            closed = request.transport is None or request.transport.is_closing()
            call.status = 0 if closed else response.status
            self._notify()
            return response

        return endpoint

    async def _answer(self, request: web.Request, route: Route, body: Any) -> web.StreamResponse:
        if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return json_response(401, p.error(0, "401: Unauthorized"))
        buckets = self._limits_for(route, request.match_info)
        now = time.monotonic()
        failure = self._failures.take(route.name)
        if failure is not None:
            return await self._injected(request, route, buckets[0], failure, now)
        refusal = self._limiter.acquire([b.window for b in buckets], now)
        headers = _bucket_headers(buckets[0], now)  # the advertised bucket, after this call was counted
        if refusal is not None:
            refused = next(b for b in buckets if b.window is refusal.limit)
            self.rate_limited[route.name] += 1
            retry_after = max(_ceil_ms(refusal.wait), 0.001)
            headers.update(_too_many_headers(retry_after, refused.scope))
            return json_response(
                429, p.rate_limited(retry_after, is_global=refused.scope == "global"), headers
            )
        try:
            status, payload = await route.handler(request, body)
        except ApiError as exc:
            return json_response(exc.status, exc.body, headers)
        if status == 204:
            return web.Response(status=204, headers=headers)
        return json_response(status, payload, headers)

    async def _injected(
        self, request: web.Request, route: Route, bucket: _Bucket, failure: Failure, now: float
    ) -> web.StreamResponse:
        """An injected failure, as Discord would answer it; it uses up no rate-limit budget."""
        if failure.kind == "hang":
            await self.stopping.wait()
        if failure.kind in ("hang", "disconnect"):
            return drop_connection(request)
        bucket.window.wait(now)  # bring the advertised bucket up to date without charging it
        headers = _bucket_headers(bucket, now)
        status = failure.status or 400
        if status == 429:
            self.rate_limited[route.name] += 1
            retry_after = 1.0 if failure.retry_after is None else failure.retry_after
            headers.update(_too_many_headers(retry_after, "global" if failure.is_global else "user"))
            return json_response(429, p.rate_limited(retry_after, is_global=failure.is_global), headers)
        if failure.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(failure.retry_after))
        text = failure.message or f"{status}: {_STATUS_TEXT.get(status, 'Error')}"
        return json_response(status, p.error(int(failure.code or 0), text), headers)

    def _limits_for(self, route: Route, match: Mapping[str, str]) -> list[_Bucket]:
        """The route's advertised bucket first, then any hidden shared budget and the global limit."""
        name = route.name
        buckets: list[_Bucket]
        if name in (ROUTE_CREATE_MESSAGE, ROUTE_EDIT_MESSAGE):
            channel = match["channel_id"]
            buckets = [self._bucket(name, channel, self.message_rate, "user")]
            if self.channel_message_rate is not None:
                buckets.append(self._bucket("channel messages", channel, self.channel_message_rate, "shared"))
        elif name in (ROUTE_ADD_REACTION, ROUTE_REMOVE_REACTION):
            buckets = [self._bucket("reactions", match["channel_id"], self.reaction_rate, "user")]
        elif "webhook_token" in match:
            # One bucket for all of a token's webhook routes, as discord.py's webhook adapter assumes.
            buckets = [self._bucket("webhook", match["webhook_token"], self.webhook_rate, "user")]
        else:
            major = match.get("channel_id") or match.get("guild_id") or match.get("interaction_id") or ""
            buckets = [self._bucket(name, major, self.default_rate, "user")]
        if route.auth and self.global_rate is not None:
            buckets.append(self._bucket("global", "", self.global_rate, "global"))
        return buckets

    def _bucket(self, name: str, major: str, rate: Rate, scope: str) -> _Bucket:
        return _Bucket(name, self._limiter.limit(name, major, lambda: FixedWindow(rate)), scope)

    async def _not_found(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        path = request.path[len(API_PREFIX) :]
        self.calls.append(Call(request.method, path, "?", dict(request.query), body, time.monotonic(), 404))
        return json_response(404, p.error(0, "404: Not Found"))


def _bucket_headers(bucket: _Bucket, now: float) -> dict[str, str]:
    window = bucket.window
    reset_after = _ceil_ms(window.reset_after(now))
    return {
        "X-RateLimit-Limit": str(window.rate.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": p.bucket_hash(bucket.name),
    }


def _too_many_headers(retry_after: float, scope: str) -> dict[str, str]:
    headers = {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": scope, "Via": "1.1 google"}
    if scope == "global":
        headers["X-RateLimit-Global"] = "true"
    return headers
