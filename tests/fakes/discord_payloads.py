"""Builders for Discord API v10 JSON payloads, shaped as Discord sends them.

Pure functions returning plain dicts, used by `tests.fakes.discord.FakeDiscord` and directly by tests that
want to push a hand-made gateway event (`await dc.dispatch("MESSAGE_CREATE", payloads.message(...))`).
Snowflakes are strings on the wire, as in the real API; builders accept ints and convert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
API_VERSION = 10

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types)
GUILD_TEXT = 0
DM = 1
GUILD_ANNOUNCEMENT = 5
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_FORUM = 15
GUILD_MEDIA = 16
THREAD_TYPES = frozenset({10, PUBLIC_THREAD, PRIVATE_THREAD})

# Message types and flags used by the fake.
MESSAGE_DEFAULT = 0
MESSAGE_REPLY = 19
MESSAGE_CHAT_INPUT_COMMAND = 20
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_HAS_THREAD = 1 << 5
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12

# Gateway intents the fake honours when it echoes events.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15

# Permissions (https://discord.com/developers/docs/topics/permissions).
PERMISSION_VIEW_CHANNEL = 1 << 10
OVERWRITE_ROLE = 0
OVERWRITE_MEMBER = 1

# Interaction types and message component types.
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
COMPONENT_ACTION_ROW = 1
COMPONENT_BUTTON = 2
BUTTON_LINK = 5
BUTTON_PREMIUM = 6
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Application flags: *_LIMITED are what an unverified bot with the toggles on in the portal has.
APP_FLAG_GATEWAY_PRESENCE_LIMITED = 1 << 13
APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
APP_FLAG_APPLICATION_COMMAND_BADGE = 1 << 23

# All text permissions; the exact number does not matter to discord.py, only that it parses as an int.
ALL_PERMISSIONS = "2248473465835073"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

_counter = itertools.count(1)


def snowflake(at: float | None = None) -> int:
    """A new unique snowflake whose timestamp is `at` (epoch seconds, default now), as Discord mints them."""
    ms = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
    # worker 1, process 0, 12-bit increment: unique within a test run, ordered by time like real ids.
    return (ms << 22) | (1 << 17) | (next(_counter) & 0xFFF)


def iso(at: float | None = None) -> str:
    """An ISO 8601 timestamp as Discord writes them (`2026-11-03T10:00:00.123000+00:00`)."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, tz=dt.UTC)
    return moment.isoformat(timespec="microseconds")


def bucket_hash(route: str) -> str:
    """A stable opaque bucket id for a route, shaped like Discord's 32-hex-digit `X-RateLimit-Bucket`."""
    return hashlib.md5(route.encode(), usedforsecurity=False).hexdigest()


# --- users, members, guilds, channels ----------------------------------------------------------------------


def user(user_id: int, username: str, *, bot: bool = False, global_name: str | None = None) -> JSON:
    """A user object (partial form used in messages, members and interactions)."""
    data: JSON = {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": None,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
    }
    if bot:
        data["bot"] = True
    return data


def current_user(user_id: int, username: str) -> JSON:
    """`GET /users/@me` for a bot token."""
    return {
        **user(user_id, username, bot=True),
        "mfa_enabled": False,
        "locale": "en-US",
        "premium_type": 0,
        "email": None,
        "verified": True,
        "bio": "",
    }


