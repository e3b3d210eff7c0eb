"""A running moa-bot Slack adapter against the fake Slack and the fake LLM, for the Slack tests.

    async with slack_bot(fake_llm, tmp_path) as bot:
        env = bot.slack.push_event(sp.event_callback(sp.app_mention("what is MoA?")))
        await bot.settled(env)
        assert bot.answer(sp.CHANNEL_ID, env.payload["event"]["ts"]) == "[agg/x] answer to: what is MoA?"

Time runs `WINDOW_S / 60` times faster than Slack's: the fake's rate-limit minute is `WINDOW_S` seconds, and the
adapter's pacing is scaled to match.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.slack import SlackAdapter, SlackPacing
from adapters.slack.formatting import MESSAGE_CHARS, STREAM_CHARS, SlackMessage, answer_message, split_answer
from moa.answering import Answerer
from moa.knowledge import Librarian
from storage import Store
from tests.core import core_settings, open_test_core
from tests.fakes import slack_payloads as sp
from tests.fakes.llm import FakeLLM, default_reply
from tests.fakes.slack import Envelope, FakeSlack
from tests.helpers import eventually

WINDOW_S = 3.0  # the fake's "minute"
SIGNING_SECRET = "test-signing-secret"
Json = dict[str, Any]


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def api_call(self, platform: str, method: str, outcome: str) -> None:
        assert platform == "slack"
        self.calls[(method, outcome)] += 1


@dataclass
class SlackBot:
    slack: FakeSlack
    llm: FakeLLM
    store: Store
    answerer: Answerer
    adapter: SlackAdapter
    observer: RecordingObserver
    feedback: list[str]  # "up" / "down", as counted for /metrics
    events_url: str = ""  # HTTP mode: where Slack POSTs
    librarian: Librarian | None = None  # team knowledge, when the bot indexes its knowledge channels

    async def settled(self, *acks: Envelope | Awaitable[Any], within: float = 10.0) -> None:
        """Wait for the acks, then until every question the adapter took is fully handled."""
        for ack in acks:
            await asyncio.wait_for(ack, within)  # type: ignore[arg-type]
        await eventually(lambda: self.adapter.in_progress == 0, within, "all questions handled")

    async def indexed(self, *acks: Envelope | Awaitable[Any], within: float = 10.0) -> None:
        """Wait for the acks, then until every question is answered and team knowledge has taken in everything
        (a message that is also a question is indexed once answered; backfills included)."""
        for ack in acks:
            await asyncio.wait_for(ack, within)  # type: ignore[arg-type]
        await eventually(lambda: self.adapter.in_progress == self.adapter.indexing == 0, within, "all indexed")

    def thread(self, channel: str, thread_ts: str) -> list[Json]:
        """The bot's messages in a thread, oldest first (the thread's root left out)."""
        return [m for m in self.slack.bot_messages(channel, thread_ts=thread_ts) if m["ts"] != thread_ts]

    def answer(self, channel: str, thread_ts: str) -> str:
        """The answer's Markdown as shown in a thread: its pieces' markdown blocks, joined."""
        return "\n\n".join(markdown_of(m) for m in self.thread(channel, thread_ts))

    @property
    def aggregations(self) -> int:
        return len(self.llm.requests_for("agg/x"))


def answer_messages(text: str, footer: str, limit: int = MESSAGE_CHARS) -> list[SlackMessage]:
    """A final answer's messages, rendered the way `SlackSink` delivers them (the footer on the last)."""
    pieces = split_answer(text, limit)
    return [answer_message(p, footer if i == len(pieces) - 1 else "") for i, p in enumerate(pieces)]


def markdown_of(message: Json) -> str:
    """A message's Markdown: its markdown blocks, joined; or, while it is a stream, what was streamed so far."""
    markdown = [b["text"] for b in message.get("blocks") or [] if b["type"] == "markdown"]
    return "\n\n".join(markdown) if markdown else message.get("markdown_text") or ""


def footer_of(message: Json) -> str:
    return " ".join(
        e["text"] for b in message.get("blocks") or [] if b["type"] == "context" for e in b["elements"]
    )


def citing(body: Json) -> str:
    """The aggregator's answer citing the first team source when it was given one (else the default answer)."""
    answer = default_reply("agg/x", body)
    given = any('<source n="1">' in str(m.get("content")) for m in body.get("messages") or [])
    return f"{answer} [1]" if given else answer


