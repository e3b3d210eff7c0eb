"""Builders for realistic Slack payloads: Events API envelopes, message events, slash command forms,
interaction payloads, file objects.

Shapes follow what Slack sends (Events API `event_callback` bodies, `message` events with `channel_type`,
`message_changed` with `message` / `previous_message`, `message_deleted`, tombstones, `reaction_added`,
`file_share`, `assistant_thread_started`, `block_actions`, slash command form fields), so an adapter tested with
them sees what production sees. The constants name the fake workspace that `tests.fakes.slack.FakeSlack`
serves by default; both modules share `next_ts()` (real time) and `ts_at()` (a moment in the past) so
messages interleave in time order.

    body = event_callback(app_mention("what is MoA?"))
    thread = event_callback(thread_reply("and then?", thread_ts=body["event"]["ts"]))
    form = slash_command("what is MoA?")          # dict[str, str]; form_body(form) for HTTP mode
    blocks = [{"type": "markdown", "text": "..."}, feedback_buttons_block()]   # what an AI answer ends with
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

# The fake workspace. Ids look like Slack's (letter prefix + upper-case alphanumerics).
TEAM_ID = "T0FAKETEAM"
TEAM_DOMAIN = "fake-workspace"
TEAM_NAME = "Fake Workspace"
ENTERPRISE_ID: str | None = None
API_APP_ID = "A0FAKEAPP"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
BOT_NAME = "moa"
USER_ID = "U0ALICE"
USER_NAME = "alice"
OTHER_USER_ID = "U0BOB"
OTHER_USER_NAME = "bob"
OTHER_BOT_USER_ID = "U0OTHERBOT"
OTHER_BOT_ID = "B0OTHERBOT"
OTHER_BOT_APP_ID = "A0OTHERAPP"
CHANNEL_ID = "C0GENERAL"
CHANNEL_NAME = "general"
OTHER_CHANNEL_ID = "C0RANDOM"
KNOWLEDGE_CHANNEL_ID = "C0KNOWLEDGE"
PRIVATE_CHANNEL_ID = "G0PRIVATE"
NOT_MEMBER_CHANNEL_ID = "C0NOTMEMBER"
DM_CHANNEL_ID = "D0ALICE"
# The legacy verification token Slack still puts in every payload; apps should ignore it.
VERIFICATION_TOKEN = "fakeVerificationToken0000"

_id_counter = itertools.count(1)
_issued_us: set[int] = set()  # every ts handed out, in microseconds: no two messages share one
_last_us = 0
_MENTION_RE = re.compile(r"(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)")


def next_ts() -> str:
    """A unique, monotonically increasing message ts at the current time, like "1764580000.123456".

    Shared by the builders and the fake server so every message, whoever posted it, sorts in creation order;
    real time, as Slack's, so messages seeded in the past (`ts_at`) sort before them.
    """
    global _last_us
    micros = max(int(time.time() * 1_000_000), _last_us + 1)
    while micros in _issued_us:
        micros += 1
    _last_us = micros
    _issued_us.add(micros)
    return _format_ts(micros)


def ts_at(moment: float) -> str:
    """A unique ts at `moment` (epoch seconds) or a few microseconds after: a message from the past."""
    micros = int(moment * 1_000_000)
    while micros in _issued_us:
        micros += 1
    _issued_us.add(micros)
    return _format_ts(micros)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def new_event_id() -> str:
    """An Events API event id ("Ev..."), unique per process."""
    return f"Ev0FAKE{next(_id_counter):06d}"


def new_trigger_id() -> str:
    return f"{next(_id_counter)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def rich_text_blocks(text: str, *, block_id: str | None = None) -> list[dict[str, Any]]:
    """The `rich_text` block Slack attaches to messages sent as text, with `<@U...>` mentions as user elements."""
    elements: list[dict[str, Any]] = []
    for part in _MENTION_RE.split(text):
        if not part:
            continue
        if _MENTION_RE.fullmatch(part):
            elements.append({"type": "user", "user_id": part[2:-1].split("|", 1)[0]})
        else:
            elements.append({"type": "text", "text": part})
    return [
        {
            "type": "rich_text",
            "block_id": block_id or secrets.token_hex(3),
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def message(
    text: str,
    *,
    channel: str = CHANNEL_ID,
    user: str = USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str | None = None,
    channel_type: str = "channel",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A human `message` event. `channel_type` is "channel", "group" (private), "im" or "mpim"."""
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "team": team_id,
        "blocks": rich_text_blocks(text),
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        # Slack names the thread starter's author on replies; default to the replier (a self-started thread).
        event["parent_user_id"] = parent_user_id or user
    return event