def member(
    user_payload: JSON | None, *, joined_at: str | None = None, permissions: str | None = None
) -> JSON:
    """A guild member; `user_payload=None` gives the form nested in MESSAGE_CREATE (the user is the author)."""
    data: JSON = {
        "roles": [],
        "nick": None,
        "avatar": None,
        "banner": None,
        "premium_since": None,
        "joined_at": joined_at or iso(),
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if user_payload is not None:
        data["user"] = user_payload
    if permissions is not None:
        data["permissions"] = permissions
    return data


def everyone_role(guild_id: int) -> JSON:
    """The @everyone role, whose id is the guild id."""
    return {
        "id": str(guild_id),
        "name": "@everyone",
        "permissions": "1071698660929",
        "position": 0,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "icon": None,
        "unicode_emoji": None,
        "flags": 0,
    }


def text_channel(
    channel_id: int,
    guild_id: int,
    name: str,
    *,
    position: int = 0,
    topic: str | None = None,
    channel_type: int = GUILD_TEXT,
    parent_id: int | None = None,
    permission_overwrites: Sequence[JSON] = (),
) -> JSON:
    """A guild text (or announcement, forum, media) channel."""
    return {
        "id": str(channel_id),
        "type": channel_type,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": list(permission_overwrites),
        "parent_id": str(parent_id) if parent_id else None,
        "topic": topic,
        "nsfw": False,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
        "icon_emoji": None,
        "theme_color": None,
        "default_thread_rate_limit_per_user": 0,
    }


def permission_overwrite(target_id: int, target_type: int, *, allow: int = 0, deny: int = 0) -> JSON:
    """A channel permission overwrite for a role (`OVERWRITE_ROLE`; @everyone's id is the guild's) or member."""
    return {"id": str(target_id), "type": target_type, "allow": str(allow), "deny": str(deny)}


def thread_channel(
    thread_id: int,
    guild_id: int,
    parent_id: int,
    owner_id: int,
    name: str,
    *,
    thread_type: int = PUBLIC_THREAD,
    auto_archive_duration: int = 1440,
    created_at: float | None = None,
    message_count: int = 0,
    invitable: bool = True,
    archived: bool = False,
    archived_at: float | None = None,
) -> JSON:
    """A thread channel as returned by the thread-create routes and sent in THREAD_CREATE.

    `archive_timestamp` is when it was archived, or (while active) when it was created.
    """
    stamp = iso(created_at)
    metadata: JSON = {
        "archived": archived,
        "archive_timestamp": iso(archived_at) if archived_at is not None else stamp,
        "auto_archive_duration": auto_archive_duration,
        "locked": False,
        "create_timestamp": stamp,
    }
    if thread_type == PRIVATE_THREAD:
        metadata["invitable"] = invitable
    return {
        "id": str(thread_id),
        "type": thread_type,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
        "message_count": message_count,
        "member_count": 1,
        "total_message_sent": message_count,
        "thread_metadata": metadata,
    }


def dm_channel(channel_id: int, recipient: JSON) -> JSON:
    """A DM channel with one recipient."""
    return {
        "id": str(channel_id),
        "type": DM,
        "last_message_id": None,
        "flags": 0,
        "recipients": [recipient],
    }


def guild_create(
    guild_id: int,
    name: str,
    *,
    owner_id: int,
    channels: Sequence[JSON],
    threads: Sequence[JSON] = (),
    members: Sequence[JSON] = (),
    joined_at: str | None = None,
) -> JSON:
    """A GUILD_CREATE payload; `member_count == len(members)` so discord.py sees the guild as chunked."""
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "system_channel_id": channels[0]["id"] if channels else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "nsfw": False,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "features": [],
        "roles": [everyone_role(guild_id)],
        "emojis": [],
        "stickers": [],
        "application_id": None,
        "vanity_url_code": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "incidents_data": None,
        "joined_at": joined_at or iso(),
        "large": False,
        "lazy": True,
        "unavailable": False,
        "member_count": len(members),
        "members": list(members),
        "channels": list(channels),
        "threads": list(threads),
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "embedded_activities": [],
        "activity_instances": [],
        "version": int(time.time() * 1000),
    }


# --- application, gateway, commands ------------------------------------------------------------------------


def application(app_id: int, name: str, *, owner: JSON, bot: JSON, flags: int) -> JSON:
    """`GET /oauth2/applications/@me`."""
    return {
        "id": str(app_id),
        "name": name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "hook": True,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": hashlib.sha256(str(app_id).encode()).hexdigest(),
        "flags": flags,
        "owner": owner,
        "team": None,
        "bot": bot,
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "event_webhooks_url": None,
        "event_webhooks_status": 1,
        "tags": [],
        "integration_types_config": {"0": {}},
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
        "is_monetized": False,
        "is_verified": False,
        "is_discoverable": False,
    }


def gateway_bot(url: str, shards: int = 1) -> JSON:
    """`GET /gateway/bot`: the gateway, and how many shards Discord recommends."""
    return {
        "url": url,
        "shards": shards,
        "session_start_limit": {
            "total": 1000,
            "remaining": 999,
            "reset_after": 14_400_000,
            "max_concurrency": 1,
        },
    }


def hello(heartbeat_interval_ms: int) -> JSON:
    """Gateway op 10 HELLO."""
    return {
        "op": 10,
        "d": {"heartbeat_interval": heartbeat_interval_ms, "_trace": ['["fake-gateway",{}]']},
        "s": None,
        "t": None,
    }