def script_models(llm: FakeLLM, *, reply: Any = None, tokens_per_s: float | None = None) -> None:
    llm.script("p/a")
    llm.script("p/b")
    llm.script("agg/x", reply=reply, tokens_per_s=tokens_per_s)


@contextlib.asynccontextmanager
async def slack_bot(
    llm: FakeLLM,
    tmp_path: Path,
    *,
    slack: FakeSlack | None = None,
    http: bool = False,
    knowledge: Collection[str] = (),
    env: Mapping[str, str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    pacing: SlackPacing | None = None,
    script: bool = True,
    streaming: bool = False,
    stream_chars: int = STREAM_CHARS,
    channels: Mapping[str, Mapping[str, Any]] | None = None,
    system_prompt: str = "",
    db: str = "moa.sqlite3",
    index: bool = False,
) -> AsyncIterator[SlackBot]:
    """`env`: the service's variables for the core (MOA_USER_RATE is off unless set); `presets`, `channels` and
    `system_prompt`: MOA_CONFIG's. `streaming`: answer by Slack's native streaming (the AI-app tests) instead of
    paced edits (the path every workspace without streaming gets, which the other tests cover). A bot started again
    with the same `slack`, `tmp_path` and `db` is the same deployment after a restart. `index`: feed team knowledge
    (the knowledge channels, backfilled MOA_KNOWLEDGE_BACKFILL_DAYS back, and ✅ reactions), as `moa-bot run` does."""
    if script:
        script_models(llm)
    settings = core_settings(
        llm,
        tmp_path,
        presets=presets,
        channels=channels,
        system_prompt=system_prompt,
        **{"MOA_USER_RATE": "off", "MOA_DB": str(tmp_path / db), **(env or {})},
    )
    feedback: list[str] = []  # what the answerer's feedback hook (the one /metrics counts with) received
    fake = slack or FakeSlack(window_s=WINDOW_S)
    async with contextlib.AsyncExitStack() as stack:
        if slack is None:
            await stack.enter_async_context(fake)
        core = await stack.enter_async_context(open_test_core(settings, on_feedback=feedback.append))
        observer = RecordingObserver()
        adapter = build_adapter(
            fake,
            core.answerer,
            observer,
            http=http,
            knowledge=knowledge,
            pacing=pacing,
            streaming=streaming,
            stream_chars=stream_chars,
            librarian=core.librarian if index else None,
            backfill_days=settings.knowledge_backfill_days,
        )
        bot = SlackBot(fake, llm, core.store, core.answerer, adapter, observer, feedback)
        bot.librarian = core.librarian if index else None
        if http:
            bot.events_url = await stack.enter_async_context(serve(adapter))
        await adapter.start()
        stack.push_async_callback(adapter.aclose)
        yield bot


def build_adapter(
    slack: FakeSlack,
    answerer: Answerer,
    observer: RecordingObserver,
    *,
    http: bool = False,
    knowledge: Collection[str] = (),
    pacing: SlackPacing | None = None,
    streaming: bool = False,
    stream_chars: int = STREAM_CHARS,
    librarian: Librarian | None = None,
    backfill_days: int = 365,
) -> SlackAdapter:
    return SlackAdapter(
        bot_token=slack.bot_token,
        app_token=None if http else slack.app_token,
        signing_secret=SIGNING_SECRET if http else None,
        api_url=slack.api_url,
        knowledge_channels=knowledge,
        answerer=answerer,
        librarian=librarian,
        backfill_days=backfill_days,
        observer=observer,
        pacing=pacing or SlackPacing.scaled(slack.window_s),
        streaming=streaming,
        stream_chars=stream_chars,
        timeout_s=5.0,
        ping_interval_s=1.0,
        connect_timeout_s=5.0,
    )


@contextlib.asynccontextmanager
async def serve(adapter: SlackAdapter) -> AsyncIterator[str]:
    """The process's HTTP server in miniature: an aiohttp app with the adapter's routes, on a free port."""
    app = web.Application()
    adapter.mount(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    finally:
        await runner.cleanup()


def mention(text: str, **kwargs: Any) -> Json:
    return sp.event_callback(sp.app_mention(text, **kwargs))
