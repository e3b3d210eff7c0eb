"""A running moa-bot Discord adapter against the fake Discord and the fake LLM, for the Discord tests.

    async with discord_bot(fake_llm, tmp_path) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "what is MoA?"})
        await bot.settled()
        assert "answer to: what is MoA?" in bot.dc.original_response(inter.token).content

Time runs five times faster than Discord's: the fake allows 5 creates or edits per channel per second (Discord:
per 5 s), and the adapter's pacing is scaled to match.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import DiscordAdapter, DiscordPacing
from adapters.render import close_fences
from bot.config import Settings
from moa.answering import Answerer
from moa.knowledge import Librarian
from storage import Store
from tests.core import TomlValue, core_settings, open_test_core
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.llm import FakeLLM
from tests.helpers import eventually

FAKE_RATE = (5, 1.0)  # creates or edits per channel per second, in the fake (Discord: per 5 s)
FAKE_WEBHOOK_RATE = (5, 1.0)  # requests per interaction token
PACING = DiscordPacing(
    edit_interval_s=0.3,
    channel_count=5,
    channel_per_s=1.2,  # the same margin under the fake's limit as production keeps under Discord's
    ack_within_s=1.5,
    backfill_per_s=100.0,
    backfill_retry_s=0.1,
)
NO_PINGS = {"parse": []}


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def api_call(self, platform: str, method: str, outcome: str) -> None:
        assert platform == "discord"
        self.calls[(method, outcome)] += 1

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.calls.items() if o == outcome)


@dataclass
class DiscordBot:
    dc: FakeDiscord
    llm: FakeLLM
    store: Store
    answerer: Answerer
    adapter: DiscordAdapter
    observer: RecordingObserver
    settings: Settings  # what the core was built from (a "restarted" core is built from the same)
    feedback: list[str] = field(default_factory=list)  # what the answerer reported for /metrics, in order
    librarian: Librarian | None = None  # team knowledge, as the adapter was given it

    async def settled(self, within: float = 10.0) -> None:
        """Wait until every event the adapter took is fully handled."""
        await asyncio.sleep(0.05)  # let the gateway deliver what the test just sent
        await eventually(lambda: self.adapter.in_progress == 0, within, "all events handled")

    def thread_of(self, message: StoredMessage) -> int:
        return message.id  # a thread started from a message has the message's id

    def bot_texts(self, channel_id: int) -> list[str]:
        return [m.content for m in self.dc.bot_messages(channel_id)]


def assert_no_pings(dc: FakeDiscord) -> None:
    """Every message the bot created or edited said `allowed_mentions: none`, and none notified anyone."""
    for channel_id in list(dc.channels):
        for message in dc.bot_messages(channel_id):
            if message.interaction_token is not None and message.history[0] == "":
                sent = message.allowed_mentions[1:]  # the deferred "thinking…" response carries no content
            else:
                sent = message.allowed_mentions
            assert all(a == NO_PINGS for a in sent), (message.id, message.allowed_mentions)
            assert message.pinged == set() and not message.mention_everyone, message


def _started_by_bot(task: asyncio.Task[Any]) -> bool:
    """A task running the adapter's or discord.py's code (the fake servers' handlers are theirs to close)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return "/adapters/" in filename or "/discord/" in filename


def fences_balanced(text: str) -> bool:
    return close_fences(text) == text


@contextlib.asynccontextmanager
async def discord_bot(
    llm: FakeLLM,
    tmp_path: Path,
    *,
    knowledge: Callable[[FakeDiscord], Collection[int]] | None = None,
    env: Mapping[str, str] | Callable[[FakeDiscord], Mapping[str, str]] | None = None,
    pacing: DiscordPacing = PACING,
    fake: dict[str, Any] | None = None,
    adapter: dict[str, Any] | None = None,
    setup: Callable[[FakeDiscord], None] | None = None,
    presets: Mapping[str, Mapping[str, TomlValue]] | None = None,
    channels: Callable[[FakeDiscord], Mapping[str, Mapping[str, TomlValue | bool]]] | None = None,
    system_prompt: str = "",
) -> AsyncIterator[DiscordBot]:
    """`env`: the service's variables for the core, or a function of the running fake for those naming its ids.
    `presets` and `channels` (a function of the running fake, whose ids they name) become MOA_CONFIG tables."""
    for model in ("p/a", "p/b"):
        if model not in llm.scripts:
            llm.script(model)
    if "agg/x" not in llm.scripts:
        llm.script("agg/x", tokens_per_s=400)
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    options = {"message_rate": FAKE_RATE, "webhook_rate": FAKE_WEBHOOK_RATE, **(fake or {})}
    async with FakeDiscord(**options) as dc:
        if setup is not None:
            setup(dc)
        settings = core_settings(
            llm,
            tmp_path,
            presets=presets,
            channels=channels(dc) if channels else None,
            system_prompt=system_prompt,
            **(env(dc) if callable(env) else env or {}),
        )
        feedback: list[str] = []
        async with open_test_core(settings, on_feedback=feedback.append) as core:
            observer = RecordingObserver()
            options = {
                "api_base": dc.api_base,
                "guild_ids": (dc.guild_id,),
                "knowledge_channels": {str(c) for c in knowledge(dc)} if knowledge else frozenset(),
                "librarian": core.librarian,
                "backfill_days": settings.knowledge_backfill_days,
                "pacing": pacing,
                "guild_ready_timeout": 0.05,
                **(adapter or {}),
            }
            bot_adapter = DiscordAdapter(bot_token=dc.token, answerer=core.answerer, observer=observer, **options)
            bot = DiscordBot(dc, llm, core.store, core.answerer, bot_adapter, observer, settings, feedback,
                             core.librarian)
            try:
                await bot_adapter.start()
                yield bot
                assert_no_pings(dc)
            finally:
                await bot_adapter.aclose()
        # nothing the adapter started outlives it
        await asyncio.sleep(0)
        leftover = [t for t in asyncio.all_tasks() if not t.done() and _started_by_bot(t)]
        assert leftover == [], leftover
    # the adapter put discord.py's two settings back as it found them
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == saved
