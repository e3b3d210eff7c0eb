"""A fake Discord (REST API v10 + gateway) for offline tests of a real discord.py client.

It sits at the real network seam: point discord.py at it with the two public class attributes the adapter
itself sets, and discord.py's own HTTP client, rate limiter, gateway handshake and models run as in production.

    async with FakeDiscord(interaction_token_ttl=2.0) as dc:
        with discord_py_pointed_at(dc):          # Route.BASE and DiscordWebSocket.DEFAULT_GATEWAY
            client = discord.Client(intents=..., allowed_mentions=discord.AllowedMentions.none())
            await client.login(dc.token)
            task = asyncio.create_task(client.connect())
            await dc.wait_ready()
            dc.fail("PATCH /webhooks/{id}/{token}/messages/{id}", Failure.http(500))   # the next edit fails
            inter = await dc.slash_command("moa", {"question": "why?"})
            await dc.wait_for(lambda: dc.original_response(inter.token))
            ...
            await client.close()

For team knowledge and the AI-app experience (each through discord.py, see the tests of the fake):
- History: `dc.add_history(channel, n, days=400)` seeds dated messages (and threads, archived when old);
  `GET /channels/{id}/messages` pages with before / after / around / limit (1-100, else 50035), newest first.
- Threads: `GET /channels/{id}/threads/archived/public` (before, limit, has_more), `GET /guilds/{id}/threads/
  active`; `user_thread`, `archive_thread`, `delete_thread` dispatch THREAD_CREATE / _UPDATE / _DELETE.
- Privacy: `dc.add_channel(guild, name, private=True)` denies @everyone VIEW_CHANNEL in its overwrites
  (`bot_can_view=False`: the bot gets 403 50001 too); `set_channel_private` changes it later (CHANNEL_UPDATE).
- Changes: `user_edit` (MESSAGE_UPDATE), `user_delete` (MESSAGE_DELETE), `bulk_delete` (MESSAGE_DELETE_BULK).
- Files: `user_message(..., attachments=[(name, bytes)])`; the CDN serves them at signed URLs (`cdn.py`).
- Reactions: `PUT/DELETE .../reactions/{emoji}/@me` (10014 Unknown Emoji; `reaction_rate`), `user_react`
  dispatches MESSAGE_REACTION_ADD / _REMOVE only to sessions with the reactions intents.
- Components: buttons validated on send (custom_id <= 100 characters, 5 rows of 5, unique ids: 50035);
  `dc.click(message_id, custom_id)` dispatches a MESSAGE_COMPONENT interaction; callback types 4, 5, 6, 7.

Modules, one job each:
- `state.py`: the world (users, guilds, channels, threads, DMs, messages, attachments, reactions, interactions,
  commands), the queries tests use, and how a message looks on the wire.
- `rest.py`: REST plumbing: auth, body parsing, injected failures (`tests.fakes.failures`), rate-limit buckets
  and their `X-RateLimit-*` headers and 429s (`tests.fakes.ratelimit`), the `calls` record.
- `routes.py`: the REST routes, one handler each, registered in `DiscordRoutes.table()`.
  To add a route: write its handler there and add one `Route` line to `table()`; nothing else changes.
- `validation.py`: what Discord accepts in bodies (content, embeds, components, commands, thread names),
  50035 otherwise.
- `gateway.py`: the gateway: sessions, handshake, heartbeats, dispatches, resume, echoes of the bot's actions.
- `cdn.py`: attachment files at signed URLs.
- `server.py`: `FakeDiscord`, which ties them together on one port, `discord_py_pointed_at` and
  `running_client`.
"""

from tests.fakes.discord.rest import (
    API_PREFIX,
    ROUTE_ADD_REACTION,
    ROUTE_ARCHIVED_THREADS,
    ROUTE_CALLBACK,
    ROUTE_CREATE_MESSAGE,
    ROUTE_EDIT_MESSAGE,
    ROUTE_EDIT_ORIGINAL,
    ROUTE_FOLLOWUP,
    ROUTE_HISTORY,
    ROUTE_REMOVE_REACTION,
    ApiError,
    Call,
    Route,
)
from tests.fakes.discord.server import FakeDiscord, discord_py_pointed_at, running_client
from tests.fakes.discord.state import JSON, DiscordState, FakeGuild, InteractionRecord, StoredMessage
from tests.fakes.discord.validation import MAX_CONTENT, MAX_EMBED_DESCRIPTION, MAX_EMBED_TOTAL, MAX_EMBEDS
from tests.fakes.failures import Failure
from tests.fakes.ratelimit import Rate

__all__ = [
    "API_PREFIX",
    "JSON",
    "MAX_CONTENT",
    "MAX_EMBEDS",
    "MAX_EMBED_DESCRIPTION",
    "MAX_EMBED_TOTAL",
    "ROUTE_ADD_REACTION",
    "ROUTE_ARCHIVED_THREADS",
    "ROUTE_CALLBACK",
    "ROUTE_CREATE_MESSAGE",
    "ROUTE_EDIT_MESSAGE",
    "ROUTE_EDIT_ORIGINAL",
    "ROUTE_FOLLOWUP",
    "ROUTE_HISTORY",
    "ROUTE_REMOVE_REACTION",
    "ApiError",
    "Call",
    "DiscordState",
    "Failure",
    "FakeDiscord",
    "FakeGuild",
    "InteractionRecord",
    "Rate",
    "Route",
    "StoredMessage",
    "discord_py_pointed_at",
    "running_client",
]
