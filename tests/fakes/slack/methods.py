"""The fake Slack's Web API methods: what each does to the workspace and what it answers.

Each handler takes the call's parameters (query, form and JSON merged) and returns the fields of the
`{"ok": true, ...}` body, or raises `ApiError` with Slack's error for the case. The plumbing around them
(auth, rate limits, injected failures, recording) is `web_api.py`'s.

To add a method: write a handler here (validate content with `content.message_content`, resolve channels with
`self.channel`, show stored messages with `self.api_message`), then add one line to `table()` with its
rate-limit tier from Slack's docs (`tier=3`), or `per_channel=True`, or nothing for unlimited.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.fakes import slack_payloads as sp
from tests.fakes.slack.content import flag, message_content
from tests.fakes.slack.state import SlackState
from tests.fakes.slack.web_api import ApiError, Method

Json = dict[str, Any]


class SlackMethods:
    """The handlers, over one workspace. `echo` sends the bot's own activity back as an event (Socket Mode
    decides whether anyone is subscribed); `open_socket` issues a Socket Mode URL."""

    def __init__(
        self,
        state: SlackState,
        *,
        max_text_chars: int,
        replies_max_limit: int,
        echo: Callable[[Json], None],
        open_socket: Callable[[], str],
    ) -> None:
        self.state = state
        self.max_text_chars = max_text_chars
        self.replies_max_limit = replies_max_limit
        self._echo = echo
        self._open_socket = open_socket

    def table(self) -> dict[str, Method]:
        """Every method the fake serves. auth.test and apps.connections.open have generous tiers of their own:
        limiting them would only slow reconnect tests."""
        return {
            "auth.test": Method(self.auth_test),
            "apps.connections.open": Method(self.apps_connections_open, token="app"),
            "chat.postMessage": Method(self.chat_post_message, per_channel=True),
            "chat.update": Method(self.chat_update, tier=3),
            "chat.delete": Method(self.chat_delete, tier=3),
            "chat.postEphemeral": Method(self.chat_post_ephemeral, tier=4),
            "conversations.replies": Method(self.conversations_replies, tier=3),
            "conversations.info": Method(self.conversations_info, tier=3),
            "users.info": Method(self.users_info, tier=4),
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
        if not channel.get("is_im") and not channel.get("is_member"):
            # A private channel the bot is not in is invisible to it, as in Slack.
            raise ApiError("channel_not_found" if channel.get("is_private") else "not_in_channel")
        return channel

    def content(self, params: Json) -> Json:
        return message_content(params, max_text_chars=self.max_text_chars)

    def api_message(self, rec: Json) -> Json:
        """A stored message as the Web API shows it (no fake-only bookkeeping)."""
        state = self.state
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
        if rec["bot_id"] == state.bot_id:
            msg["bot_profile"] = {
                "id": state.bot_id,
                "app_id": state.api_app_id,
                "name": sp.BOT_NAME,
                "deleted": False,
                "team_id": state.team_id,
            }
        if rec["edited"]:
            msg["edited"] = dict(rec["edited"])
        thread_ts = rec["thread_ts"]
        if thread_ts and thread_ts != rec["ts"]:
            msg["thread_ts"] = thread_ts
            parent = state.find(rec["channel"], thread_ts)
            msg["parent_user_id"] = (parent or {}).get("user") or rec.get("user")
        else:
            replies = [m for m in state.thread(rec["channel"], rec["ts"]) if m["ts"] != rec["ts"]]
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

    def _own_message(self, channel: Json, ts: Any, *, not_yours: str) -> Json:
        """A live message the bot posted, for editing or deleting it."""
        rec = self.state.find(channel["id"], str(ts or ""))
        if rec is None or rec["deleted"]:
            raise ApiError("message_not_found")
        if rec["bot_id"] != self.state.bot_id:
            raise ApiError(not_yours)
        return rec

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
        return {"channel": channel["id"], "ts": rec["ts"], "message": self.api_message(rec)}

    def chat_update(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        rec = self._own_message(channel, params.get("ts"), not_yours="cant_update_message")
        content = self.content(params)
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
            rec["mrkdwn"] = flag(params.get("mrkdwn"), True)
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
        message = self.api_message(rec)
        return {"channel": channel["id"], "ts": rec["ts"], "text": message["text"], "message": message}

    def chat_post_ephemeral(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        user = str(params.get("user") or "")
        if user not in self.state.users:
            raise ApiError("user_not_found")
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

    # ---------------------------------------------------------------- conversations and users

    def conversations_replies(self, params: Json) -> Json:
        channel = self.channel(params.get("channel"))
        rec = self.state.find(channel["id"], str(params.get("ts") or ""))
        if rec is None or rec["deleted"]:
            raise ApiError("thread_not_found")
        root = rec["thread_ts"] or rec["ts"]
        thread = self.state.thread(channel["id"], root) or [rec]
        limit = min(int(params.get("limit") or 1000), self.replies_max_limit)
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                start = int(base64.b64decode(str(cursor)).decode().removeprefix("offset:"))
            except ValueError as exc:
                raise ApiError("invalid_cursor") from exc
        page = thread[start : start + limit]
        has_more = start + limit < len(thread)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if has_more else ""
        return {
            "messages": [self.api_message(m) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def conversations_info(self, params: Json) -> Json:
        channel = self.state.channels.get(str(params.get("channel") or ""))
        if channel is None or (channel.get("is_private") and not channel.get("is_member")):
            raise ApiError("channel_not_found")
        return {"channel": dict(channel)}

    def users_info(self, params: Json) -> Json:
        user = self.state.users.get(str(params.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user}
