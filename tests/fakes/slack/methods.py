"""The fake Slack's Web API methods: what each does to the workspace and what it answers.

Each handler takes the call's parameters (query, form and JSON merged) and returns the fields of the
`{"ok": true, ...}` body, or raises `ApiError` with Slack's error for the case. The plumbing around them
(auth, rate limits, injected failures, recording) is `web_api.py`'s; the streaming methods are `streaming.py`'s.

To add a method: write a handler here (validate content with `content.message_content`, resolve channels with
`self.channel` (posting) or `self.readable` (reading), show stored messages with `self.state.api_message`),
then add one line to `table()` with its rate-limit tier from Slack's docs (`tier=3`), or `per_channel=True`,
or nothing for unlimited.

Beyond chat and lookups, for team knowledge: conversations.history (newest first, `oldest`/`latest`/
`inclusive`, `next_ts` cursors, deleted messages absent, tombstones for deleted thread parents),
conversations.replies (oldest first, the same window), conversations.members, chat.getPermalink (Slack's URL
format), files.info (files shared where the bot reads), reactions.add / .remove (`already_reacted`,
`no_reaction`, `invalid_name` for names outside `emoji`). For the AI-app experience:
assistant.threads.setStatus / .setTitle / .setSuggestedPrompts (`statuses`, `titles`, `suggested_prompts`,
`thread_status()`), and views.open, which takes only trigger_ids the fake issued with an interaction
(`expired_trigger_id` after `trigger_ttl_s`, `exchanged_trigger_id` when reused); opened modals are in `views`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from tests.fakes import slack_payloads as sp
from tests.fakes.slack.content import flag, message_content, parse_metadata
from tests.fakes.slack.state import SlackState, ts_key
from tests.fakes.slack.streaming import Streams
from tests.fakes.slack.web_api import ApiError, Method, invalid_arguments

Json = dict[str, Any]

# Standard emoji names reactions.add accepts; anything else is `invalid_name` unless added to `emoji`.
STANDARD_EMOJI = frozenset(
    "+1 -1 thumbsup thumbsdown white_check_mark heavy_check_mark ballot_box_with_check x shrug eyes "
    "hourglass hourglass_flowing_sand warning tada heart books book mag mag_right bulb question "
    "grey_question memo pencil rocket ok_hand pray brain robot_face thinking_face star fire bookmark "
    "pushpin speech_balloon no_entry stop_sign repeat arrows_counterclockwise link smile slightly_smiling_face "
    "white_circle red_circle large_green_circle large_yellow_circle hammer_and_wrench gear".split()
)
_TRIGGER = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
_TS = re.compile(r"^\d+(\.\d+)?$")
MAX_LOADING_MESSAGES = 10
MAX_SUGGESTED_PROMPTS = 4
MAX_MODAL_TITLE = 24
MAX_MODAL_BLOCKS = 100


class SlackMethods:
    """The handlers, over one workspace. `echo` sends the bot's own activity back as an event (Socket Mode
    decides whether anyone is subscribed); `open_socket` issues a Socket Mode URL."""

    def __init__(
        self,
        state: SlackState,
        *,
        max_text_chars: int,
        replies_max_limit: int,
        stream_ttl_s: float,
        stream_max_total_chars: int | None,
        trigger_ttl_s: float,
        status_ttl_s: float,
        echo: Callable[[Json], None],
        open_socket: Callable[[], str],
    ) -> None:
        self.state = state
        self.max_text_chars = max_text_chars
        self.replies_max_limit = replies_max_limit
        self.trigger_ttl_s = trigger_ttl_s
        self.status_ttl_s = status_ttl_s
        self.agent_app = True  # False: the app is not configured as an agent (setSuggestedPrompts refuses)
        self.emoji: set[str] = set(STANDARD_EMOJI)  # names reactions.add accepts; add custom emoji here
        self.statuses: list[Json] = []  # assistant.threads.setStatus calls: {channel, thread_ts, status,
        #                                   loading_messages, at}
        self.titles: dict[tuple[str, str], str] = {}  # (channel, thread_ts) -> title
        self.suggested_prompts: dict[tuple[str, str | None], Json] = {}  # -> {title, prompts}
        self.views: list[Json] = []  # modals opened with views.open: {trigger_id, view, at}
        self.streams = Streams(
            state,
            ttl_s=stream_ttl_s,
            max_total_chars=stream_max_total_chars,
            resolve=self.channel,
            echo=echo,
        )
        self._echo = echo
        self._open_socket = open_socket
        self._triggers: dict[str, Json] = {}  # trigger_id -> {issued_at, used}

    def table(self) -> dict[str, Method]:
        """Every method the fake serves. auth.test and apps.connections.open have generous tiers of their own:
        limiting them would only slow reconnect tests. Slack's "special" limits (chat.getPermalink,
        assistant.threads.setStatus) are Tier 4 here."""
        streams = self.streams
        return {
            "auth.test": Method(self.auth_test),
            "apps.connections.open": Method(self.apps_connections_open, token="app"),
            "chat.postMessage": Method(self.chat_post_message, per_channel=True),
            "chat.update": Method(self.chat_update, tier=3),
            "chat.delete": Method(self.chat_delete, tier=3),
            "chat.postEphemeral": Method(self.chat_post_ephemeral, tier=4),
            "chat.getPermalink": Method(self.chat_get_permalink, tier=4),
            "chat.startStream": Method(streams.start, tier=2),
            "chat.appendStream": Method(streams.append, tier=4),
            "chat.stopStream": Method(streams.stop, tier=2),
            "conversations.history": Method(self.conversations_history, tier=3),
            "conversations.replies": Method(self.conversations_replies, tier=3),
            "conversations.info": Method(self.conversations_info, tier=3),
            "conversations.members": Method(self.conversations_members, tier=4),
            "users.info": Method(self.users_info, tier=4),
            "files.info": Method(self.files_info, tier=4),
            "reactions.add": Method(self.reactions_add, tier=3),
            "reactions.remove": Method(self.reactions_remove, tier=2),
            "assistant.threads.setStatus": Method(self.assistant_set_status, tier=4),
            "assistant.threads.setTitle": Method(self.assistant_set_title, tier=4),
            "assistant.threads.setSuggestedPrompts": Method(self.assistant_set_suggested_prompts, tier=4),
            "views.open": Method(self.views_open, tier=4),
        }

    # ---------------------------------------------------------------- shared by the methods

    def channel(self, value: Any, *, allow_names: bool = False) -> Json:
        """Resolve a channel id (or, for posting, a name or user id opening the IM); check membership."""
        key = str(value or "")
        channels = self.state.channels
        channel = channels.get(key)
        if channel is None and allow_names:
            name = key.removeprefix("#")
            channel = next((c for c in channels.values() if c.get("name") == name), None)
            if channel is None and key in self.state.users:
                channel = self.state.im_with(key)
        if channel is None:
            raise ApiError("channel_not_found")
        if channel.get("is_archived"):
            raise ApiError("is_archived")
        return self._member(channel)

    def readable(self, value: Any) -> Json:
        """A conversation the bot may read: archived ones too, but only where it is a member."""
        channel = self.state.channels.get(str(value or ""))
        if channel is None:
            raise ApiError("channel_not_found")
        return self._member(channel)

    @staticmethod
    def _member(channel: Json) -> Json:
        if not channel.get("is_im") and not channel.get("is_member"):
            # A private channel the bot is not in is invisible to it, as in Slack.
            raise ApiError("channel_not_found" if channel.get("is_private") else "not_in_channel")
        return channel

    def content(self, params: Json) -> Json:
        return message_content(params, max_text_chars=self.max_text_chars)

    def _own_message(self, channel: Json, ts: Any, *, not_yours: str) -> Json:
        """A live message the bot posted, for editing or deleting it."""
        rec = self.state.find(channel["id"], str(ts or ""))
        if rec is None or rec["deleted"]:
            raise ApiError("message_not_found")
        if rec["bot_id"] != self.state.bot_id:
            raise ApiError(not_yours)
        return rec

    def _live_message(self, channel: Json, ts: Any) -> Json:
        rec = self.state.find(channel["id"], str(ts or ""))
        if rec is None or rec["deleted"]:
            raise ApiError("message_not_found")
        return rec

    # ---------------------------------------------------------------- triggers (for views.open)

    def issue_trigger(self, trigger_id: str) -> None:
        """Accept `trigger_id` in views.open for `trigger_ttl_s` seconds from now, once."""
        self._triggers[trigger_id] = {"issued_at": self.state.clock(), "used": False}

    # ---------------------------------------------------------------- auth and apps

    def auth_test(self, params: Json) -> Json:
        state = self.state
        return {
            "url": f"https://{state.team_domain}.slack.com/",
            "team": state.team_name,
            "user": sp.BOT_NAME,
            "team_id": state.team_id,
            "user_id": state.bot_user_id,
            "bot_id": state.bot_id,
            "is_enterprise_install": False,
        }

    def apps_connections_open(self, params: Json) -> Json:
        return {"url": self._open_socket()}

    # ---------------------------------------------------------------- chat

    def chat_post_message(self, params: Json) -> Json:
        state = self.state
        channel = self.channel(params.get("channel"), allow_names=True)
        content = self.content(params)
        thread_ts = params.get("thread_ts") or None
        rec = state.add_bot_message(
            channel["id"],
            content["text"] or "",
            thread_ts=str(thread_ts) if thread_ts else None,
            blocks=content["blocks"],
        )
        rec["markdown_text"] = content["markdown_text"]
        rec["mrkdwn"] = flag(params.get("mrkdwn"), True)
        rec["metadata"] = parse_metadata(params.get("metadata"))
        self._echo(
            sp.bot_message(
                rec["text"] or rec["markdown_text"] or "",
                channel=channel["id"],
                bot_id=state.bot_id,
                user=state.bot_user_id,
                app_id=state.api_app_id,
                ts=rec["ts"],
                thread_ts=rec["thread_ts"],
                channel_type=state.channel_type(channel["id"]),
            )
        )
        return {"channel": channel["id"], "ts": rec["ts"], "message": self.state.api_message(rec)}

    def chat_update(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        rec = self._own_message(channel, params.get("ts"), not_yours="cant_update_message")
        content = self.content(params)
        previous_text = rec["text"] or rec["markdown_text"] or ""
        self.state.keep_version(rec)
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
            rec["mrkdwn"] = flag(params.get("mrkdwn"), True)
        if "metadata" in params:
            rec["metadata"] = parse_metadata(params.get("metadata"))
        rec["edited"] = {"user": self.state.bot_user_id, "ts": sp.next_ts()}
        rec["updated_at"] = self.state.clock()
        self._echo(
            sp.message_changed(
                channel=channel["id"],
                ts=rec["ts"],
                text=rec["text"] or rec["markdown_text"] or "",
                previous_text=previous_text,
                thread_ts=rec["thread_ts"],
                channel_type=self.state.channel_type(channel["id"]),
            )
        )
        message = self.state.api_message(rec)
        return {"channel": channel["id"], "ts": rec["ts"], "text": message["text"], "message": message}

    def chat_post_ephemeral(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        user = str(params.get("user") or "")
        if user not in self.state.users:
            raise ApiError("user_not_found")
        if user not in self.state.members_of(channel["id"]):
            raise ApiError("user_not_in_channel")
        content = self.content(params)
        ts = sp.next_ts()
        self.state.ephemerals.append(
            {
                "channel": channel["id"],
                "user": user,
                "ts": ts,
                "thread_ts": params.get("thread_ts"),
                **content,
            }
        )
        return {"message_ts": ts}

    def chat_delete(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        rec = self._own_message(channel, params.get("ts"), not_yours="cant_delete_message")
        rec["deleted"] = True
        rec["updated_at"] = self.state.clock()
        return {"channel": channel["id"], "ts": rec["ts"]}

    def chat_get_permalink(self, params: Json) -> Json:
        channel = self.state.channels.get(str(params.get("channel") or ""))
        if channel is None or (channel.get("is_private") and not self.state.can_read(channel["id"])):
            raise ApiError("channel_not_found")
        rec = self.state.find(channel["id"], str(params.get("message_ts") or ""))
        if rec is None or (rec["deleted"] and not self.state.is_tombstone(rec)):
            raise ApiError("message_not_found")
        link = f"https://{self.state.team_domain}.slack.com/archives/{channel['id']}/p{rec['ts'].replace('.', '')}"
        if rec["thread_ts"] and rec["thread_ts"] != rec["ts"]:
            link += f"?thread_ts={rec['thread_ts']}&cid={channel['id']}"
        return {"channel": channel["id"], "permalink": link}

    # ---------------------------------------------------------------- conversations and users

    def conversations_history(self, params: Json) -> Json:
        """Top-level messages (and thread broadcasts), newest first, in the (oldest, latest) window."""
        channel = self.readable(params.get("channel"))
        state = self.state
        window = _Window(params)
        shown = [
            m
            for m in state.messages(channel["id"], include_deleted=True)
            if (not m["deleted"] or state.is_tombstone(m))
            and (m["thread_ts"] in (None, m["ts"]) or m["subtype"] == "thread_broadcast")
            and window.holds(m["ts"])
        ]
        shown.reverse()
        cursor = params.get("cursor")
        if cursor:
            before = _decode_cursor(cursor, "next_ts:")
            shown = [m for m in shown if ts_key(m["ts"]) <= ts_key(before)]
        limit = _limit(params.get("limit"), default=100, most=999)
        page, rest = shown[:limit], shown[limit:]
        metadata = flag(params.get("include_all_metadata"), False)
        return {
            "messages": [state.api_message(m, metadata=metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": _encode_cursor(f"next_ts:{rest[0]['ts']}") if rest else ""},
        }

    def conversations_replies(self, params: Json) -> Json:
        """The thread's parent (a tombstone if deleted), then its replies in the window, oldest first."""
        channel = self.readable(params.get("channel"))
        state = self.state
        rec = state.find(channel["id"], str(params.get("ts") or ""))
        if rec is None or (rec["deleted"] and not state.is_tombstone(rec)):
            raise ApiError("thread_not_found")
        root = rec["thread_ts"] or rec["ts"]
        parent = state.find(channel["id"], root)
        window = _Window(params)
        replies = [m for m in state.replies_of(channel["id"], root) if window.holds(m["ts"])]
        thread = ([parent] if parent is not None else []) + replies
        limit = min(_limit(params.get("limit"), default=1000, most=1000), self.replies_max_limit)
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                start = int(_decode_cursor(cursor, "offset:"))
            except ValueError as exc:
                raise ApiError("invalid_cursor") from exc
        page = thread[start : start + limit]
        has_more = start + limit < len(thread)
        next_cursor = _encode_cursor(f"offset:{start + limit}") if has_more else ""
        metadata = flag(params.get("include_all_metadata"), False)
        return {
            "messages": [state.api_message(m, metadata=metadata) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_info(self, params: Json) -> Json:
        channel = self.state.channels.get(str(params.get("channel") or ""))
        if channel is None or (channel.get("is_private") and not channel.get("is_member")):
            raise ApiError("channel_not_found")
        return {"channel": dict(channel)}

    def conversations_members(self, params: Json) -> Json:
        channel = self.state.channels.get(str(params.get("channel") or ""))
        if channel is None or (channel.get("is_private") and not self.state.can_read(channel["id"])):
            raise ApiError("channel_not_found")
        members = self.state.members_of(channel["id"])
        start = int(_decode_cursor(params["cursor"], "offset:")) if params.get("cursor") else 0
        limit = _limit(params.get("limit"), default=100, most=1000)
        rest = start + limit < len(members)
        return {
            "members": members[start : start + limit],
            "response_metadata": {"next_cursor": _encode_cursor(f"offset:{start + limit}") if rest else ""},
        }

    def users_info(self, params: Json) -> Json:
        user = self.state.users.get(str(params.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user}

    # ---------------------------------------------------------------- files and reactions

    def files_info(self, params: Json) -> Json:
        file_id = str(params.get("file") or "")
        rec = self.state.files.get(file_id)
        if rec is not None and rec["deleted"]:
            raise ApiError("file_deleted")
        if rec is None or not self.state.file_visible(file_id):
            raise ApiError("file_not_found")
        return {
            "file": self.state.file_object(file_id),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _reaction_target(self, params: Json) -> tuple[Json, str]:
        """The message a reaction call names, and the emoji name, or Slack's error for them."""
        if not params.get("channel") or not params.get("timestamp"):
            raise ApiError("no_item_specified")
        channel = self.readable(params.get("channel"))
        if not _TS.match(str(params["timestamp"])):
            raise ApiError("bad_timestamp")
        rec = self._live_message(channel, params["timestamp"])
        name = str(params.get("name") or "")
        if name.split("::", 1)[0] not in self.emoji:
            raise ApiError("invalid_name")
        return rec, name

    def reactions_add(self, params: Json) -> Json:
        rec, name = self._reaction_target(params)
        users = rec["reactions"].setdefault(name, [])
        if self.state.bot_user_id in users:
            raise ApiError("already_reacted")
        users.append(self.state.bot_user_id)
        self._echo(
            sp.reaction_event(
                name,
                item_ts=rec["ts"],
                channel=rec["channel"],
                user=self.state.bot_user_id,
                item_user=rec["user"],
            )
        )
        return {}

    def reactions_remove(self, params: Json) -> Json:
        rec, name = self._reaction_target(params)
        users = rec["reactions"].get(name, [])
        if self.state.bot_user_id not in users:
            raise ApiError("no_reaction")
        users.remove(self.state.bot_user_id)
        if not users:
            del rec["reactions"][name]
        return {}

    # ---------------------------------------------------------------- the assistant pane

    def _assistant_channel(self, params: Json) -> Json:
        channel = self.state.channels.get(str(params.get("channel_id") or ""))
        if channel is None or not self.state.can_read(channel["id"]):
            raise ApiError("channel_not_found")
        return channel

    def _thread_ts(self, channel: Json, value: Any) -> str:
        if not value:
            raise ApiError("missing_thread_ts")
        rec = self.state.find(channel["id"], str(value))
        if rec is None or rec["deleted"]:
            raise ApiError("invalid_thread_ts")
        return str(rec["ts"])

    def assistant_set_status(self, params: Json) -> Json:
        channel = self._assistant_channel(params)
        thread_ts = self._thread_ts(channel, params.get("thread_ts"))
        if "status" not in params:
            raise invalid_arguments("missing required field: status")
        loading = _json_value(params.get("loading_messages")) or []
        if not isinstance(loading, list) or len(loading) > MAX_LOADING_MESSAGES:
            raise invalid_arguments(
                f"no more than {MAX_LOADING_MESSAGES} items allowed [json-pointer:/loading_messages]"
            )
        self.statuses.append(
            {
                "channel": channel["id"],
                "thread_ts": thread_ts,
                "status": str(params["status"]),
                "loading_messages": loading,
                "at": self.state.clock(),
            }
        )
        return {}

    def thread_status(self, channel: str, thread_ts: str) -> str:
        """The status shown in a thread now: Slack clears it when the app replies, or after two minutes."""
        calls = [c for c in self.statuses if (c["channel"], c["thread_ts"]) == (channel, thread_ts)]
        if not calls:
            return ""
        last = calls[-1]
        replied = any(
            m["posted_at"] > last["at"] for m in self.state.bot_messages(channel, thread_ts=thread_ts)
        )
        expired = self.state.clock() - last["at"] > self.status_ttl_s
        return "" if replied or expired else str(last["status"])

    def assistant_set_title(self, params: Json) -> Json:
        channel = self._assistant_channel(params)
        thread_ts = self._thread_ts(channel, params.get("thread_ts"))
        if not params.get("title"):
            raise invalid_arguments("missing required field: title")
        self.titles[(channel["id"], thread_ts)] = str(params["title"])
        root = self.state.message(channel["id"], thread_ts)
        if root["assistant_thread"] is not None:
            root["assistant_thread"]["title"] = str(params["title"])
        return {}

    def assistant_set_suggested_prompts(self, params: Json) -> Json:
        if not self.agent_app:
            raise ApiError("not_agent_app")
        channel = self._assistant_channel(params)
        # Without thread_ts, Slack sets the prompts for the latest message in the channel.
        thread_ts = self._thread_ts(channel, params["thread_ts"]) if params.get("thread_ts") else None
        prompts = _json_value(params.get("prompts"))
        if (
            not isinstance(prompts, list)
            or not 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS
            or not all(
                isinstance(p, dict)
                and isinstance(p.get("title"), str)
                and isinstance(p.get("message"), str)
                and p["title"]
                and p["message"]
                for p in prompts
            )
        ):
            raise invalid_arguments(
                f"prompts: 1 to {MAX_SUGGESTED_PROMPTS} items of {{title, message}} [json-pointer:/prompts]"
            )
        self.suggested_prompts[(channel["id"], thread_ts)] = {
            "title": params.get("title"),
            "prompts": prompts,
        }
        return {}

    # ---------------------------------------------------------------- modals

    def views_open(self, params: Json) -> Json:
        trigger_id = str(params.get("trigger_id") or "")
        if not trigger_id:
            raise invalid_arguments("missing required field: trigger_id")
        if not _TRIGGER.match(trigger_id) or trigger_id not in self._triggers:
            raise ApiError("invalid_trigger_id")
        trigger = self._triggers[trigger_id]
        if trigger["used"]:
            raise ApiError("exchanged_trigger_id")
        if self.state.clock() - trigger["issued_at"] > self.trigger_ttl_s:
            raise ApiError("expired_trigger_id")
        view = _json_value(params.get("view"))
        if not isinstance(view, dict):
            raise invalid_arguments("missing required field: view")
        _validate_modal(view)
        trigger["used"] = True
        opened = self._view_object(view)
        self.views.append({"trigger_id": trigger_id, "view": opened, "at": self.state.clock()})
        return {"view": opened}

    def _view_object(self, view: Json) -> Json:
        view_id = f"V0FAKE{len(self.views) + 1:04d}"
        return {
            "id": view_id,
            "team_id": self.state.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{view_id}.fakehash",
            "title": view["title"],
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.state.api_app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.state.team_id,
            "bot_id": self.state.bot_id,
        }


class _Window:
    """A history call's (oldest, latest) range; `inclusive` takes the ends too. Bad bounds: Slack's errors."""

    def __init__(self, params: Json) -> None:
        self.oldest = _ts_bound(params.get("oldest"), "invalid_ts_oldest")
        self.latest = _ts_bound(params.get("latest"), "invalid_ts_latest")
        self.inclusive = flag(params.get("inclusive"), False)

    def holds(self, ts: str) -> bool:
        key = ts_key(ts)
        if self.oldest is not None and (key < self.oldest or (key == self.oldest and not self.inclusive)):
            return False
        return self.latest is None or key < self.latest or (key == self.latest and self.inclusive)


def _ts_bound(value: Any, error: str) -> tuple[int, int] | None:
    if value is None or value == "":
        return None
    if not _TS.match(str(value)):
        raise ApiError(error)
    return ts_key(str(value))


def _limit(value: Any, *, default: int, most: int) -> int:
    try:
        return max(1, min(int(value or default), most))
    except (TypeError, ValueError):
        raise ApiError("invalid_limit") from None


def _encode_cursor(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _decode_cursor(cursor: Any, prefix: str) -> str:
    try:
        decoded = base64.b64decode(str(cursor), validate=True).decode()
    except ValueError as exc:
        raise ApiError("invalid_cursor") from exc
    if not decoded.startswith(prefix):
        raise ApiError("invalid_cursor")
    return decoded.removeprefix(prefix)


def _json_value(value: Any) -> Any:
    """A structured argument: as sent in a JSON body, or as the JSON string a form body carries."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_arguments") from exc
    return value


def _validate_modal(view: Json) -> None:
    errors = []
    if view.get("type") != "modal":
        errors.append("must be 'modal' [json-pointer:/view/type]")
    for key in ("title", "submit", "close"):
        text = view.get(key)
        label = text.get("text") if isinstance(text, dict) else None
        if key == "title" and not label:
            errors.append("missing required field: title [json-pointer:/view/title]")
        elif label is not None and len(label) > MAX_MODAL_TITLE:
            errors.append(
                f"must be less than {MAX_MODAL_TITLE + 1} characters [json-pointer:/view/{key}/text]"
            )
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_MODAL_BLOCKS:
        errors.append(f"must be a list of at most {MAX_MODAL_BLOCKS} blocks [json-pointer:/view/blocks]")
    if errors:
        raise invalid_arguments(*errors)
