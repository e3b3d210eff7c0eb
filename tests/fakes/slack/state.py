"""The fake Slack's workspace: members, conversations, messages, ephemerals, and the queries tests assert on.

No HTTP here: the Web API (`web_api.py`, `methods.py`), Socket Mode (`socket_mode.py`) and response_url
endpoints (`response_url.py`) read and change this state. `FakeSlack` is a `SlackState`, so tests call these
directly:

    slack.add_channel("C0NEW", "new-channel")
    slack.add_message(sp.CHANNEL_ID, "a human question")
    assert slack.bot_messages(sp.CHANNEL_ID, thread_ts=ts)[-1]["text"] == ...

A message is a dict (the fake's record, not the Web API's shape: `SlackMethods.api_message` makes that): type,
channel, ts, thread_ts, text, blocks, markdown_text, user, bot_id, app_id, team, mrkdwn, edited, `edits`
(previous versions, oldest first: {text, blocks, markdown_text, at}), deleted, posted_at, updated_at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes import slack_payloads as sp

Json = dict[str, Any]

# Message subtypes that are messages a person or bot wrote (and so are stored when their event arrives).
_STORED_SUBTYPES = {None, "bot_message", "thread_broadcast", "file_share"}


def ts_key(ts: str) -> tuple[int, int]:
    """A message ts as a sortable (seconds, microseconds) pair."""
    sec, _, frac = ts.partition(".")
    return int(sec), int(frac.ljust(6, "0")[:6] or 0)


class SlackState:
    """One workspace with this app's bot installed, seeded with `slack_payloads`' members and channels."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.team_id = sp.TEAM_ID
        self.team_name = sp.TEAM_NAME
        self.team_domain = sp.TEAM_DOMAIN
        self.api_app_id = sp.API_APP_ID
        self.bot_user_id = sp.BOT_USER_ID
        self.bot_id = sp.BOT_ID
        self.channels: dict[str, Json] = {}
        self.users: dict[str, Json] = {}
        self.ephemerals: list[Json] = []  # chat.postEphemeral and ephemeral response_url posts, in order
        self._messages: dict[str, list[Json]] = {}
        self._seed()

    def _seed(self) -> None:
        self.add_user(sp.USER_ID, sp.USER_NAME, real_name="Alice Example")
        self.add_user(sp.OTHER_USER_ID, sp.OTHER_USER_NAME, real_name="Bob Example")
        self.add_user(sp.BOT_USER_ID, sp.BOT_NAME, is_bot=True, bot_id=sp.BOT_ID)
        self.add_user(sp.OTHER_BOT_USER_ID, "otherbot", is_bot=True, bot_id=sp.OTHER_BOT_ID)
        self.add_channel(sp.CHANNEL_ID, sp.CHANNEL_NAME, is_general=True)
        self.add_channel(sp.OTHER_CHANNEL_ID, "random")
        self.add_channel(sp.KNOWLEDGE_CHANNEL_ID, "knowledge")
        self.add_channel(sp.PRIVATE_CHANNEL_ID, "secret-project", is_private=True)
        self.add_channel(sp.NOT_MEMBER_CHANNEL_ID, "not-joined", is_member=False)
        self.add_channel(sp.DM_CHANNEL_ID, is_im=True, user=sp.USER_ID)

    # ---------------------------------------------------------------- members and conversations

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        is_bot: bool = False,
        bot_id: str | None = None,
        tz: str = "Europe/Paris",
    ) -> Json:
        """Add (or replace) a workspace member; returns the `users.info` user object."""
        real = real_name or name
        user: Json = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real,
            "tz": tz,
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {
                "real_name": real,
                "display_name": name,
                "real_name_normalized": real,
                "display_name_normalized": name,
                "team": self.team_id,
                **({"bot_id": bot_id} if bot_id else {}),
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1700000000,
        }
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_member: bool = True,
        is_private: bool = False,
        is_im: bool = False,
        user: str | None = None,
        is_archived: bool = False,
        is_general: bool = False,
    ) -> Json:
        """Add (or replace) a conversation; returns the `conversations.info` channel object.

        `is_member=False` makes posting answer `not_in_channel`. An IM needs `user`, the other party.
        """
        channel: Json
        if is_im:
            channel = {
                "id": channel_id,
                "created": 1700000000,
                "is_archived": is_archived,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "user": user or sp.USER_ID,
                "is_user_deleted": False,
                "priority": 0,
                "is_open": True,
            }
        else:
            name = name or channel_id.lower()
            channel = {
                "id": channel_id,
                "name": name,
                "is_channel": not is_private,
                "is_group": is_private,
                "is_im": False,
                "is_mpim": False,
                "is_private": is_private,
                "created": 1700000000,
                "is_archived": is_archived,
                "is_general": is_general,
                "unlinked": 0,
                "name_normalized": name,
                "is_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "is_ext_shared": False,
                "context_team_id": self.team_id,
                "creator": sp.USER_ID,
                "is_member": is_member,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        self.channels[channel_id] = channel
        self._messages.setdefault(channel_id, [])
        return channel

    def set_member(self, channel_id: str, is_member: bool) -> None:
        """Join or leave a channel as the bot."""
        self.channels[channel_id]["is_member"] = is_member

    def channel_type(self, channel_id: str) -> str:
        """The `channel_type` Slack puts on message events in this conversation."""
        ch = self.channels[channel_id]
        if ch.get("is_im"):
            return "im"
        if ch.get("is_mpim"):
            return "mpim"
        return "group" if ch.get("is_private") else "channel"

    def im_with(self, user_id: str) -> Json:
        """The bot's IM with a member, opened if needed (posting to a user id opens it, as in Slack)."""
        found = next((c for c in self.channels.values() if c.get("is_im") and c.get("user") == user_id), None)
        return found or self.add_channel(f"D0{user_id[1:]}", is_im=True, user=user_id)

    # ---------------------------------------------------------------- messages

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = sp.USER_ID,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        blocks: list[Json] | None = None,
    ) -> Json:
        """Store a message as if someone had posted it (e.g. the human question an event refers to)."""
        if channel not in self.channels:
            raise KeyError(f"unknown channel {channel}; add_channel() it first")
        rec: Json = {
            "type": "message",
            "channel": channel,
            "ts": ts or sp.next_ts(),
            "thread_ts": thread_ts,
            "text": text,
            "blocks": blocks,
            "markdown_text": None,
            "user": user,
            "bot_id": bot_id,
            "app_id": self.api_app_id if bot_id == self.bot_id else None,
            "team": self.team_id,
            "mrkdwn": True,
            "edited": None,
            "edits": [],
            "deleted": False,
            "posted_at": self.clock(),
            "updated_at": None,
        }
        msgs = self._messages[channel]
        msgs.append(rec)
        msgs.sort(key=lambda m: ts_key(m["ts"]))
        return rec

    def add_bot_message(
        self, channel: str, text: str, *, thread_ts: str | None = None, blocks: list[Json] | None = None
    ) -> Json:
        """Store a message this app's bot posted."""
        return self.add_message(
            channel, text, user=self.bot_user_id, thread_ts=thread_ts, bot_id=self.bot_id, blocks=blocks
        )

    def store_event(self, payload: Mapping[str, Any]) -> Json | None:
        """Store the message an event (or `event_callback` body) refers to, once; None if not a new message.

        In real Slack the message exists before its event arrives, so `conversations.replies` must see it.
        `push_event` calls this for you; call it yourself in HTTP-mode tests.
        """
        event = payload.get("event", payload)
        if (
            event.get("type") not in {"message", "app_mention"}
            or event.get("subtype") not in _STORED_SUBTYPES
        ):
            return None
        channel, ts = event.get("channel"), event.get("ts")
        if channel not in self.channels or not ts or self.find(channel, ts) is not None:
            return None
        return self.add_message(
            channel,
            event.get("text", ""),
            user=event.get("user"),
            ts=ts,
            thread_ts=event.get("thread_ts"),
            bot_id=event.get("bot_id"),
            blocks=event.get("blocks"),
        )

    def messages(self, channel: str, *, include_deleted: bool = False) -> list[Json]:
        """Every message in a channel (top level and thread replies), oldest first."""
        return [m for m in self._messages.get(channel, []) if include_deleted or not m["deleted"]]

    def message(self, channel: str, ts: str) -> Json:
        """One stored message (deleted ones included); KeyError if none has that ts."""
        rec = self.find(channel, ts)
        if rec is None:
            raise KeyError(f"no message {ts} in {channel}")
        return rec

    def find(self, channel: str, ts: str) -> Json | None:
        """One stored message (deleted ones included), or None."""
        for rec in self._messages.get(channel, []):
            if rec["ts"] == ts:
                return rec
        return None

    def thread(self, channel: str, thread_ts: str) -> list[Json]:
        """The thread's parent, then its replies, oldest first (deleted ones left out)."""
        return [
            m
            for m in self.messages(channel)
            if m["ts"] == thread_ts or (m["thread_ts"] == thread_ts and m["ts"] != thread_ts)
        ]

    def bot_messages(self, channel: str, *, thread_ts: str | None = None) -> list[Json]:
        """Messages this app's bot posted in a channel, or only in one thread."""
        msgs = self.thread(channel, thread_ts) if thread_ts else self.messages(channel)
        return [m for m in msgs if m["bot_id"] == self.bot_id]
