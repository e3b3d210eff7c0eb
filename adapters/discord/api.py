"""The REST seam around discord.py: gateway discovery, the token check, call metrics and error mapping.

discord.py does almost all REST itself, its per-route buckets and 429 waits included; what it does not do
(discover the gateway from a custom API base, check a token for `moa-bot doctor`) goes through aiohttp here, with
a timeout. Every request discord.py makes is seen through its public `http_trace` hook and reported to the
`ApiObserver`; its exceptions are mapped in `write` (one place):

    discord.HTTPException (status, code)      raised by discord.py after its own 429 retries
      -> RetryLater                           a 429 that outlived discord.py's retries: pace and try again
      -> everything else                      propagates; the delivery core decides (too long, gone, ...)
    DiscordSetupError (ConfigError)           starting failed for a reason the operator must fix
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import TypeVar

import aiohttp
import discord
import yarl

from adapters.base import ApiObserver, NullObserver
from adapters.pacing import RetryLater
from moa.errors import ConfigError

log = logging.getLogger("adapters.discord")

PLATFORM = "discord"
DEFAULT_API_BASE = "https://discord.com/api/v10"

# Discord error codes the adapter reacts to.
INVALID_FORM_BODY = 50035  # e.g. content over 2,000 characters, a bad thread name
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027  # an interaction token past its 15 minutes
THREAD_ALREADY_EXISTS = 160004

T = TypeVar("T")

_SNOWFLAKE = re.compile(r"^\d{15,21}$")


class DiscordSetupError(ConfigError):
    """Starting failed for a reason the operator must fix (token, gateway, intents); the message says how."""


async def write(request: Awaitable[T]) -> T:
    """Await a discord.py send or edit; a 429 it could not absorb becomes `RetryLater`."""
    try:
        return await request
    except discord.HTTPException as exc:
        later = retry_later(exc)
        if later is not None:
            raise later from exc
        raise


def retry_later(exc: discord.HTTPException) -> RetryLater | None:
    """A 429 that discord.py gave up on, as the pacing layer's `RetryLater`; None for any other error."""
    if exc.status != 429:
        return None
    raw = exc.response.headers.get("Retry-After", "") if exc.response is not None else ""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 1.0
    return RetryLater(max(seconds, 0.1))


def route_of(method: str, url: yarl.URL, api_path: str) -> str | None:
    """`"PATCH /channels/{id}/messages/{id}"` for a request under the API base; None for anything else.

    Ids and interaction tokens are replaced so the metric's label set stays small.
    """
    path = url.path
    if not path.startswith(api_path):
        return None
    parts = path[len(api_path) :].strip("/").split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        previous = parts[index - 2] if index >= 2 else ""
        if _SNOWFLAKE.match(part):
            out.append("{id}")
        elif previous in ("webhooks", "interactions"):
            out.append("{token}")
        else:
            out.append(part)
    return f"{method.upper()} /" + "/".join(out)


def observing_trace(observer: ApiObserver, api_base: str) -> aiohttp.TraceConfig:
    """An aiohttp trace for discord.py's session that reports every REST call, 429s included."""
    api_path = yarl.URL(api_base).path.rstrip("/")
    trace = aiohttp.TraceConfig()

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        route = route_of(params.method, params.url, api_path)
        if route is not None:
            observer.api_call(PLATFORM, route, _outcome(params.response.status))

    async def on_error(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        route = route_of(params.method, params.url, api_path)
        if route is not None:
            observer.api_call(PLATFORM, route, "error")

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_error)
    trace.freeze()
    return trace


def _outcome(status: int) -> str:
    if status == 429:
        return "ratelimited"
    return "ok" if status < 400 else "error"


async def _get_json(
    url: str, bot_token: str, timeout_s: float, observer: ApiObserver, route: str
) -> tuple[int, object]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"Authorization": f"Bot {bot_token}", "User-Agent": "DiscordBot (moa-bot, 0.1)"}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as resp,
        ):
            body: object = await resp.json(content_type=None) if resp.content_length != 0 else None
            observer.api_call(PLATFORM, route, _outcome(resp.status))
            return resp.status, body
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        observer.api_call(PLATFORM, route, "error")
        raise ConnectionError(f"{url}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


async def discover_gateway(
    api_base: str, bot_token: str, timeout_s: float, observer: ApiObserver
) -> tuple[str, int]:
    """The gateway URL from `GET {api_base}/gateway/bot`, as Discord (or a proxy in front of it) announces it,
    with the number of shards it recommends."""
    try:
        status, body = await _get_json(
            f"{api_base}/gateway/bot", bot_token, timeout_s, observer, "GET /gateway/bot"
        )
    except ConnectionError as exc:
        raise DiscordSetupError(
            f"DISCORD_API_BASE: cannot reach {api_base} to find the gateway ({exc}); check the URL, or set "
            "DISCORD_GATEWAY_URL"
        ) from exc
    if status == 401:
        raise DiscordSetupError(
            "DISCORD_BOT_TOKEN: Discord refused the token (401); copy it again from the "
            "Bot page of the application"
        )
    url = body.get("url") if isinstance(body, dict) else None
    if status != 200 or not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise DiscordSetupError(
            f"DISCORD_API_BASE: GET {api_base}/gateway/bot answered {status} without a gateway URL; check the URL, "
            "or set DISCORD_GATEWAY_URL"
        )
    shards = body.get("shards") if isinstance(body, dict) else None
    return url, shards if isinstance(shards, int) and shards >= 1 else 1


async def check_token(
    bot_token: str,
    api_base: str = DEFAULT_API_BASE,
    timeout_s: float = 10.0,
    observer: ApiObserver | None = None,
) -> tuple[bool, str]:
    """`GET /users/@me` with the bot token: (ok, one line for `moa-bot doctor`)."""
    try:
        status, body = await _get_json(
            f"{api_base.rstrip('/')}/users/@me",
            bot_token,
            timeout_s,
            observer or NullObserver(),
            "GET /users/@me",
        )
    except ConnectionError as exc:
        return False, f"cannot reach {api_base} ({exc}); check DISCORD_API_BASE and the network"
    if status == 401:
        return (
            False,
            "DISCORD_BOT_TOKEN was refused (401); copy the token again from the application's Bot page",
        )
    if status != 200 or not isinstance(body, dict):
        return False, f"GET /users/@me answered {status}; Discord may be having trouble, try again"
    return True, f"logged in as {body.get('username', '?')} (id {body.get('id', '?')})"


async def resolved_channel(client: discord.Client, message: discord.Message) -> object:
    """The channel of a guild message as discord.py models it: a thread it has not cached (a `PartialMessageable`)
    is fetched, so that thread rules apply; left as it is when Discord cannot say."""
    channel: object = message.channel
    if isinstance(channel, discord.PartialMessageable) and message.guild is not None:
        try:
            channel = await client.fetch_channel(channel.id)
        except discord.HTTPException as exc:
            log.warning("could not look up channel %s: %s", channel.id, exc.text)
    return channel
