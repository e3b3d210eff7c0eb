"""The fake Slack's workspace: members, conversations, messages, files, reactions, and the queries tests use.

No HTTP here: the Web API (`web_api.py`, `methods.py`, `streaming.py`), Socket Mode (`socket_mode.py`), file
downloads (`files.py`) and response_url endpoints (`response_url.py`) read and change this state. `FakeSlack`
is a `SlackState`, so tests call these directly:

    slack.add_channel("C0NEW", "new-channel")
    slack.add_message(sp.CHANNEL_ID, "a human question")
    assert slack.bot_messages(sp.CHANNEL_ID, thread_ts=ts)[-1]["text"] == ...

What people do in the workspace changes it and returns the `event_callback` body Slack would send for it;
push it over Socket Mode (`slack.push_event(body)`) or HTTP (`await slack.deliver_http(url, body, secret)`):

    slack.seed_history(sp.KNOWLEDGE_CHANNEL_ID, 40, days=400)     # backfill material, oldest first
    body = slack.share_file(sp.KNOWLEDGE_CHANNEL_ID, "runbook.md", b"# Runbook ...")   # file_share
    body = slack.edit_message(channel, ts, "new text")               # message_changed (`edited` set)
    body = slack.delete_message(channel, ts)                         # message_deleted, or a tombstone
    body = slack.react(channel, ts, "white_check_mark")              # reaction_added (`unreact`: removed)
    body = slack.start_assistant_thread()                            # assistant_thread_started

A message is a dict (the fake's record, not the Web API's shape: `api_message` makes that): type, channel, ts,
thread_ts, text, blocks, markdown_text, user, bot_id, app_id, team, subtype, mrkdwn, files (file ids),
reactions ({name: [user ids]}), metadata, assistant_thread, edited, `edits` (previous versions, oldest first:
{text, blocks, markdown_text, at}), deleted, posted_at, updated_at.

A thread parent deleted while replies remain is shown as a tombstone (`sp.tombstone`) by the Web API, as Slack
does; it disappears with its last reply.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.fakes import slack_payloads as sp

Json = dict[str, Any]

# Message subtypes that are messages a person or bot wrote (and so are stored when their event arrives).
_STORED_SUBTYPES = {None, "bot_message", "thread_broadcast", "file_share"}
_DAY_S = 86400.0


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
        self.files: dict[str, Json] = {}  # file id -> {id, name, title, mimetype, filetype, user, created,
        #                                    content (bytes), channels (where shared), deleted}
        # Where url_private points; FakeSlack serves it on its own port.
        self.files_base: Callable[[], str] = lambda: "https://files.slack.com"
        self._messages: dict[str, list[Json]] = {}
        self._members: dict[str, set[str] | None] = {}  # None: everyone (a public channel's default)
        self._file_ids = itertools.count(1)
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
        members: Sequence[str] | None = None,
    ) -> Json:
        """Add (or replace) a conversation; returns the `conversations.info` channel object.

        `is_member=False` makes posting answer `not_in_channel` (and a private channel invisible to the bot).
        An IM needs `user`, the other party. `members` are the people in it (the bot counts by `is_member`):
        by default everyone for a public channel, alice for a private one.
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
        if members is not None:
            self._members[channel_id] = set(members)
        elif is_im:
            self._members[channel_id] = {channel["user"]}
        else:
            self._members[channel_id] = {sp.USER_ID} if is_private else None
        self._messages.setdefault(channel_id, [])
        return channel

    def members_of(self, channel_id: str) -> list[str]:
        """The conversation's members (the bot among them when it is in it), as conversations.members lists."""
        listed = self._members.get(channel_id)
        people = [u for u, user in self.users.items() if not user["is_bot"]] if listed is None else listed
        bot = [self.bot_user_id] if self.can_read(channel_id) else []
        return sorted(set(people) - {self.bot_user_id}) + bot

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

    def can_read(self, channel_id: str) -> bool:
        """Whether the bot sees this conversation's messages and files (a member, or its IM)."""
        channel = self.channels.get(channel_id)
        return channel is not None and bool(channel.get("is_im") or channel.get("is_member"))

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
        files: Sequence[str] = (),
        subtype: str | None = None,
    ) -> Json:
        """Store a message as if someone had posted it (e.g. the human question an event refers to).

        `files` are ids from `add_file`, shared with the message; `subtype` is Slack's (e.g. "bot_message").
        """
        if channel not in self.channels:
            raise KeyError(f"unknown channel {channel}; add_channel() it first")
        for file_id in files:
            self.files[file_id]["channels"].add(channel)
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
            "subtype": subtype,
            "mrkdwn": True,
            "files": list(files),
            "reactions": {},
            "metadata": None,
            "assistant_thread": None,
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
        `push_event` calls this for you; call it yourself in HTTP-mode tests. Files of a `file_share` event
        that the workspace does not know yet are added (with no content).
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
        for file in event.get("files") or []:
            if file["id"] not in self.files:
                self._file_record(file["id"], file["name"], b"", user=file.get("user") or sp.USER_ID)
        return self.add_message(
            channel,
            event.get("text", ""),
            user=event.get("user"),
            ts=ts,
            thread_ts=event.get("thread_ts"),
            bot_id=event.get("bot_id"),
            blocks=event.get("blocks"),
            files=[f["id"] for f in event.get("files") or []],
            subtype=None if event.get("subtype") == "file_share" else event.get("subtype"),
        )

    def seed_history(
        self,
        channel: str,
        count: int,
        *,
        days: float = 400.0,
        threads_every: int = 5,
        replies: int = 2,
        users: Sequence[str] = (sp.USER_ID, sp.OTHER_USER_ID),
        text: Callable[[int], str] = lambda i: f"message {i}",
        reply_text: Callable[[int, int], str] = lambda i, k: f"reply {k} to message {i}",
        now: float | None = None,
    ) -> list[Json]:
        """Store `count` top-level messages spread evenly over the last `days` days, oldest first.

        Every `threads_every`-th message (0: none) gets `replies` replies, posted before the next message.
        Real timestamps, so `oldest`/`latest` and a backfill window (MOA_KNOWLEDGE_BACKFILL_DAYS) apply.
        Returns the top-level records, oldest first.
        """
        end = time.time() if now is None else now
        step = days * _DAY_S / max(count, 1)
        parents = []
        for i in range(count):
            at = end - days * _DAY_S + i * step
            parent = self.add_message(channel, text(i), user=users[i % len(users)], ts=sp.ts_at(at))
            parents.append(parent)
            if threads_every and i % threads_every == 0:
                for k in range(replies):
                    self.add_message(
                        channel,
                        reply_text(i, k),
                        user=users[(i + k + 1) % len(users)],
                        ts=sp.ts_at(at + step * (k + 1) / (replies + 1)),
                        thread_ts=parent["ts"],
                    )
        return parents

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

    def replies_of(self, channel: str, thread_ts: str) -> list[Json]:
        """A thread's live replies, oldest first (its parent left out)."""
        return [m for m in self.thread(channel, thread_ts) if m["ts"] != thread_ts]

    def is_tombstone(self, rec: Json) -> bool:
        """A deleted thread parent whose replies remain: Slack still shows it, as "This message was deleted."."""
        return bool(rec["deleted"] and self.replies_of(rec["channel"], rec["ts"]))

    def keep_version(self, rec: Json) -> None:
        """Record a message's current version in its `edits`, before it changes."""
        rec["edits"].append(
            {
                "text": rec["text"],
                "blocks": rec["blocks"],
                "markdown_text": rec["markdown_text"],
                "at": rec["updated_at"] or rec["posted_at"],
            }
        )

    def bot_messages(self, channel: str, *, thread_ts: str | None = None) -> list[Json]:
        """Messages this app's bot posted in a channel, or only in one thread."""
        msgs = self.thread(channel, thread_ts) if thread_ts else self.messages(channel)
        return [m for m in msgs if m["bot_id"] == self.bot_id]

    def api_message(self, rec: Json, *, metadata: bool = False) -> Json:
        """A stored message as the Web API and events show it (no fake-only bookkeeping).

        `metadata` adds the message's metadata, as `include_all_metadata` asks. A deleted thread parent
        whose replies remain shows as its tombstone.
        """
        msg: Json = {"type": "message", "ts": rec["ts"], "text": rec["text"] or rec["markdown_text"] or ""}
        for key in ("subtype", "user", "bot_id", "app_id", "team"):
            if rec.get(key):
                msg[key] = rec[key]
        blocks = rec["blocks"]
        if blocks is None and rec["markdown_text"]:
            # Slack renders markdown_text as a markdown block.
            blocks = [{"type": "markdown", "text": rec["markdown_text"]}]
        elif blocks is None and rec["text"]:
            # ...and text as a rich_text block (bolt's assistant store reads it back from history).
            blocks = sp.rich_text_blocks(rec["text"], block_id=f"t{rec['ts'].replace('.', '')[-6:]}")
        if blocks is not None:
            msg["blocks"] = blocks
        if rec["bot_id"] == self.bot_id:
            msg["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.api_app_id,
                "name": sp.BOT_NAME,
                "deleted": False,
                "team_id": self.team_id,
            }
        if rec["files"]:
            msg.update(files=[self.file_object(f) for f in rec["files"]], upload=False, display_as_bot=False)
        if rec["assistant_thread"] is not None:
            msg["assistant_app_thread"] = dict(rec["assistant_thread"])
        if rec["edited"]:
            msg["edited"] = dict(rec["edited"])
        if rec["reactions"]:
            msg["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in rec["reactions"].items()
            ]
        if metadata and rec["metadata"] is not None:
            msg["metadata"] = dict(rec["metadata"])
        thread_ts = rec["thread_ts"]
        if thread_ts and thread_ts != rec["ts"]:
            msg["thread_ts"] = thread_ts
            parent = self.find(rec["channel"], thread_ts)
            msg["parent_user_id"] = (parent or {}).get("user") or rec.get("user")
        else:
            replies = self.replies_of(rec["channel"], rec["ts"])
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
        return sp.tombstone(msg) if rec["deleted"] else msg

    # ---------------------------------------------------------------- what people do (returns the event body)

    def edit_message(self, channel: str, ts: str, text: str, *, user: str | None = None) -> Json:
        """Someone edits a message (by default its author): `edited` is set; returns the `message_changed`."""
        rec = self.message(channel, ts)
        previous = self.api_message(rec)
        self.keep_version(rec)
        rec.update(text=text, blocks=None, markdown_text=None, updated_at=self.clock())
        if rec["bot_id"] is None:
            rec["blocks"] = sp.rich_text_blocks(text)
        rec["edited"] = {"user": user or rec["user"], "ts": sp.next_ts()}
        changed = sp.message_edited(
            self.api_message(rec), previous, channel=channel, channel_type=self.channel_type(channel)
        )
        return sp.event_callback(changed)

    def delete_message(self, channel: str, ts: str) -> Json:
        """Someone deletes a message; returns the event Slack sends for it.

        `message_deleted`, or, for a thread parent whose replies remain, a `message_changed` whose message is
        the tombstone (`hidden: true`) that `conversations.history` / `.replies` keep showing.
        """
        rec = self.message(channel, ts)
        previous = self.api_message(rec)
        rec.update(deleted=True, updated_at=self.clock())
        channel_type = self.channel_type(channel)
        if self.is_tombstone(rec):
            event = sp.message_edited(
                self.api_message(rec), previous, channel=channel, channel_type=channel_type
            )
        else:
            event = sp.message_deleted(previous, channel=channel, channel_type=channel_type)
        return sp.event_callback(event)

    def react(self, channel: str, ts: str, name: str, *, user: str = sp.USER_ID) -> Json:
        """Someone adds a reaction to a message; returns the `reaction_added` event body."""
        rec = self.message(channel, ts)
        users = rec["reactions"].setdefault(name, [])
        if user not in users:
            users.append(user)
        return sp.event_callback(
            sp.reaction_event(name, item_ts=ts, channel=channel, user=user, item_user=rec["user"])
        )

    def unreact(self, channel: str, ts: str, name: str, *, user: str = sp.USER_ID) -> Json:
        """Someone removes their reaction; returns the `reaction_removed` event body."""
        rec = self.message(channel, ts)
        users = rec["reactions"].get(name, [])
        if user in users:
            users.remove(user)
        if not users:
            rec["reactions"].pop(name, None)
        return sp.event_callback(
            sp.reaction_event(
                name, item_ts=ts, channel=channel, user=user, item_user=rec["user"], added=False
            )
        )

    # ---------------------------------------------------------------- files

    def add_file(
        self,
        name: str,
        content: bytes | str,
        *,
        user: str = sp.USER_ID,
        title: str | None = None,
        mimetype: str | None = None,
        filetype: str | None = None,
    ) -> Json:
        """Upload a file (not shared anywhere yet: the bot cannot see it); returns its file object.

        Type fields default from the extension (`sp.FILE_TYPES`); `size` is the content's.
        """
        file_id = f"F0FAKE{next(self._file_ids):04d}"
        self._file_record(
            file_id, name, content, user=user, title=title, mimetype=mimetype, filetype=filetype
        )
        return self.file_object(file_id)

    def share_file(
        self,
        channel: str,
        name: str,
        content: bytes | str,
        text: str = "",
        *,
        user: str = sp.USER_ID,
        thread_ts: str | None = None,
        ts: str | None = None,
        title: str | None = None,
        mimetype: str | None = None,
        filetype: str | None = None,
    ) -> Json:
        """Someone uploads a file into a channel; returns the `file_share` message event body."""
        file = self.add_file(name, content, user=user, title=title, mimetype=mimetype, filetype=filetype)
        rec = self.add_message(channel, text, user=user, ts=ts, thread_ts=thread_ts, files=[file["id"]])
        event = sp.file_share(
            [self.file_object(file["id"])],
            text,
            channel=channel,
            user=user,
            ts=rec["ts"],
            thread_ts=thread_ts,
            channel_type=self.channel_type(channel),
        )
        return sp.event_callback(event)

    def file_object(self, file_id: str) -> Json:
        """A file as the Web API shows it."""
        rec = self.files[file_id]
        return sp.file_object(
            file_id=file_id,
            name=rec["name"],
            size=len(rec["content"]),
            files_base=self.files_base(),
            user=rec["user"],
            title=rec["title"],
            mimetype=rec["mimetype"],
            filetype=rec["filetype"],
            created=rec["created"],
            team_id=self.team_id,
            team_domain=self.team_domain,
        )

    def file_visible(self, file_id: str) -> bool:
        """Whether the bot may see a file: it was shared where the bot reads."""
        rec = self.files.get(file_id)
        return rec is not None and any(self.can_read(c) for c in rec["channels"])

    def _file_record(
        self,
        file_id: str,
        name: str,
        content: bytes | str,
        *,
        user: str,
        title: str | None = None,
        mimetype: str | None = None,
        filetype: str | None = None,
    ) -> None:
        self.files[file_id] = {
            "id": file_id,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "user": user,
            "created": int(time.time()),
            "content": content.encode() if isinstance(content, str) else bytes(content),
            "channels": set(),
            "deleted": False,
        }

    # ---------------------------------------------------------------- the assistant pane

    def start_assistant_thread(
        self,
        *,
        user: str = sp.USER_ID,
        context_channel: str | None = sp.CHANNEL_ID,
    ) -> Json:
        """A user opens the assistant pane: a new thread in their IM with the bot.

        Stores the thread's root (subtype `assistant_app_thread`, which `assistant.threads.setTitle` titles)
        and returns the `assistant_thread_started` event body.
        """
        channel = self.im_with(user)["id"]
        root = self.add_message(channel, "", user=self.bot_user_id, subtype="assistant_app_thread")
        root["assistant_thread"] = {"title": "", "title_blocks": [], "artifacts": []}
        return sp.event_callback(
            sp.assistant_thread_event(
                channel=channel, thread_ts=root["ts"], user=user, context_channel=context_channel
            )
        )

    def change_assistant_context(
        self, channel: str, thread_ts: str, *, user: str = sp.USER_ID, context_channel: str | None
    ) -> Json:
        """The user switches channels with the pane open; returns `assistant_thread_context_changed`."""
        return sp.event_callback(
            sp.assistant_thread_event(
                channel=channel, thread_ts=thread_ts, user=user, context_channel=context_channel, changed=True
            )
        )
