"""How fast the Discord adapter writes: the settings, and one shared budget per channel."""

from __future__ import annotations

import time
from dataclasses import dataclass

from adapters.delivery import Budgets
from adapters.pacing import RateBudget


@dataclass(frozen=True)
class DiscordPacing:
    """How fast the adapter writes to Discord. Tests shrink these; production keeps the defaults."""

    edit_interval_s: float = 1.5  # one message is edited at most this often
    # Creates and edits per channel, shared by every answer there. Discord lets bots do about 5 per 5 s; the
    # budget stays under it so that latency jitter never lands a sixth request inside Discord's window.
    channel_count: int = 5
    channel_per_s: float = 6.0
    channel_burst: int = 1
    interaction_ttl_s: float = 15 * 60  # an interaction token works this long after the interaction
    token_margin_s: float = 60.0  # hand over to channel messages this long before the token dies
    ack_within_s: float = 1.5  # a slash command is deferred by then at the latest (Discord allows 3 s)
    final_attempts: int = 8  # tries of a final text that keeps meeting 429s (after discord.py's own retries)
    # Team-knowledge backfill: REST reads (history pages, thread lists) per second, all channels together. A few
    # percent of Discord's global 50/s, so the answers being written meanwhile never wait behind a backfill.
    backfill_per_s: float = 2.0
    backfill_retry_s: float = 30.0  # a read that failed for now (Discord's 5xx, 429s, network) is tried again


class ChannelBudgets:
    """One `RateBudget` per channel, shared by every answer streaming there; idle ones are dropped."""

    def __init__(self, pacing: DiscordPacing, *, keep: int = 512) -> None:
        self._pacing = pacing
        self._keep = keep
        self._budgets: dict[int, tuple[RateBudget, float]] = {}

    def __call__(self, channel_id: int) -> RateBudget:
        now = time.monotonic()
        found = self._budgets.get(channel_id)
        p = self._pacing
        budget = found[0] if found else RateBudget(p.channel_count, p.channel_per_s, burst=p.channel_burst)
        self._budgets[channel_id] = (budget, now)
        if len(self._budgets) > self._keep:
            # a budget unused for a minute is full again, so a fresh one behaves the same
            self._budgets = {k: v for k, v in self._budgets.items() if now - v[1] < 60.0}
        return budget

    def budgets(self, channel_id: int) -> Budgets:
        """Creates and edits in a channel spend the same budget."""
        shared = [self(channel_id)]
        p = self._pacing
        return Budgets(edits=shared, posts=shared, edit_interval_s=p.edit_interval_s, attempts=p.final_attempts)