def ready(
    *,
    bot_user: JSON,
    guild_ids: Iterable[int],
    session_id: str,
    resume_gateway_url: str,
    application_id: int,
    application_flags: int,
    shard: tuple[int, int] | None = None,
) -> JSON:
    """The READY dispatch's `d`: guilds are unavailable stubs, filled in by the GUILD_CREATEs that follow;
    `shard` ([id, count]) when the IDENTIFY named one."""
    extra: JSON = {} if shard is None else {"shard": list(shard)}
    return {
        **extra,
        "v": API_VERSION,
        "user": {**bot_user, "verified": True, "mfa_enabled": False, "email": None},
        "user_settings": {},
        "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
        "guild_join_requests": [],
        "relationships": [],
        "private_channels": [],
        "presences": [],
        "geo_ordered_rtc_regions": ["fake"],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_gateway_url,
        "application": {"id": str(application_id), "flags": application_flags},
        "auth": {},
        "_trace": ['["fake-gateway",{}]'],
    }


def application_command(
    definition: Mapping[str, Any],
    *,
    command_id: int,
    application_id: int,
    guild_id: int | None,
    version: int,
) -> JSON:
    """A registered application command as the bulk-overwrite routes return it."""
    data: JSON = {
        "id": str(command_id),
        "application_id": str(application_id),
        "version": str(version),
        "type": 1,
        "description": "",
        "default_member_permissions": None,
        "nsfw": False,
        "integration_types": [0],
        "contexts": None,
        "name_localizations": None,
        "description_localizations": None,
        **definition,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    else:
        data.setdefault("dm_permission", True)
    return data


# --- messages ----------------------------------------------------------------------------------------------

_MENTION = re.compile(r"<@!?(\d+)>")


def mentioned_user_ids(content: str) -> list[int]:
    """User ids written as `<@id>` or `<@!id>` in `content`, in order, without duplicates."""
    seen: dict[int, None] = {}
    for match in _MENTION.finditer(content):
        seen[int(match.group(1))] = None
    return list(seen)


def message(
    *,
    message_id: int,
    channel_id: int,
    author: JSON,
    content: str,
    guild_id: int | None = None,
    member_payload: JSON | None = None,
    mentions: Sequence[JSON] = (),
    created_at: float | None = None,
    edited_at: float | None = None,
    message_type: int | None = None,
    flags: int = 0,
    embeds: Sequence[JSON] = (),
    attachments: Sequence[JSON] = (),
    components: Sequence[JSON] = (),
    reactions: Sequence[JSON] = (),
    reference: JSON | None = None,
    referenced_message: JSON | None = None,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction_metadata: JSON | None = None,
    thread: JSON | None = None,
    nonce: str | int | None = None,
) -> JSON:
    """A message object (REST responses and MESSAGE_CREATE / MESSAGE_UPDATE).

    `guild_id` and `member_payload` only appear in gateway events for guild messages; DMs have neither.
    A reply (`reference` set) defaults to type 19 and carries `referenced_message`, as Discord sends it.
    """
    if message_type is None:
        message_type = MESSAGE_REPLY if reference is not None else MESSAGE_DEFAULT
    data: JSON = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": message_type,
        "author": author,
        "content": content,
        "timestamp": iso(created_at),
        "edited_timestamp": iso(edited_at) if edited_at is not None else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": list(mentions),
        "mention_roles": [],
        "attachments": list(attachments),
        "embeds": list(embeds),
        "components": list(components),
        "pinned": False,
        "flags": flags,
    }
    if reactions:
        data["reactions"] = list(reactions)
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if member_payload is not None:
        data["member"] = member_payload
    if reference is not None:
        data["message_reference"] = reference
        data["referenced_message"] = referenced_message
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    if application_id is not None:
        data["application_id"] = str(application_id)
    if interaction_metadata is not None:
        data["interaction_metadata"] = interaction_metadata
    if thread is not None:
        data["thread"] = thread
    if nonce is not None:
        data["nonce"] = nonce
    return data


def message_reference(message_id: int, channel_id: int, guild_id: int | None) -> JSON:
    """The `message_reference` of a reply (type 0 = DEFAULT reference)."""
    ref: JSON = {"type": 0, "message_id": str(message_id), "channel_id": str(channel_id)}
    if guild_id is not None:
        ref["guild_id"] = str(guild_id)
    return ref


# --- interactions ------------------------------------------------------------------------------------------


