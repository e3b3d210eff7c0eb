"""Posting and editing for every answer of one Slack app: single writes, and the budgets they share.

The numbers (Slack's limits are per method, per app, per workspace):
- `chat.update` is Tier 3, about 50 a minute. Every answer streaming in a workspace spends one shared budget of
  45 a minute with bursts of 3 (so at most 48 in any minute), which leaves headroom for clock skew.
  Interim edits only take a token that is free right now (else they are coalesced: the newest text wins); final
  edits wait for one, ahead of interim edits, and are never dropped.
- Each message is edited at most once a second (`PacedMessage`).
- `chat.postMessage` is about one a second per channel with short bursts: we post one a second per channel,
  in bursts of at most 2.
- The methods of native streaming and the assistant pane have limits per method and workspace too, each its own
  budget: `chat.startStream` and `chat.stopStream` are Tier 2 (about 20 a minute: we spend 16, bursts of 3);
  `reactions.add` (the 🤷 on a question no team source matched) is Tier 3 (about 50: we spend 40, bursts of 3);
  `chat.appendStream`, `chat.postEphemeral` and `assistant.threads.*` are Tier 4 (100 or more: we spend 90, bursts
  of 5).
- Reading a knowledge channel's history (`conversations.history` and `.replies`, Tier 3 each) spends one budget per
  workspace of 30 reads a minute with bursts of 3 (`adapters.slack.knowledge`), so that answers reading a thread
  still find room.
- The streaming sink takes a start only when one is free right now (else that answer takes the paced path), and
  coalesces appends as edits are.
- A 429 (or a 5xx, which Slack answers before doing anything) becomes `RetryLater`: `adapters.pacing.send_within`
  pauses the budget for its Retry-After and tries again (up to `attempts` tries in all). A post that got no answer
  at all is not tried again, since it may have landed.
`SlackPacing.scaled(window_s)` keeps the same shape on a shorter "minute", for tests against a faster fake.

Every message leaves through `SlackMessage.payload()` / `.ephemeral()`, which seal it (nothing pings but the
mentions the message lists on purpose): never send a message's fields directly. Streams send parts of sealed
`StreamFrame`s, and plain-text fields (statuses, titles, prompts) leave through `seal_plain`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from adapters.base import ApiObserver
from adapters.delivery import Budgets
from adapters.pacing import RateBudget, RetryLater, send_within
from adapters.slack.api import PLATFORM, SlackApi, SlackCallError
from adapters.slack.formatting import Chunk, SlackMessage, seal_plain

log = logging.getLogger("adapters.slack")

T = TypeVar("T")

# Slack's rate-limit tier of each method that has a budget of its own per workspace.
_TIERS = {
    "chat.startStream": 2,
    "chat.stopStream": 2,
    "reactions.add": 3,
    "chat.appendStream": 4,
    "chat.postEphemeral": 4,
    "assistant.threads.setStatus": 4,
    "assistant.threads.setTitle": 4,
    "assistant.threads.setSuggestedPrompts": 4,
}


@dataclass(frozen=True)
class SlackPacing:
    window_s: float = 60.0  # Slack's rate-limit minute
    updates_per_window: int = 45  # chat.update per workspace (Tier 3 is ~50)
    update_burst: int = 3  # 45 + 3 = 48 in any window: two to spare for network jitter
    posts_per_window: int = 60  # chat.postMessage per channel (~1/s, bursts allowed)
    post_burst: int = 2
    edit_interval_s: float = 1.0  # per message (streamed messages' appends too)
    attempts: int = 8  # tries of a post or final edit that Slack keeps answering 429 / 5xx
    tier2_per_window: int = 16  # each Tier 2 method per workspace (~20): chat.startStream, chat.stopStream
    tier2_burst: int = 3  # 16 + 3 = 19 in any window
    tier3_per_window: int = 40  # each Tier 3 method of its own per workspace (~50): reactions.add
    tier3_burst: int = 3
    tier4_per_window: int = 90  # each Tier 4 method per workspace (100+): appends, ephemerals, assistant.threads.*
    tier4_burst: int = 5
    backfill_reads_per_window: int = 30  # history and replies read for knowledge channels, per workspace
    backfill_burst: int = 3

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
        self._methods: dict[tuple[str, str], RateBudget] = {}
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

    def method_budget(self, team: str, method: str) -> RateBudget:
        """The workspace's budget for one of the streaming, assistant or reaction methods (`_TIERS`)."""
        budget = self._methods.get((team, method))
        if budget is None:
            p = self.pacing
            count, burst = {
                2: (p.tier2_per_window, p.tier2_burst),
                3: (p.tier3_per_window, p.tier3_burst),
                4: (p.tier4_per_window, p.tier4_burst),
            }[_TIERS[method]]
            budget = self._methods[(team, method)] = RateBudget(count, p.window_s, burst=burst)
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

    async def start_stream(
        self, team: str, channel: str, thread_ts: str, *, recipient: str, chunks: list[Chunk]
    ) -> str:
        """chat.startStream in a thread, for `recipient` (the asker: Slack needs them in channels); returns the
        streamed message's ts. Unpaced and never retried: the caller took a token, and falls back when it fails."""
        response = await self.api.call(
            "chat.startStream",
            channel=channel,
            thread_ts=thread_ts,
            recipient_user_id=recipient,
            recipient_team_id=team,
            task_display_mode="plan",  # the models' cards together, as one plan
            chunks=chunks or None,
        )
        return str(response["ts"])

    async def append_stream(self, channel: str, ts: str, chunks: list[Chunk]) -> None:
        """One chat.appendStream, unpaced. 429 and 5xx -> RetryLater (Slack answers those before appending)."""
        await self._write("chat.appendStream", channel=channel, ts=ts, chunks=chunks)

    async def stop_stream(self, channel: str, ts: str, chunks: list[Chunk], under: SlackMessage | None) -> None:
        """chat.stopStream: the last chunks, and the blocks `under` the answer (footer, buttons)."""
        blocks = under.payload()["blocks"] if under is not None else []
        await self._write(
            "chat.stopStream", channel=channel, ts=ts, chunks=chunks or None, blocks=blocks or None
        )

    async def _write(self, method: str, **params: Any) -> None:
        """A write Slack refuses as a whole on a 429 or a 5xx, so trying it again is safe: both -> RetryLater."""
        try:
            await self.api.call(method, **params)
        except SlackCallError as exc:
            if exc.status >= 500:
                raise RetryLater(self.pacing.server_error_pause_s, "Slack server error") from exc
            raise

    async def set_status(self, channel: str, thread_ts: str, status: str, loading: tuple[str, ...]) -> None:
        """The thread's status line ("" clears it), with the loading messages Slack rotates under it."""
        await self.api.call(
            "assistant.threads.setStatus",
            channel_id=channel,
            thread_ts=thread_ts,
            status=seal_plain(status),
            loading_messages=[seal_plain(m) for m in loading] or None,
        )

    async def assistant(self, team: str, method: str, **fields: Any) -> None:
        """assistant.threads.setTitle / setSuggestedPrompts within the workspace's budget; best effort: a
        failure is logged, never raised (the answer does not depend on it)."""
        try:
            await send_within(
                [self.method_budget(team, method)],
                lambda: self.api.call(method, **fields),
                attempts=self.pacing.attempts,
            )
        except (SlackCallError, RetryLater) as exc:
            log.info("%s failed: %s", method, exc)

    async def ephemeral(
        self, team: str, channel: str, user: str, thread_ts: str | None, message: SlackMessage
    ) -> None:
        """A message only `user` sees, in the thread they clicked in (chat.postEphemeral, Tier 4)."""
        payload = message.payload()
        await send_within(
            [self.method_budget(team, "chat.postEphemeral")],
            lambda: self._write(
                "chat.postEphemeral",
                channel=channel,
                user=user,
                thread_ts=thread_ts or None,
                text=payload["text"],
                blocks=payload["blocks"] or None,
            ),
            attempts=self.pacing.attempts,
        )

    async def reply(self, team: str, channel: str, thread_ts: str, message: SlackMessage) -> str:
        """A thread reply that must land, within the channel's posting budget; returns its ts."""
        return await send_within(
            self.budgets(team, channel).posts,
            lambda: self.post(channel, message, thread_ts=thread_ts),
            attempts=self.pacing.attempts,
        )

    async def react(self, team: str, channel: str, ts: str, name: str) -> None:
        """An emoji reaction by the bot on a message, within the workspace's budget; best effort: a failure is
        logged, never raised."""
        try:
            await send_within(
                [self.method_budget(team, "reactions.add")],
                lambda: self._write("reactions.add", channel=channel, timestamp=ts, name=name),
                attempts=self.pacing.attempts,
            )
        except (SlackCallError, RetryLater) as exc:
            log.info("reaction %s on %s in %s failed: %s", name, ts, channel, exc)

    async def delete(self, channel: str, ts: str) -> None:
        try:
            await self.api.call("chat.delete", channel=channel, ts=ts)
        except (SlackCallError, RetryLater) as exc:
            log.warning("could not delete message %s in %s: %s", ts, channel, exc)

    async def respond(self, response_url: str, message: str | SlackMessage) -> bool:
        """An ephemeral reply (mrkdwn text, or a message) through a slash command's or a click's response_url
        (works even where the bot is no member)."""
        body = (SlackMessage(message) if isinstance(message, str) else message).ephemeral()
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
