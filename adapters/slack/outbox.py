"""Posting and editing for every answer of one Slack app: single writes, and the budgets they share.

The numbers (Slack's limits are per method, per app, per workspace):
- `chat.update` is Tier 3, about 50 a minute. Every answer streaming in a workspace spends one shared budget of
  45 a minute with bursts of 3 (so at most 48 in any minute), which leaves headroom for clock skew.
  Interim edits only take a token that is free right now (else they are coalesced: the newest text wins); final
  edits wait for one, ahead of interim edits, and are never dropped.
- Each message is edited at most once a second (`PacedMessage`).
- `chat.postMessage` is about one a second per channel with short bursts: we post one a second per channel,
  in bursts of at most 2.
- A 429 (or a 5xx, which Slack answers before doing anything) becomes `RetryLater`: `adapters.delivery` pauses the
  budget for its Retry-After and tries again (up to `attempts` times). A post that got no answer at all is not
  tried again, since it may have landed.
`SlackPacing.scaled(window_s)` keeps the same shape on a shorter "minute", for tests against a faster fake.

Every message leaves through `SlackMessage.payload()` / `.ephemeral()`, which seal it (nothing pings but the
mentions the message lists on purpose): never send a message's fields directly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from adapters.base import ApiObserver
from adapters.delivery import Budgets
from adapters.pacing import RateBudget, RetryLater
from adapters.slack.api import PLATFORM, SlackApi, SlackCallError
from adapters.slack.formatting import SlackMessage

log = logging.getLogger("adapters.slack")

T = TypeVar("T")


@dataclass(frozen=True)
class SlackPacing:
    window_s: float = 60.0  # Slack's rate-limit minute
    updates_per_window: int = 45  # chat.update per workspace (Tier 3 is ~50)
    update_burst: int = 3  # 45 + 3 = 48 in any window: two to spare for network jitter
    posts_per_window: int = 60  # chat.postMessage per channel (~1/s, bursts allowed)
    post_burst: int = 2
    edit_interval_s: float = 1.0  # per message
    attempts: int = 8  # tries of a post or final edit that Slack keeps answering 429 / 5xx

    @classmethod
    def scaled(cls, window_s: float, **overrides: Any) -> SlackPacing:
        """The same limits on a `window_s`-second "minute" (a test's fake Slack runs faster than real time)."""
        values: dict[str, Any] = {"window_s": window_s, "edit_interval_s": window_s / 60.0, **overrides}
        return cls(**values)

    @property
    def server_error_pause_s(self) -> float:
        """How long to wait after a 5xx before trying again (one "second" of the window)."""
        return self.window_s / 60.0


class Outbox:
    def __init__(self, api: SlackApi, pacing: SlackPacing, observer: ApiObserver) -> None:
        self.api = api
        self.pacing = pacing
        self._observer = observer
        self._updates: dict[str, RateBudget] = {}
        self._posts: dict[tuple[str, str], RateBudget] = {}
        # Slack's `markdown` block is recent; a workspace (or a Slack-compatible server) that refuses it gets
        # the mrkdwn text alone from then on.
        self.blocks_ok = True

    def update_budget(self, team: str) -> RateBudget:
        budget = self._updates.get(team)
        if budget is None:
            p = self.pacing
            budget = self._updates[team] = RateBudget(p.updates_per_window, p.window_s, burst=p.update_burst)
        return budget

    def post_budget(self, team: str, channel: str) -> RateBudget:
        budget = self._posts.get((team, channel))
        if budget is None:
            p = self.pacing
            budget = self._posts[(team, channel)] = RateBudget(
                p.posts_per_window, p.window_s, burst=p.post_burst
            )
        return budget

    def budgets(self, team: str, channel: str) -> Budgets:
        """What one answer in `channel` spends: the workspace's edits, the channel's posts."""
        p = self.pacing
        return Budgets(
            edits=[self.update_budget(team)],
            posts=[self.post_budget(team, channel)],
            edit_interval_s=p.edit_interval_s,
            attempts=p.attempts,
        )

    async def post(self, channel: str, message: SlackMessage, *, thread_ts: str | None = None) -> str:
        """Post a message (in a thread when `thread_ts` is given); returns its ts. 429 and 5xx -> RetryLater."""

        async def send(shown: SlackMessage) -> dict[str, Any]:
            payload = shown.payload()
            return await self.api.call(
                "chat.postMessage",
                channel=channel,
                thread_ts=thread_ts or None,
                text=payload["text"],
                blocks=payload["blocks"] or None,
                unfurl_links=False,  # an answer full of links would otherwise grow previews under it
                unfurl_media=False,
            )

        try:
            response = await self._with_blocks(message, send)
        except SlackCallError as exc:
            # a post that got no answer at all (status 0) may have landed: trying again could post it twice
            if exc.status >= 500:
                raise RetryLater(self.pacing.server_error_pause_s, "Slack server error") from exc
            raise
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """One chat.update, unpaced (the caller's `PacedMessage` spends the budget). 429/5xx -> RetryLater."""

        async def send(shown: SlackMessage) -> None:
            await self.api.call("chat.update", channel=channel, ts=ts, **shown.payload())

        try:
            await self._with_blocks(message, send)
        except SlackCallError as exc:
            if exc.retryable:  # an edit is idempotent: trying it again is always safe
                raise RetryLater(self.pacing.server_error_pause_s, "Slack server error") from exc
            raise

    async def delete(self, channel: str, ts: str) -> None:
        try:
            await self.api.call("chat.delete", channel=channel, ts=ts)
        except (SlackCallError, RetryLater) as exc:
            log.warning("could not delete message %s in %s: %s", ts, channel, exc)

    async def respond(self, response_url: str, text: str) -> bool:
        """An ephemeral reply (mrkdwn `text`) through a slash command's response_url (works even where the bot is
        no member)."""
        body = SlackMessage(text).ephemeral()
        timeout = aiohttp.ClientTimeout(total=10)
        session = self.api.client.session
        try:
            if session is not None and not session.closed:
                async with session.post(response_url, json=body, timeout=timeout) as response:
                    ok = response.status < 300
            else:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as own,
                    own.post(response_url, json=body) as response,
                ):
                    ok = response.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("response_url post failed: %s", exc)
            ok = False
        self._observer.api_call(PLATFORM, "response_url", "ok" if ok else "error")
        return ok

    async def _with_blocks(self, message: SlackMessage, send: Callable[[SlackMessage], Awaitable[T]]) -> T:
        if not self.blocks_ok and message.blocks:
            return await send(message.plain())
        try:
            return await send(message)
        except SlackCallError as exc:
            if exc.error not in ("invalid_blocks", "invalid_blocks_format") or not message.blocks:
                raise
            if self.blocks_ok:
                log.warning(
                    "Slack refused the answer's blocks (%s); sending mrkdwn text only from now on", exc.error
                )
                self.blocks_ok = False
            return await send(message.plain())