def _option_type(value: Any) -> int:
    """Discord's option type for a Python value: STRING 3, INTEGER 4, BOOLEAN 5, NUMBER 10."""
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def chat_input_interaction(
    *,
    interaction_id: int,
    application_id: int,
    token: str,
    command_id: int,
    command_name: str,
    options: Mapping[str, Any],
    channel: JSON,
    invoker: JSON,
    guild_id: int | None,
    command_guild_id: int | None = None,
    invoker_member: JSON | None = None,
    locale: str = "en-US",
) -> JSON:
    """An INTERACTION_CREATE `d` for a chat-input (slash) command, type 2 with data type 1.

    In a guild the invoker comes as `member` (with `permissions`) and the context is 0 (GUILD); in a DM
    with the bot it comes as `user` and the context is 1 (BOT_DM). `command_guild_id` is set when the
    command was registered for that guild, which is how discord.py's CommandTree finds guild commands.
    """
    data: JSON = {
        "id": str(command_id),
        "name": command_name,
        "type": 1,
        "options": [{"name": k, "type": _option_type(v), "value": v} for k, v in options.items()],
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    payload: JSON = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": 2,
        "data": data,
        "channel_id": channel["id"],
        "channel": {**channel, "permissions": ALL_PERMISSIONS},
        "token": token,
        "version": 1,
        "app_permissions": ALL_PERMISSIONS,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
        payload["guild_locale"] = "en-US"
        payload["member"] = invoker_member or member(invoker, permissions=ALL_PERMISSIONS)
        payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        payload["context"] = 0
    else:
        payload["user"] = invoker
        payload["authorizing_integration_owners"] = {"0": "0"}
        payload["context"] = 1
    return payload


def interaction_metadata(
    interaction_id: int,
    invoker: JSON,
    owners: JSON,
    original_id: int | None,
    *,
    interaction_type: int = INTERACTION_APPLICATION_COMMAND,
    interacted_message_id: int | None = None,
) -> JSON:
    """`interaction_metadata` on messages created by an interaction response or follow-up (a component's
    names the message that was clicked)."""
    data: JSON = {
        "id": str(interaction_id),
        "type": interaction_type,
        "user": invoker,
        "authorizing_integration_owners": owners,
    }
    if original_id is not None:
        data["original_response_message_id"] = str(original_id)
    if interacted_message_id is not None:
        data["interacted_message_id"] = str(interacted_message_id)
    return data


def interaction_callback(
    *,
    interaction_id: int,
    callback_type: int,
    message_payload: JSON | None,
    loading: bool,
    ephemeral: bool,
    interaction_type: int = INTERACTION_APPLICATION_COMMAND,
) -> JSON:
    """The body of `POST /interactions/{id}/{token}/callback?with_response=true`."""
    interaction: JSON = {"id": str(interaction_id), "type": interaction_type}
    resource: JSON = {"type": callback_type}
    if message_payload is not None:
        interaction["response_message_id"] = message_payload["id"]
        interaction["response_message_loading"] = loading
        interaction["response_message_ephemeral"] = ephemeral
        # Discord only returns the message itself for CHANNEL_MESSAGE_WITH_SOURCE (4) and UPDATE_MESSAGE (7).
        if callback_type in (4, 7):
            resource["message"] = message_payload
    return {"interaction": interaction, "resource": resource}


# --- errors ------------------------------------------------------------------------------------------------


def error(code: int, message_text: str) -> JSON:
    """A JSON error body `{"code", "message"}`."""
    return {"code": code, "message": message_text}


def form_error(field_path: Sequence[str], code: str, message_text: str) -> JSON:
    """A 50035 Invalid Form Body error with the nested `errors` tree Discord uses."""
    tree: JSON = {"_errors": [{"code": code, "message": message_text}]}
    for part in reversed(field_path):
        tree = {part: tree}
    return {"code": 50035, "errors": tree, "message": "Invalid Form Body"}


def rate_limited(retry_after: float, *, is_global: bool = False) -> JSON:
    """A 429 body."""
    return {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}


# --- knowledge: attachments, reactions, thread lists ---------------------------------------------------------

# Extension -> the content type Discord records for an upload (text gets a charset).
CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "py": "text/x-python; charset=utf-8",
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "zip": "application/zip",
}


def content_type_for(filename: str) -> str | None:
    """The content type Discord gives an upload with this name (None when it cannot tell)."""
    return CONTENT_TYPES.get(filename.rsplit(".", 1)[-1].lower()) if "." in filename else None


