"""Clicks on an answer's buttons: Stop (the asker's only), 👍/👎 (stored with the run), Show drafts (for the clicker).

Every button names its run in its value, and feedback and drafts are looked up in the database, so a click on an
old answer works after a restart; a run that is gone (purged, or never this deployment's) gets a polite note.
Replies are ephemeral, in the thread clicked in: only the clicker sees them. Bolt acknowledges each click when its
listener returns; whatever waits on the database or Slack runs in a task the adapter owns.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.app.async_app import AsyncApp

from adapters.pacing import RetryLater
from adapters.slack.api import SlackCallError
from adapters.slack.formatting import (
    DRAFTS_ACTION,
    FEEDBACK_ACTION,
    STOP_ACTION,
    SlackMessage,
    drafts_messages,
)
from adapters.slack.outbox import Outbox
from moa.answering import Answerer, StopResult
from moa.errors import StorageError

log = logging.getLogger("adapters.slack")

ONLY_ASKER = "Only the person who asked can stop this answer."
ALREADY_DONE = "This answer has already finished."
GONE = "I can't find this answer any more (old answers are deleted after a while), so {what}."
NO_DRAFTS = (
    "This answer has no drafts: one model wrote it alone, or it was stopped before any draft was done."
)
NOT_NOW = "I can't look that up right now (my database is not answering). Please try again in a minute."

Spawn = Callable[[Coroutine[Any, Any, None], str], object]


@dataclass(frozen=True)
class Click:
    """Who clicked which button where, from a `block_actions` payload."""

    team: str
    channel: str
    user: str
    thread_ts: str  # where an ephemeral reply goes
    value: str
    response_url: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Click | None:
        """None for a payload missing what a click on our buttons carries."""
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        user, team, channel = (_field(body, key, "id") for key in ("user", "team", "channel"))
        container, message = _part(body, "container"), _part(body, "message")
        value = action.get("value")
        if not (user and channel and isinstance(value, str) and value):
            return None
        thread = container.get("thread_ts") or message.get("thread_ts") or container.get("message_ts") or ""
        url = body.get("response_url")
        return cls(team or _field(body, "user", "team_id"), channel, user, str(thread), value,
                   url if isinstance(url, str) else "")  # fmt: skip


def _part(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    part = body.get(key)
    return part if isinstance(part, dict) else {}


def _field(body: Mapping[str, Any], key: str, inner: str) -> str:
    value = _part(body, key).get(inner)
    return value if isinstance(value, str) else ""


class Clicks:
    def __init__(self, answerer: Answerer, outbox: Outbox, spawn: Spawn) -> None:
        self._answerer = answerer
        self._outbox = outbox
        self._spawn = spawn

    def register(self, bolt: AsyncApp) -> None:
        bolt.action(STOP_ACTION)(self._on_stop)
        bolt.action(FEEDBACK_ACTION)(self._on_feedback)
        bolt.action(DRAFTS_ACTION)(self._on_drafts)

    async def _on_stop(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        if click is None:
            return
        result = self._answerer.stop(click.value, by=click.user)  # every model call of the run ends at once
        if result is not StopResult.STOPPED:
            note = ONLY_ASKER if result is StopResult.NOT_ASKER else ALREADY_DONE
            self._spawn(self._tell(click, SlackMessage(note)), "slack-stop-refused")

    async def _on_feedback(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        if click is not None:
            self._spawn(self._feedback(click), "slack-feedback")

    async def _on_drafts(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        click = Click.of(body)
        if click is not None:
            self._spawn(self._drafts(click), "slack-drafts")

    async def _feedback(self, click: Click) -> None:
        value, _, run_id = click.value.partition(":")
        if value not in ("up", "down"):
            log.info("ignored a feedback click with value %r", click.value[:100])
            return
        try:
            recorded = await self._answerer.feedback(run_id, click.user, value)
        except StorageError as exc:
            log.warning("feedback on %s not stored: %s", run_id, exc)
            await self._tell(click, SlackMessage(NOT_NOW))
            return
        if not recorded:
            await self._tell(click, SlackMessage(GONE.format(what="your feedback was not recorded")))

    async def _drafts(self, click: Click) -> None:
        try:
            drafts = await self._answerer.drafts(click.value)
        except StorageError as exc:
            log.warning("drafts of %s not read: %s", click.value, exc)
            await self._tell(click, SlackMessage(NOT_NOW))
            return
        if drafts is None:
            await self._tell(click, SlackMessage(GONE.format(what="I can't show its drafts")))
        elif not drafts.proposals:
            await self._tell(click, SlackMessage(NO_DRAFTS))
        else:
            for message in drafts_messages(drafts.question, drafts.proposals):
                await self._tell(click, message)

    async def _tell(self, click: Click, message: SlackMessage) -> None:
        """An ephemeral reply in the clicked thread; through the click's response_url if that fails."""
        try:
            await self._outbox.ephemeral(click.team, click.channel, click.user, click.thread_ts, message)
        except (SlackCallError, RetryLater) as exc:
            log.info(
                "ephemeral reply in %s failed (%s); answering through the response_url", click.channel, exc
            )
            if click.response_url:
                await self._outbox.respond(click.response_url, message)
