"""Builders for realistic Slack payloads: Events API envelopes, message events, slash command forms.

Shapes follow what Slack sends (Events API `event_callback` bodies, `message` events with `channel_type`,
`message_changed` with `message` / `previous_message`, slash command form fields), so an adapter tested with
them sees what production sees. The constants name the fake workspace that `tests.fakes.slack.FakeSlack`
serves by default; both modules share `next_ts()` so user and bot messages interleave in time order.

    body = event_callback(app_mention("what is MoA?"))
    thread = event_callback(thread_reply("and then?", thread_ts=body["event"]["ts"]))
    form = slash_command("what is MoA?")          # dict[str, str]; form_body(form) for HTTP mode
"""

from __future__ import annotations

import itertools
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

_SLACK_EPOCH_US = 1_700_000_000_000_000
_ts_counter = itertools.count(1)
_id_counter = itertools.count(1)
_MENTION_RE = re.compile(r"(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)")


def next_ts() -> str:
    """A unique, monotonically increasing message ts like "1700000000.000100".

    Shared by the builders and the fake server so every message, whoever posted it, sorts in creation order.
    """
    micros = _SLACK_EPOCH_US + next(_ts_counter) * 100
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def new_event_id() -> str:
    """An Events API event id ("Ev..."), unique per process."""
    return f"Ev0FAKE{next(_id_counter):06d}"


def new_trigger_id() -> str:
    return f"{next(_id_counter)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """The `rich_text` block Slack attaches to user messages, with `<@U...>` mentions as user elements."""
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
            "block_id": secrets.token_hex(3),
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
