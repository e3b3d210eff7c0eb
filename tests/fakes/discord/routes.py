"""The fake Discord's REST routes: what each does to the world and what it answers.

The routes discord.py uses at login, command sync, interaction responses (callback, `@original`, follow-ups),
messages (create / get / edit / delete / history with before, after, around / typing), reactions (`@me`),
threads (create, archived public threads, a guild's active threads) and DMs. Errors use Discord's codes and
bodies: 50035 Invalid Form Body with an `errors` tree, 10003 Unknown Channel, 10004 Unknown Guild, 10008
Unknown Message, 10014 Unknown Emoji, 10015 Unknown Webhook, 10062 Unknown interaction (callback after the
3 s deadline), 40060 already acknowledged, 50001 Missing Access (a channel the bot cannot view), 50027 Invalid
Webhook Token (expired interaction token).

Message components are validated on create and edit (`validation.validate_components`). A click on one
(`FakeDiscord.click`) is answered like a command, and also with 6 DEFERRED_UPDATE_MESSAGE or 7 UPDATE_MESSAGE,
which make the clicked message the interaction's original (7 edits it at once).

Each handler takes the request (for path and query parameters) and the parsed JSON body, and returns
(status, JSON body), or raises `ApiError`; the plumbing around them (auth, rate limits, injected failures,
recording) is `rest.py`'s. To add a route: write a handler here (find things with `self.channel` /
`self.visible` / `self.channel_message`, show messages with `self.state.message_payload`, echo what the bot
did through `self.gateway`), then add one `Route` line to `table()`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.rest import ApiError, Route, unknown
from tests.fakes.discord.state import DiscordState, InteractionRecord, StoredMessage, pings
from tests.fakes.discord.validation import (
    MAX_CONTENT,
    query_int,
    thread_name,
    validate_command,
    validate_components,
    validate_content,
)

JSON = dict[str, Any]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _snowflake(query: Any, name: str) -> int:
    value = query[name]
    if not value.isdigit():
        raise ApiError(400, p.form_error([name], "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'))
    return int(value)


def _timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, p.form_error(["before"], "DATE_TYPE_PARSE", f"Could not parse {value}. Should be ISO8601.")
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _archived_at(thread: JSON) -> dt.datetime:
    return dt.datetime.fromisoformat(thread["thread_metadata"]["archive_timestamp"])


class DiscordRoutes:
    """The handlers, over one `DiscordState`; the bot's own actions are echoed through the gateway."""

    def __init__(
        self,
        state: DiscordState,
        gateway: Gateway,
        *,
        interaction_token_ttl: float,
        interaction_ack_deadline: float,
        gateway_url: Callable[[], str],
        recommended_shards: int = 1,
    ) -> None:
        self.state = state
        self.recommended_shards = recommended_shards  # what GET /gateway/bot says
        self.gateway = gateway
        self.interaction_token_ttl = interaction_token_ttl
        self.interaction_ack_deadline = interaction_ack_deadline
        self.max_content = MAX_CONTENT
        self.command_syncs: list[tuple[int | None, list[JSON]]] = []  # (guild id or None, PUT body)
        self._gateway_url = gateway_url

    def table(self) -> list[Route]:
        """Every route the fake serves. Interaction callbacks and webhooks take no bot token."""
        webhook_message = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
        reaction = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}"
        return [
            Route("GET", "/gateway", self.get_gateway, auth=False),
            Route("GET", "/gateway/bot", self.get_gateway_bot),
            Route("GET", "/users/@me", self.get_me),
            Route("GET", "/oauth2/applications/@me", self.get_application),
            Route("GET", "/applications/{application_id}/commands", self.get_commands),
            Route("PUT", "/applications/{application_id}/commands", self.put_commands),
            Route("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands),
            Route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands),
            Route(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self.callback,
                auth=False,
            ),
            Route("POST", "/webhooks/{webhook_id}/{webhook_token}", self.followup, auth=False),
            Route("GET", webhook_message, self.get_webhook_message, auth=False),
            Route("PATCH", webhook_message, self.edit_webhook_message, auth=False),
            Route("DELETE", webhook_message, self.delete_webhook_message, auth=False),
            Route("GET", "/channels/{channel_id}", self.get_channel),
            Route("GET", "/channels/{channel_id}/messages", self.get_history),
            Route("POST", "/channels/{channel_id}/messages", self.create_message),
            Route("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            Route("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            Route("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            Route("POST", "/channels/{channel_id}/typing", self.typing),
            Route("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.thread_from_message),
            Route("POST", "/channels/{channel_id}/threads", self.thread_without_message),
            Route("GET", "/channels/{channel_id}/threads/archived/public", self.archived_public_threads),
            Route("GET", "/guilds/{guild_id}/threads/active", self.active_threads),
            Route("PUT", f"{reaction}/@me", self.add_reaction),
            Route("DELETE", f"{reaction}/@me", self.remove_reaction),
            Route("POST", "/users/@me/channels", self.open_dm),
        ]

    # --- shared by the routes ---------------------------------------------------------------------------

    def channel(self, channel_id: int | str) -> JSON:
        try:
            return self.state.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise unknown(10003, "Unknown Channel") from None

    def visible(self, channel_id: int | str) -> JSON:
        """A channel the bot can view, or 10003 / 403 50001 Missing Access."""
        channel = self.channel(channel_id)
        if not self.state.can_view(int(channel["id"])):
            raise ApiError(403, p.error(50001, "Missing Access"))
        return channel

    def channel_message(self, request: web.Request) -> StoredMessage:
        """The live message `{message_id}` in channel `{channel_id}`, or 10003 / 50001 / 10008."""
        channel = self.visible(request.match_info["channel_id"])
        raw = request.match_info["message_id"]
        found = self.state.find_message(int(raw)) if raw.isdigit() else None
        if found is None or found.deleted or str(found.channel_id) != channel["id"]:
            raise unknown(10008, "Unknown Message")
        return found

    def new_message(
        self,
        channel_id: int,
        body: JSON,
        *,
        field_prefix: tuple[str, ...] = (),
        allow_empty: bool = False,
        interaction: InteractionRecord | None = None,
        message_type: int | None = None,
        flags: int | None = None,
    ) -> StoredMessage:
        """Validate a create body as Discord does and build the bot's message (not stored yet)."""
        state = self.state
        channel = state.channels[channel_id]
        content = body.get("content")
        content = "" if content is None else str(content)
        embeds = list(body.get("embeds") or [])
        validate_content(content, embeds, field_prefix, max_content=self.max_content)
        if body.get("components") is not None:
            validate_components(body["components"], field_prefix, flags=int(body.get("flags") or 0))
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
            target = state.find_message(int(raw_ref.get("message_id") or 0))
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
        pinged, everyone = pings(content, allowed, replied_author)
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
            author=state.bot_user,
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
            msg.webhook_id = state.application_id
            msg.interaction_token = interaction.token
            owners = interaction.payload["authorizing_integration_owners"]
            msg.interaction_metadata = p.interaction_metadata(
                interaction.id,
                interaction.user,
                owners,
                interaction.original_message_id,
                interaction_type=interaction.interaction_type,
                interacted_message_id=interaction.message_id,
            )
        return msg

    async def apply_edit(self, message: StoredMessage, body: JSON) -> None:
        if "content" in body:
            content = "" if body["content"] is None else str(body["content"])
        else:
            content = message.content
        embeds = list(body["embeds"] or []) if "embeds" in body else message.embeds
        validate_content(content, embeds, (), max_content=self.max_content)
        if "components" in body:
            validate_components(
                body["components"] or [], (), flags=message.flags | int(body.get("flags") or 0)
            )
        allowed = body.get("allowed_mentions")
        # An edit without allowed_mentions is parsed with the defaults: mentions in it do ping.
        message.pinged, message.mention_everyone = pings(content, allowed, None)
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
        await self.gateway.message_updated(message)

    async def apply_delete(self, message: StoredMessage) -> None:
        message.deleted = True
        await self.gateway.message_deleted(message)

    async def _post(self, message: StoredMessage) -> None:
        self.state.store(message)
        await self.gateway.message_created(message)

    # --- login and commands -----------------------------------------------------------------------------

    async def get_gateway(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, {"url": self._gateway_url()}

    async def get_gateway_bot(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, p.gateway_bot(self._gateway_url(), self.recommended_shards)

    async def get_me(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, p.current_user(self.state.bot_id, self.state.bot_user["username"])

    async def get_application(self, request: web.Request, body: Any) -> tuple[int, Any]:
        state = self.state
        return 200, p.application(
            state.application_id,
            state.bot_user["username"],
            owner=state.alice,
            bot=state.bot_user,
            flags=state.application_flags,
        )

    def _command_scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.state.application_id):
            raise ApiError(403, p.error(50001, "Missing Access"))
        guild = request.match_info.get("guild_id")
        if guild is None:
            return None
        if int(guild) not in self.state.guilds:
            raise ApiError(403, p.error(50001, "Missing Access"))
        return int(guild)

    async def get_commands(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self.state.commands(self._command_scope(request))

    async def put_commands(self, request: web.Request, body: Any) -> tuple[int, Any]:
        scope = self._command_scope(request)
        if not isinstance(body, list):
            raise ApiError(
                400, p.form_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            )
        seen: set[tuple[str, int]] = set()
        for index, definition in enumerate(body):
            validate_command(index, definition, seen)
        # Bulk overwrite keeps the id of a command whose name and type are unchanged, as Discord does.
        existing = {(c["name"], c["type"]): c for c in self.state.commands(scope)}
        registered = []
        for definition in body:
            old = existing.get((definition["name"], definition.get("type", 1)))
            registered.append(
                p.application_command(
                    definition,
                    command_id=int(old["id"]) if old else p.snowflake(),
                    application_id=self.state.application_id,
                    guild_id=scope,
                    version=p.snowflake(),
                )
            )
        self.state.set_commands(scope, registered)
        self.command_syncs.append((scope, body))
        return 200, registered

    # --- interactions -----------------------------------------------------------------------------------

    async def callback(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self.state.interactions.get(request.match_info["interaction_token"])
        if record is None or str(record.id) != request.match_info["interaction_id"]:
            raise unknown(10062, "Unknown interaction")
        record.callback_attempts += 1
        if time.monotonic() - record.issued_at > self.interaction_ack_deadline:
            raise unknown(10062, "Unknown interaction")
        if record.callback_type is not None:
            raise ApiError(400, p.error(40060, "Interaction has already been acknowledged."))
        body = body or {}
        callback_type = int(body.get("type", 0))
        data = body.get("data") or {}
        message: StoredMessage | None = None
        clicked: StoredMessage | None = None
        is_command = record.interaction_type == p.INTERACTION_APPLICATION_COMMAND
        message_type = p.MESSAGE_CHAT_INPUT_COMMAND if is_command else p.MESSAGE_DEFAULT
        if callback_type == 4:
            message = self.new_message(
                record.channel_id, data, field_prefix=("data",), interaction=record, message_type=message_type
            )
        elif callback_type == 5:
            # A deferred response is a "thinking..." message with the LOADING flag until the first edit.
            flags = p.FLAG_LOADING | (int(data.get("flags", 0)) & p.FLAG_EPHEMERAL)
            message = self.new_message(
                record.channel_id,
                {"content": ""},
                allow_empty=True,
                interaction=record,
                message_type=message_type,
                flags=flags,
            )
        elif callback_type in (6, 7) and record.message_id is not None:
            # A component's interaction: its original response is the message clicked; 7 edits it now.
            clicked = self.state.message(record.message_id)
            if callback_type == 7:
                await self.apply_edit(clicked, data)
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
            await self._post(message)
        elif clicked is not None:
            record.original_message_id = clicked.id
        if not _truthy(request.query.get("with_response")):
            return 204, None
        shown = message or (clicked if callback_type == 7 else None)
        return 200, p.interaction_callback(
            interaction_id=record.id,
            callback_type=callback_type,
            message_payload=self.state.message_payload(shown) if shown else None,
            loading=callback_type == 5,
            ephemeral=bool(message and message.ephemeral),
            interaction_type=record.interaction_type,
        )

    def _webhook_record(self, request: web.Request) -> InteractionRecord:
        """The interaction behind an application webhook token, or Discord's error for it."""
        record = self.state.interactions.get(request.match_info["webhook_token"])
        if record is None or request.match_info["webhook_id"] != str(self.state.application_id):
            raise unknown(10015, "Unknown Webhook")
        if time.monotonic() - record.issued_at > self.interaction_token_ttl:
            raise ApiError(401, p.error(50027, "Invalid Webhook Token"))
        if record.callback_type is None:
            # The interaction webhook only exists once the interaction has been acknowledged.
            raise unknown(10015, "Unknown Webhook")
        return record

    def _webhook_message(self, request: web.Request, record: InteractionRecord) -> StoredMessage:
        raw = request.match_info["message_id"]
        message_id = record.original_message_id if raw == "@original" else int(raw) if raw.isdigit() else None
        allowed = {record.original_message_id, *record.followup_ids}
        found = self.state.find_message(message_id) if message_id is not None else None
        if found is None or message_id not in allowed or found.deleted:
            raise unknown(10008, "Unknown Message")
        return found

    async def followup(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        channel_id = int(request.query.get("thread_id") or record.channel_id)
        self.channel(channel_id)
        message = self.new_message(channel_id, body or {}, interaction=record)
        record.followup_ids.append(message.id)
        await self._post(message)
        if not _truthy(request.query.get("wait")):
            return 204, None
        return 200, self.state.message_payload(message)

    async def get_webhook_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        return 200, self.state.message_payload(self._webhook_message(request, record))

    async def edit_webhook_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        message = self._webhook_message(request, record)
        await self.apply_edit(message, body or {})
        return 200, self.state.message_payload(message)

    async def delete_webhook_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        record = self._webhook_record(request)
        await self.apply_delete(self._webhook_message(request, record))
        return 204, None

    # --- channels and messages --------------------------------------------------------------------------

    async def get_channel(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self.visible(request.match_info["channel_id"])

    async def get_history(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel = self.visible(request.match_info["channel_id"])
        query = request.query
        limit = query_int(query.get("limit"), "limit", default=50, low=1, high=100)
        found = self.state.messages(int(channel["id"]))
        if "before" in query:
            found = [m for m in found if m.id < _snowflake(query, "before")][-limit:]
        elif "after" in query:
            found = [m for m in found if m.id > _snowflake(query, "after")][:limit]
        elif "around" in query:
            # Half the page up to and including `around`, the rest after it.
            around = _snowflake(query, "around")
            older = [m for m in found if m.id <= around][-((limit + 1) // 2) :]
            found = older + [m for m in found if m.id > around][: limit - len(older)]
        else:
            found = found[-limit:]
        # Newest first, as Discord returns history whichever way it was asked.
        return 200, [self.state.message_payload(m) for m in reversed(found)]

    async def create_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        channel = self.channel(request.match_info["channel_id"])
        if channel["type"] in (p.GUILD_FORUM, p.GUILD_MEDIA):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        message = self.new_message(int(channel["id"]), body or {})
        await self._post(message)
        return 200, self.state.message_payload(message)

    async def get_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, self.state.message_payload(self.channel_message(request))

    async def edit_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self.channel_message(request)
        if message.author_id != self.state.bot_id:
            raise ApiError(403, p.error(50005, "Cannot edit a message authored by another user"))
        await self.apply_edit(message, body or {})
        return 200, self.state.message_payload(message)

    async def delete_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        await self.apply_delete(self.channel_message(request))
        return 204, None

    async def typing(self, request: web.Request, body: Any) -> tuple[int, Any]:
        self.channel(request.match_info["channel_id"])
        return 204, None

    # --- threads and DMs --------------------------------------------------------------------------------

    async def thread_from_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self.channel_message(request)
        parent = self.state.channels[message.channel_id]
        body = body or {}
        if parent["type"] == p.DM:
            raise ApiError(400, p.error(50003, "Cannot execute action on a DM channel"))
        if parent["type"] not in (p.GUILD_TEXT, p.GUILD_ANNOUNCEMENT):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        if message.thread_id is not None:
            raise ApiError(400, p.error(160004, "A thread has already been created for this message"))
        name = thread_name(body)
        # The thread started from a message has the message's id.
        thread = p.thread_channel(
            message.id,
            int(parent["guild_id"]),
            message.channel_id,
            self.state.bot_id,
            name,
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
        )
        self.state.channels[message.id] = thread
        message.thread_id = message.id
        message.flags |= p.FLAG_HAS_THREAD
        await self.gateway.thread_created(thread)
        return 201, thread

    async def thread_without_message(self, request: web.Request, body: Any) -> tuple[int, Any]:
        parent = self.channel(request.match_info["channel_id"])
        body = body or {}
        if parent["type"] not in (p.GUILD_TEXT, p.GUILD_ANNOUNCEMENT):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        name = thread_name(body)
        thread_id = p.snowflake()
        thread = p.thread_channel(
            thread_id,
            int(parent["guild_id"]),
            int(parent["id"]),
            self.state.bot_id,
            name,
            thread_type=int(body.get("type") or p.PRIVATE_THREAD),
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
            invitable=bool(body.get("invitable", True)),
        )
        self.state.channels[thread_id] = thread
        await self.gateway.thread_created(thread)
        return 201, thread

    async def archived_public_threads(self, request: web.Request, body: Any) -> tuple[int, Any]:
        """Archived public threads of a channel, most recently archived first, `before` a time."""
        channel = self.visible(request.match_info["channel_id"])
        if channel["type"] not in (p.GUILD_TEXT, p.GUILD_ANNOUNCEMENT, p.GUILD_FORUM, p.GUILD_MEDIA):
            raise ApiError(400, p.error(50024, "Cannot execute action on this channel type"))
        limit = query_int(request.query.get("limit"), "limit", default=50, low=2, high=100)
        archived = sorted(
            (
                t
                for t in self.state.threads(int(channel["id"]))
                if t["thread_metadata"]["archived"] and t["type"] != p.PRIVATE_THREAD
            ),
            key=_archived_at,
            reverse=True,
        )
        if "before" in request.query:
            before = _timestamp(request.query["before"])
            archived = [t for t in archived if _archived_at(t) < before]
        page = archived[:limit]
        return 200, p.thread_list(page, members=self._bot_memberships(page), has_more=len(archived) > limit)

    async def active_threads(self, request: web.Request, body: Any) -> tuple[int, Any]:
        """A guild's active threads the bot can see (public and private), with the bot's memberships."""
        raw = request.match_info["guild_id"]
        if not raw.isdigit() or int(raw) not in self.state.guilds:
            raise unknown(10004, "Unknown Guild")
        active = [
            c
            for c in self.state.channels.values()
            if c.get("guild_id") == raw
            and c["type"] in p.THREAD_TYPES
            and not c["thread_metadata"]["archived"]
            and self.state.can_view(int(c["id"]))
        ]
        return 200, p.thread_list(active, members=self._bot_memberships(active))

    def _bot_memberships(self, threads: list[JSON]) -> list[JSON]:
        bot = str(self.state.bot_id)
        return [p.thread_member(int(t["id"]), self.state.bot_id) for t in threads if t.get("owner_id") == bot]

    # --- reactions --------------------------------------------------------------------------------------

    def _emoji(self, request: web.Request) -> str:
        """The route's emoji: a unicode emoji, or a custom `name:id` of a guild; else 10014."""
        emoji = request.match_info["emoji"].removeprefix(":")  # discord.py sends `<:name:id>` as `:name:id`
        custom = ":" in emoji
        if (custom and emoji in self.state.custom_emojis) or (
            not custom and emoji and all(ord(c) > 0x7F for c in emoji)
        ):
            return emoji
        raise ApiError(400, p.error(10014, "Unknown Emoji"))

    async def add_reaction(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self.channel_message(request)
        emoji = self._emoji(request)
        users = message.reactions.setdefault(emoji, [])
        if self.state.bot_id not in users:  # reacting twice changes nothing, and says nothing
            users.append(self.state.bot_id)
            await self.gateway.reaction_changed(message, self.state.bot_id, emoji, added=True)
        return 204, None

    async def remove_reaction(self, request: web.Request, body: Any) -> tuple[int, Any]:
        message = self.channel_message(request)
        emoji = self._emoji(request)
        users = message.reactions.get(emoji, [])
        if self.state.bot_id in users:
            users.remove(self.state.bot_id)
            if not users:
                del message.reactions[emoji]
            await self.gateway.reaction_changed(message, self.state.bot_id, emoji, added=False)
        return 204, None

    async def open_dm(self, request: web.Request, body: Any) -> tuple[int, Any]:
        recipient_id = int((body or {}).get("recipient_id") or 0)
        if recipient_id not in self.state.users:
            raise unknown(10013, "Unknown User")
        return 200, self.state.channels[self.state.dm_channel_id(self.state.users[recipient_id])]