def dm_message(
    text: str,
    *,
    channel: str = DM_CHANNEL_ID,
    user: str = USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A direct message to the bot (`channel_type: "im"`)."""
    return message(
        text, channel=channel, user=user, ts=ts, thread_ts=thread_ts, channel_type="im", team_id=team_id
    )


def thread_reply(
    text: str,
    *,
    thread_ts: str,
    channel: str = CHANNEL_ID,
    user: str = USER_ID,
    parent_user_id: str | None = None,
    ts: str | None = None,
    channel_type: str = "channel",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A human reply in a thread (a `message` event carrying `thread_ts` and `parent_user_id`)."""
    return message(
        text,
        channel=channel,
        user=user,
        ts=ts,
        thread_ts=thread_ts,
        parent_user_id=parent_user_id,
        channel_type=channel_type,
        team_id=team_id,
    )


def app_mention(
    question: str,
    *,
    channel: str = CHANNEL_ID,
    user: str = USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    bot_user_id: str = BOT_USER_ID,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """An `app_mention` event whose text is `"<@BOT> {question}"`.

    Slack sends no `channel_type` on app_mention. In a channel where the app also subscribes to `message.*`,
    the same message arrives a second time as `message(...)` with the same ts: build both to test that.
    """
    ts = ts or next_ts()
    text = f"<@{bot_user_id}> {question}"
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "team": team_id,
        "blocks": rich_text_blocks(text),
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def bot_message(
    text: str,
    *,
    channel: str = CHANNEL_ID,
    bot_id: str = OTHER_BOT_ID,
    user: str | None = OTHER_BOT_USER_ID,
    app_id: str = OTHER_BOT_APP_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    subtype: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A message posted by a bot.

    Defaults to another app's bot user (no subtype, `user` and `bot_id` set), which is what modern apps
    produce. For this app's own echo use `bot_id=BOT_ID, user=BOT_USER_ID, app_id=API_APP_ID`; for a legacy
    integration use `subtype="bot_message", user=None` (then Slack sends `username` instead of `user`).
    """
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "type": "message",
        "text": text,
        "ts": ts,
        "bot_id": bot_id,
        "app_id": app_id,
        "team": team_id,
        "bot_profile": {
            "id": bot_id,
            "app_id": app_id,
            "name": "moa" if bot_id == BOT_ID else "otherbot",
            "deleted": False,
            "team_id": team_id,
        },
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if user is not None:
        event["user"] = user
    else:
        event["username"] = "otherbot"
    if subtype is not None:
        event["subtype"] = subtype
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user or USER_ID
    return event


def message_changed(
    *,
    ts: str,
    text: str,
    previous_text: str,
    channel: str = CHANNEL_ID,
    user: str = BOT_USER_ID,
    bot_id: str | None = BOT_ID,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A `message_changed` event, as Slack emits after `chat.update` (by default, of this bot's message).

    The event's own `ts`/`event_ts` is new; the edited message keeps its original `ts` inside `message`.
    """
    event_ts = next_ts()

    def version(body: str, edited: bool) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "message", "user": user, "text": body, "ts": ts, "team": team_id}
        if bot_id is not None:
            msg["bot_id"] = bot_id
            msg["app_id"] = API_APP_ID if bot_id == BOT_ID else OTHER_BOT_APP_ID
        if thread_ts is not None:
            msg["thread_ts"] = thread_ts
            msg["parent_user_id"] = user
        if edited:
            msg["edited"] = {"user": user, "ts": event_ts}
        return msg

    return {
        "type": "message",
        "subtype": "message_changed",
        "message": version(text, edited=True),
        "previous_message": version(previous_text, edited=False),
        "channel": channel,
        "hidden": True,
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": channel_type,
    }


def event_callback(
    event: Mapping[str, Any],
    *,
    team_id: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
    event_id: str | None = None,
    event_time: int | None = None,
    authorized_user: str = BOT_USER_ID,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """The Events API `event_callback` envelope around `event` (what HTTP mode POSTs, and Socket Mode's payload).

    Reuse the returned dict (same `event_id`) to simulate Slack's retry of one delivery.
    """
    return {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": ENTERPRISE_ID,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": ENTERPRISE_ID,
                "team_id": team_id,
                "user_id": authorized_user,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{secrets.token_hex(8)}",
    }


def url_verification(challenge: str = "fake-challenge") -> dict[str, Any]:
    """The one-time `url_verification` request Slack sends when an HTTP endpoint is configured."""
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}


def slash_command(
    text: str,
    *,
    command: str = "/moa",
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """Slash command fields, all strings, as Slack form-encodes them (HTTP) or sends as payload (Socket Mode).

    The default `response_url` points at real Slack; `FakeSlack.push_slash_command` and
    `FakeSlack.slash_command_form` swap in one served by the fake so responses are recorded.
    """
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/{next(_id_counter)}/{secrets.token_hex(12)}",
        "trigger_id": trigger_id or new_trigger_id(),
    }


def form_body(fields: Mapping[str, str]) -> str:
    """URL-encode slash command fields into the body Slack POSTs in HTTP mode."""
    return urlencode(dict(fields))


# ---------------------------------------------------------------- edits, deletions, reactions


def message_edited(
    message: Mapping[str, Any],
    previous_message: Mapping[str, Any],
    *,
    channel: str = CHANNEL_ID,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A `message_changed` event around two versions of any message (as `conversations.history` shows them).

    Also what Slack sends when a thread's parent is deleted while replies remain: `message` is then a
    `tombstone(...)`. The event's own `ts` is new; the message keeps its `ts` inside `message`.
    """
    event_ts = next_ts()
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": dict(message),
        "previous_message": dict(previous_message),
        "channel": channel,
        "hidden": True,
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": channel_type,
    }


def message_deleted(
    previous_message: Mapping[str, Any], *, channel: str = CHANNEL_ID, channel_type: str = "channel"
) -> dict[str, Any]:
    """A `message_deleted` event: `deleted_ts` names the message, `previous_message` is what it was."""
    event_ts = next_ts()
    return {
        "type": "message",
        "subtype": "message_deleted",
        "previous_message": dict(previous_message),
        "channel": channel,
        "hidden": True,
        "deleted_ts": previous_message["ts"],
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": channel_type,
    }


def tombstone(parent: Mapping[str, Any]) -> dict[str, Any]:
    """What a deleted thread parent whose replies remain becomes: Slackbot's "This message was deleted."."""
    stone: dict[str, Any] = {
        "type": "message",
        "subtype": "tombstone",
        "text": "This message was deleted.",
        "user": "USLACKBOT",
        "hidden": True,
        "ts": parent["ts"],
    }
    for key in ("thread_ts", "reply_count", "reply_users_count", "latest_reply", "reply_users", "is_locked"):
        if key in parent:
            stone[key] = parent[key]
    return stone


def reaction_event(
    reaction: str,
    *,
    item_ts: str,
    channel: str = CHANNEL_ID,
    user: str = USER_ID,
    item_user: str | None = BOT_USER_ID,
    added: bool = True,
) -> dict[str, Any]:
    """A `reaction_added` (or, with `added=False`, `reaction_removed`) event on a message."""
    event: dict[str, Any] = {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": item_ts},
        "event_ts": next_ts(),
    }
    if item_user is not None:
        event["item_user"] = item_user
    return event


# ---------------------------------------------------------------- files


# Extension -> (mimetype, filetype, pretty_type), as Slack labels uploads.
FILE_TYPES: dict[str, tuple[str, str, str]] = {
    "txt": ("text/plain", "text", "Plain Text"),
    "md": ("text/markdown", "markdown", "Markdown (raw)"),
    "csv": ("text/csv", "csv", "CSV"),
    "json": ("application/json", "json", "JSON"),
    "html": ("text/html", "html", "HTML"),
    "py": ("text/x-python", "python", "Python"),
    "pdf": ("application/pdf", "pdf", "PDF"),
    "png": ("image/png", "png", "PNG"),
    "jpg": ("image/jpeg", "jpg", "JPEG"),
    "gif": ("image/gif", "gif", "GIF"),
    "zip": ("application/zip", "zip", "Zip"),
}


def file_object(
    *,
    file_id: str,
    name: str,
    size: int,
    files_base: str,
    user: str = USER_ID,
    title: str | None = None,
    mimetype: str | None = None,
    filetype: str | None = None,
    created: int | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
) -> dict[str, Any]:
    """A file object as events, `conversations.history` and `files.info` carry it.

    `url_private` / `url_private_download` live under `files_base` (Slack: https://files.slack.com) and need
    `Authorization: Bearer` with a token that has `files:read`; `permalink` is the workspace's file page.
    """
    guessed = FILE_TYPES.get(name.rsplit(".", 1)[-1].lower() if "." in name else "", None)
    mime, kind, pretty = guessed or ("application/octet-stream", "binary", "Binary")
    created = int(time.time()) if created is None else created
    private = f"{files_base}/files-pri/{team_id}-{file_id}"
    return {
        "id": file_id,
        "created": created,
        "timestamp": created,
        "name": name,
        "title": title if title is not None else name.rsplit(".", 1)[0],
        "mimetype": mimetype or mime,
        "filetype": filetype or kind,
        "pretty_type": pretty,
        "user": user,
        "user_team": team_id,
        "editable": False,
        "size": size,
        "mode": "hosted",
        "is_external": False,
        "external_type": "",
        "is_public": True,
        "public_url_shared": False,
        "display_as_bot": False,
        "username": "",
        "url_private": f"{private}/{name}",
        "url_private_download": f"{private}/download/{name}",
        "permalink": f"https://{team_domain}.slack.com/files/{user}/{file_id}/{name}",
        "permalink_public": f"https://slack-files.com/{team_id}-{file_id}-{secrets.token_hex(5)}",
        "is_starred": False,
        "has_rich_preview": False,
        "file_access": "visible",
    }


def file_share(
    files: list[dict[str, Any]],
    text: str = "",
    *,
    channel: str = CHANNEL_ID,
    user: str = USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A `message` event with `subtype: file_share`: someone shared files (with an optional comment)."""
    event = message(
        text,
        channel=channel,
        user=user,
        ts=ts,
        thread_ts=thread_ts,
        channel_type=channel_type,
        team_id=team_id,
    )
    if not text:
        event["blocks"] = []
    event.update(subtype="file_share", files=[dict(f) for f in files], upload=False, display_as_bot=False)
    return event


# ---------------------------------------------------------------- the assistant pane


def assistant_thread_event(
    *,
    channel: str = DM_CHANNEL_ID,
    thread_ts: str,
    user: str = USER_ID,
    context_channel: str | None = CHANNEL_ID,
    team_id: str = TEAM_ID,
    changed: bool = False,
) -> dict[str, Any]:
    """`assistant_thread_started` (or, with `changed=True`, `assistant_thread_context_changed`).

    `context` names the channel the user was viewing when they opened the pane (empty when none).
    """
    context: dict[str, Any] = {}
    if context_channel is not None:
        context = {"channel_id": context_channel, "team_id": team_id, "enterprise_id": ENTERPRISE_ID}
    return {
        "type": "assistant_thread_context_changed" if changed else "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": context,
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": next_ts(),
    }


# ---------------------------------------------------------------- interactivity


def feedback_buttons_block(
    action_id: str = "feedback",
    *,
    positive_value: str = "positive",
    negative_value: str = "negative",
    block_id: str | None = None,
) -> dict[str, Any]:
    """A `context_actions` block with 👍/👎 `feedback_buttons`, as an AI app ends an answer with."""
    block: dict[str, Any] = {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": action_id,
                "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": positive_value},
                "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": negative_value},
            }
        ],
    }
    if block_id is not None:
        block["block_id"] = block_id
    return block


def block_action(element: Mapping[str, Any], block_id: str, *, value: str | None = None) -> dict[str, Any]:
    """The `actions[]` entry a click on `element` produces (a `button`, or `feedback_buttons` with `value`)."""
    action: dict[str, Any] = {
        "action_id": element.get("action_id", ""),
        "block_id": block_id,
        "type": element["type"],
        "action_ts": f"{time.time():.6f}",
    }
    if "text" in element:
        action["text"] = element["text"]
    chosen = value if value is not None else element.get("value")
    if chosen is not None:
        action["value"] = chosen
    if element.get("style"):
        action["style"] = element["style"]
    return action


def block_actions(
    actions: list[dict[str, Any]],
    *,
    channel: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    message_ts: str,
    message: Mapping[str, Any] | None,
    user: str = USER_ID,
    user_name: str = USER_NAME,
    thread_ts: str | None = None,
    is_ephemeral: bool = False,
    response_url: str | None = None,
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
) -> dict[str, Any]:
    """A `block_actions` interaction payload: someone clicked an element of a message.

    Socket Mode carries it as an `interactive` envelope's payload; HTTP mode POSTs it form-encoded as
    `payload=<json>` (see `interactive_form_body`). An ephemeral message's payload has no `message`.
    """
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": is_ephemeral,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url
        or f"https://hooks.slack.com/actions/{team_id}/{next(_id_counter)}/{secrets.token_hex(12)}",
        "actions": actions,
    }
    if message is not None:
        payload["message"] = dict(message)
    return payload


def interactive_form_body(payload: Mapping[str, Any]) -> str:
    """An interaction payload as Slack POSTs it in HTTP mode: form-encoded, `payload=<json>`."""
    return urlencode({"payload": json.dumps(dict(payload))})