def attachment(
    attachment_id: int,
    filename: str,
    *,
    size: int,
    url: str,
    proxy_url: str,
    content_type: str | None = None,
    description: str | None = None,
    width: int | None = None,
    height: int | None = None,
) -> JSON:
    """An attachment on a message; `url` / `proxy_url` are signed CDN links (`ex`, `is`, `hm`)."""
    data: JSON = {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": proxy_url,
        "flags": 0,
    }
    if content_type is not None:
        data["content_type"] = content_type
    if description is not None:
        data["description"] = description
    if width is not None and height is not None:
        data.update(width=width, height=height, placeholder_version=1)
    return data


def partial_emoji(emoji: str) -> JSON:
    """An emoji as reactions carry it: a unicode character, or a custom `name:id`."""
    name, _, emoji_id = emoji.partition(":")
    if emoji_id:
        return {"id": emoji_id, "name": name, "animated": False}
    return {"id": None, "name": emoji}


def reaction_counts(emoji: str, users: Sequence[int], me: int) -> JSON:
    """One entry of a message's `reactions`: who reacted with `emoji`, and whether `me` (the bot) did."""
    return {
        "count": len(users),
        "count_details": {"burst": 0, "normal": len(users)},
        "me": me in users,
        "me_burst": False,
        "burst_me": False,
        "emoji": partial_emoji(emoji),
        "burst_colors": [],
    }


def reaction_event(
    *,
    user_id: int,
    channel_id: int,
    message_id: int,
    emoji: str,
    guild_id: int | None,
    member_payload: JSON | None = None,
    message_author_id: int | None = None,
    added: bool = True,
) -> JSON:
    """MESSAGE_REACTION_ADD's `d` (with `member` in a guild), or MESSAGE_REACTION_REMOVE's (`added=False`)."""
    data: JSON = {
        "user_id": str(user_id),
        "channel_id": str(channel_id),
        "message_id": str(message_id),
        "emoji": partial_emoji(emoji),
        "burst": False,
        "type": 0,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if added:
        data["burst_colors"] = []
        if member_payload is not None:
            data["member"] = member_payload
        if message_author_id is not None:
            data["message_author_id"] = str(message_author_id)
    return data


def thread_list(
    threads: Sequence[JSON], *, members: Sequence[JSON] = (), has_more: bool | None = None
) -> JSON:
    """The body of the thread-listing routes: active threads (no `has_more`) or an archived page."""
    data: JSON = {"threads": list(threads), "members": list(members)}
    if has_more is not None:
        data["has_more"] = has_more
    return data


def thread_member(thread_id: int, user_id: int, *, joined_at: float | None = None) -> JSON:
    """A thread member object (who is in a thread), as the thread lists carry them."""
    return {"id": str(thread_id), "user_id": str(user_id), "join_timestamp": iso(joined_at), "flags": 1}


# --- message components --------------------------------------------------------------------------------------


def button(
    label: str | None,
    custom_id: str | None = None,
    *,
    style: int = 1,
    emoji: str | None = None,
    url: str | None = None,
    disabled: bool = False,
) -> JSON:
    """A button component (type 2): styles 1-4 need a `custom_id`, a link button (5) a `url`."""
    data: JSON = {"type": COMPONENT_BUTTON, "style": style, "disabled": disabled}
    if label is not None:
        data["label"] = label
    if custom_id is not None:
        data["custom_id"] = custom_id
    if emoji is not None:
        data["emoji"] = partial_emoji(emoji)
    if url is not None:
        data["url"] = url
    return data


def action_row(*components: JSON) -> JSON:
    """An action row (type 1) holding up to 5 buttons."""
    return {"type": COMPONENT_ACTION_ROW, "components": list(components)}


def component_interaction(
    *,
    interaction_id: int,
    application_id: int,
    token: str,
    custom_id: str,
    component_type: int,
    message: JSON,
    channel: JSON,
    invoker: JSON,
    guild_id: int | None,
    values: Sequence[str] | None = None,
    locale: str = "en-US",
) -> JSON:
    """An INTERACTION_CREATE `d` for a click on a message component (type 3, MESSAGE_COMPONENT).

    Carries the message the component is on; the clicker comes as `member` in a guild, `user` in a DM.
    """
    data: JSON = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = list(values)
    payload: JSON = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": INTERACTION_MESSAGE_COMPONENT,
        "data": data,
        "message": message,
        "channel_id": channel["id"],
        "channel": {**channel, "permissions": ALL_PERMISSIONS},
        "token": token,
        "version": 1,
        "app_permissions": ALL_PERMISSIONS,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if guild_id is not None:
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=member(invoker, permissions=ALL_PERMISSIONS),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        payload.update(user=invoker, authorizing_integration_owners={"0": "0"}, context=1)
    return payload
