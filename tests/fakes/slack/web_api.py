"""The fake Slack's Web API plumbing: `/api/{method}` requests in, `{"ok": ...}` answers out.

For every call, in order: read the parameters (query string, form or JSON body), find the method (else
`unknown_method`), authenticate (`Authorization: Bearer`, or a `token` field outside JSON: `not_authed`,
`invalid_auth`, `not_allowed_token_type`), meet any injected `Failure`, apply the method's rate limit, run its
handler, record a `Call`. Errors are HTTP 200 `{"ok": false, "error"}` unless they say otherwise, as Slack
does; rate-limited calls are HTTP 429 with an integer `Retry-After` and use up no budget.

The methods themselves are in `methods.py`. To add a Web API method: write a handler there (params in, the
`ok` body's fields out, `ApiError` for Slack's errors) and register it in `SlackMethods.table()` with its
rate-limit tier and token type. Nothing here changes.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from aiohttp import web

from tests.fakes.failures import Failure, FailureQueue, drop_connection, refuse_stream_only
from tests.fakes.ratelimit import Limit, Rate, RateLimiter, SlidingWindow, TokenBucket

Json = dict[str, Any]

# Slack's Tier 1 and 2 (calls per minute); Tiers 3 and 4 are the fake's knobs.
_TIER1_PER_MINUTE = 1
_TIER2_PER_MINUTE = 20


class ApiError(Exception):
    """An error the fake answers with: `{"ok": false, "error": error, **extra}` at HTTP `status`."""

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


def invalid_arguments(*messages: str) -> ApiError:
    """Slack's `invalid_arguments` for a call that does not fit the method's schema, reasons included."""
    return ApiError(
        "invalid_arguments", extra={"response_metadata": {"messages": [f"[ERROR] {m}" for m in messages]}}
    )


class Call(NamedTuple):
    """One Web API request the fake received, with how it was answered."""

    method: str
    params: Json
    time: float  # the fake's clock (time.monotonic by default), at arrival
    status: int  # 0: no HTTP answer (an injected disconnect or hang)
    error: str | None  # None when ok; "disconnect" / "hang" for those injected failures
    retry_after: int | None  # set on 429s


@dataclass(frozen=True)
class Method:
    """A Web API method: its handler and how Slack limits it."""

    handler: Callable[[Json], Json]  # params in; the `ok` body's fields out, or ApiError
    tier: int | None = None  # rate-limit Tier 1-4, per workspace; None: not limited by the fake
    per_channel: bool = (
        False  # instead of a tier: chat.postMessage's "1 per second per channel, bursts allowed"
    )
    token: Literal["bot", "app"] = "bot"  # the token type it takes (apps.connections.open: the app token)


class WebApi:
    """Serves `/api/{method}` for a table of `Method`s; records `calls`, 429s in `rate_limited`."""

    def __init__(
        self,
        methods: Mapping[str, Method],
        *,
        bot_token: str,
        app_token: str,
        tier3_per_minute: int,
        tier4_per_minute: int,
        window_s: float,
        post_burst: int,
        post_interval_s: float,
        min_retry_after: int,
        latency_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.methods = methods
        self.bot_token = bot_token
        self.app_token = app_token
        self.tier_limits = {
            1: _TIER1_PER_MINUTE,
            2: _TIER2_PER_MINUTE,
            3: tier3_per_minute,
            4: tier4_per_minute,
        }
        self.window_s = window_s  # Slack's minute; tiers are calls per `window_s`
        self.post_burst = post_burst
        self.post_interval_s = post_interval_s
        self.min_retry_after = min_retry_after
        self.latency_s = latency_s
        self.clock = clock
        self.calls: list[Call] = []
        self.rate_limited: Counter[str] = Counter()
        self.stopping = asyncio.Event()  # set when the server stops: releases hung calls
        self._limiter = RateLimiter()
        self._failures = FailureQueue(self._check_failure)
        self._latency: dict[str, float] = {}

    # ---------------------------------------------------------------- test controls

    def fail(self, method: str, *failures: Failure, times: int = 1) -> None:
        """The next authenticated calls of `method` meet `failures` (repeated `times`), one per call.

        `Failure.error("msg_too_long")`: HTTP 200 with that error; `Failure.rate_limit(retry_after=2)`: 429
        `ratelimited` (counted in `rate_limited`); `Failure.http(500)` / `.server_error()`: HTTP 500
        `internal_error` unless a code is given; `.disconnect()`, `.hang()`.
        """
        self._failures.add(method, failures, times)

    def _check_failure(self, method: str, failure: Failure) -> str:
        if method not in self.methods:
            raise ValueError(f"the fake Slack has no Web API method {method!r}")
        refuse_stream_only(method, failure)
        if failure.code is not None and not isinstance(failure.code, str):
            raise ValueError(f"Slack errors are strings such as 'msg_too_long', not {failure.code!r}")
        return method

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every answer of `method` (a slow Slack); `latency_s` applies to the rest."""
        self._latency[method] = seconds

    def reset_limits(self) -> None:
        """Forget rate-limit history (e.g. between phases of one test)."""
        self._limiter.reset()

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        """Calls of one method; `ok=True` only the successful ones, `ok=False` only the failed ones."""
        return [c for c in self.calls if c.method == method and (ok is None or (c.error is None) == ok)]

    # ---------------------------------------------------------------- serving

    def mount(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        now = self.clock()
        params: Json = {}
        try:
            params, body_token = await _read_params(request)
            delay = self._latency.get(name, self.latency_s)
            if delay:
                await asyncio.sleep(delay)
            method = self.methods.get(name)
            if method is None:
                raise ApiError("unknown_method", extra={"req_method": name})
            self._authenticate(method, request.headers.get("Authorization"), body_token)
            failure = self._failures.take(name)
            if failure is not None:
                return await self._injected(request, name, params, now, failure)
            self._rate_limit(name, method, params, now)
            result = method.handler(params)
            self.calls.append(Call(name, params, now, 200, None, None))
            return web.json_response({"ok": True, **result}, headers=_extra_headers(name))
        except ApiError as error:
            retry_after = int(error.headers["Retry-After"]) if "Retry-After" in error.headers else None
            self.calls.append(Call(name, params, now, error.status, error.error, retry_after))
            body = {"ok": False, "error": error.error, **error.extra}
            return web.json_response(body, status=error.status, headers=error.headers)

    def _authenticate(self, method: Method, authorization: str | None, body_token: str | None) -> None:
        token = body_token
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if not token:
            raise ApiError("not_authed")
        if token == (self.app_token if method.token == "app" else self.bot_token):
            return
        if token in (self.app_token, self.bot_token):
            raise ApiError("not_allowed_token_type")
        raise ApiError("invalid_auth")

    async def _injected(
        self, request: web.Request, name: str, params: Json, now: float, failure: Failure
    ) -> web.Response:
        """An injected failure as Slack would meet it: an API error (raised as ApiError), or no answer."""
        if failure.kind == "http":
            status = 200 if failure.status is None else failure.status
            headers: dict[str, str] = {}
            if status == 429:
                self.rate_limited[name] += 1
            if status == 429 or failure.retry_after is not None:
                retry_after = 1.0 if failure.retry_after is None else failure.retry_after
                headers["Retry-After"] = str(math.ceil(retry_after))  # Slack sends whole seconds
            default = "ratelimited" if status == 429 else "internal_error"
            raise ApiError(str(failure.code or default), status=status, headers=headers)
        self.calls.append(Call(name, params, now, 0, failure.kind, None))
        if failure.kind == "hang":
            await self.stopping.wait()
        return drop_connection(request)

    def _rate_limit(self, name: str, method: Method, params: Json, now: float) -> None:
        limit: Limit
        if method.per_channel:
            channel = str(params.get("channel", ""))
            limit = self._limiter.limit(
                name, channel, lambda: TokenBucket(self.post_burst, self.post_interval_s, now)
            )
        elif method.tier is not None:
            per_window = self.tier_limits[method.tier]
            limit = self._limiter.limit(name, "", lambda: SlidingWindow(Rate(per_window, self.window_s)))
        else:
            return
        refusal = self._limiter.acquire([limit], now)
        if refusal is not None:
            self.rate_limited[name] += 1
            retry_after = max(self.min_retry_after, math.ceil(refusal.wait))
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})


async def _read_params(request: web.Request) -> tuple[Json, str | None]:
    """Merge query string and body; return them with the token found outside the Authorization header."""
    params: Json = dict(request.query)
    body_token: str | None = params.pop("token", None)
    if request.content_type == "application/json":
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_json") from exc
        if not isinstance(body, dict):
            raise ApiError("invalid_json")
        body.pop("token", None)  # Slack ignores tokens inside JSON bodies: only the header counts
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = value
        body_token = params.pop("token", body_token)
    return params, body_token


def _extra_headers(method: str) -> dict[str, str]:
    if method == "auth.test":
        return {
            "x-oauth-scopes": "app_mentions:read,channels:history,chat:write,commands,im:history,users:read"
        }
    return {}
