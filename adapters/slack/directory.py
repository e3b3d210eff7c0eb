"""What the adapter reads from Slack besides events: people's names, and a thread's earlier messages (once)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from adapters.pacing import RetryLater
from adapters.slack.api import SlackApi, SlackCallError
from adapters.slack.addressing import NEW_MESSAGE_SUBTYPES, ts_before
from adapters.slack.formatting import clean_question, mentioned_users
from moa.events import Message

log = logging.getLogger("adapters.slack")

SEED_MESSAGES = 50  # one page of conversations.replies: the thread is read once, never paged through
SEED_CHARS = 8_000  # of that context, the newest part that fits
NAME_CACHE_SIZE = 5_000
_CONTENT_SUBTYPES = (None, "bot_message", *NEW_MESSAGE_SUBTYPES)  # what is worth reading as context


class Directory:
    def __init__(self, api: SlackApi) -> None:
        self._api = api
        self._names: dict[str, str | None] = {}  # user id -> display name (None: looked up, not found)

    async def question(self, text: str, *, bot_user_id: str) -> str:
        """A user's message as the models should read it (see `formatting.clean_question`), names looked up."""
        names = await self.names(mentioned_users(text) - {bot_user_id})
        return clean_question(text, bot_user_id=bot_user_id, names=names)

    async def names(self, users: set[str]) -> dict[str, str]:
        """Display names for user ids, from users.info (Tier 4), cached; ids without a name are left out."""
        missing = [u for u in users if u not in self._names]
        if missing:
            if len(self._names) > NAME_CACHE_SIZE:
                self._names.clear()
            found = await asyncio.gather(*(self._name(u) for u in missing))
            self._names.update(zip(missing, found, strict=True))
        return {u: name for u in users if (name := self._names.get(u))}

    async def thread_context(
        self, channel: str, thread_ts: str, *, before_ts: str, bot_user_id: str, bot_id: str
    ) -> tuple[Message, ...]:
        """The thread's messages before `before_ts` as one context message, or () when the bot took part in
        the thread (its own store is the record then, and a `forget` there must stick) or it cannot be read."""
        try:
            replies = await self._api.call(
                "conversations.replies", channel=channel, ts=thread_ts, limit=SEED_MESSAGES
            )
        except (SlackCallError, RetryLater) as exc:
            log.info("thread %s not read (%s); answering without its context", thread_ts, exc)
            return ()
        earlier: list[dict[str, Any]] = []
        for message in replies.get("messages") or []:
            if not isinstance(message, dict) or not ts_before(str(message.get("ts", "")), before_ts):
                continue
            if message.get("user") == bot_user_id or (bot_id and message.get("bot_id") == bot_id):
                return ()
            if message.get("subtype") in _CONTENT_SUBTYPES:
                earlier.append(message)
        people = {str(m["user"]) for m in earlier if m.get("user")}
        mentioned = {u for m in earlier for u in mentioned_users(str(m.get("text", "")))}
        names = await self.names((people | mentioned) - {bot_user_id})
        lines: list[str] = []
        for message in earlier:
            author = names.get(str(message.get("user", ""))) or _bot_name(message) or "someone"
            body = clean_question(str(message.get("text", "")), bot_user_id=bot_user_id, names=names)
            if body:
                lines.append(f"@{author}: {body}")
        kept: list[str] = []
        size = 0
        for line in reversed(lines):  # the newest context matters most
            size += len(line) + 2
            if size > SEED_CHARS:
                break
            kept.append(line)
        if not kept:
            return ()
        context = "Earlier messages in this Slack thread, oldest first:\n\n" + "\n\n".join(reversed(kept))
        return ({"role": "user", "content": context},)

    async def _name(self, user: str) -> str | None:
        try:
            info = (await self._api.call("users.info", user=user)).get("user") or {}
        except (SlackCallError, RetryLater) as exc:
            log.debug("users.info %s failed: %s", user, exc)
            return None
        profile = info.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or info.get("name")
        return str(name) if name else None


def _bot_name(message: dict[str, Any]) -> str | None:
    profile = message.get("bot_profile") or {}
    name = profile.get("name") or message.get("username")
    return str(name) if name else None
