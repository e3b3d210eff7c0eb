"""Benchmarks 3 and 4: the Slack and Discord adapters against the fake platforms.

3. Time to first visible output: a burst of questions arrives at once; for each, the time from the event
   reaching the bot (Slack: the Socket Mode envelope pushed; Discord: INTERACTION_CREATE dispatched) to the
   placeholder arriving at the platform (Slack: `chat.postMessage` in the thread; Discord: the interaction's
   deferral callback, which shows "moa is thinking…"). And, for one answer at Slack's and Discord's real pacing,
   the delay between each aggregator token reaching the answerer and the platform first receiving an edit that
   shows it.
4. Pacing: 20 and 50 answers streaming at once in one Slack workspace (one question per channel: Slack allows
   about one new message per second per channel) and in one Discord channel (`/moa`): edits per answer, 429s
   the platform sent, final texts complete (every token of the answer, in order, in the thread).
Slack runs both ways: answers edited in place (`chat.update`, the fallback), and with native streaming
(`chat.startStream` / `appendStream` / `stopStream`), where the answers the workspace's Tier 2 budget cannot start
a stream for right now are edited in place; each Slack row also counts the Web API calls an answer costs on each
path.

The real adapters (`adapters.slack.SlackAdapter`, `adapters.discord.DiscordAdapter`) run with the real
`Answerer`, `Store` and the fake LLM in its own process. The fake Slack and Discord servers run in this process.
The pacing runs are time-scaled as in the adapters' tests: the fake's rate-limit windows and the adapters'
pacing are both shortened by the same factor, so the limits are the real ones, only faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.discord import DiscordAdapter, DiscordPacing
from adapters.slack import SlackAdapter, SlackPacing
from bench.common import FakeLLMProcess, bench_answerer, registry_for, summary, words
from moa.answering import Answerer
from moa.events import AnswerDelta, Event
from moa.presets import BUILTIN_PRESETS, Preset
from storage import Store
from tests.fakes import discord as fake_discord
from tests.fakes import slack_payloads as sp
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack

_TOKEN = re.compile(r"w(\d{4})")


def numbered_reply(tokens: int) -> str:
    """An answer whose tokens say their position: 'w0001 w0002 ...', so any edit shows how far it got."""
    return " ".join(f"w{i:04d}" for i in range(1, tokens + 1))


def last_token_in(payload: Any) -> int:
    return max((int(n) for n in _TOKEN.findall(json.dumps(payload))), default=0)


def tokens_in_order(text: str) -> list[int]:
    return [int(n) for n in _TOKEN.findall(text)]


@dataclass
class Probe:
    """Notes, per run, when each aggregator token reached the answerer (its number, by arrival order)."""

    arrivals: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    _text: dict[str, str] = field(default_factory=dict)

    def __call__(self, run_id: str, event: Event) -> None:
        if isinstance(event, AnswerDelta):
            text = event.text if event.reset else self._text.get(run_id, "") + event.text
            self._text[run_id] = text
            self.arrivals[run_id].append(
                (time.monotonic(), tokens_in_order(text)[-1] if _TOKEN.search(text) else 0)
            )


def visibility_delays(arrivals: list[tuple[float, int]], shown: list[tuple[float, int]]) -> list[float]:
    """For each token arrival, how long until the platform received an edit showing that token or a later one."""
    delays = []
    for arrived, number in arrivals:
        seen = next((t for t, last in shown if last >= number and t >= arrived), None)
        if seen is not None:
            delays.append(seen - arrived)
    return delays


async def script_llm(llm: FakeLLMProcess, preset: Preset, *, agg_tokens: int, tokens_per_s: float) -> str:
    for i, model in enumerate(preset.proposers):
        await llm.script(model, reply=words(120, seed=i), latency=0.4 + 0.05 * i)
    reply = numbered_reply(agg_tokens)
    await llm.script(preset.aggregator, reply=reply, latency=0.2, tokens_per_s=tokens_per_s)
    return reply


def bench_preset() -> Preset:
    return replace(
        BUILTIN_PRESETS["default"],
        name="bench",
        proposers=("bench/pp0", "bench/pp1", "bench/pp2", "bench/pp3"),
        aggregator="bench/pagg",
    )


@contextlib.asynccontextmanager
async def answerer_for(llm: FakeLLMProcess, gate: int, probe: Probe) -> AsyncIterator[tuple[Answerer, Store]]:
    preset = bench_preset()
    registry = registry_for(llm.base_url)
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as folder:
        async with Store(Path(folder) / "moa.sqlite3") as store:
            answerer = bench_answerer(registry, store, preset, gate=gate, on_event=probe)
            try:
                yield answerer, store
            finally:
                await registry.aclose()


async def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {within:g} s")
        await asyncio.sleep(0.02)


# --- Slack ----------------------------------------------------------------------------------------------------


# What a Slack answer's writes are: the calls that create, extend or edit the message it is in.
_SLACK_FIRST = ("chat.postMessage", "chat.startStream")
_SLACK_WRITES = ("chat.update", "chat.appendStream", "chat.stopStream")
_SLACK_SETUP = ("auth.test", "apps.connections.open")


async def slack_run(
    llm: FakeLLMProcess,
    *,
    answers: int,
    window_s: float,
    tokens: int,
    tokens_per_s: float,
    streaming: bool = False,
) -> dict[str, Any]:
    preset = bench_preset()
    await script_llm(llm, preset, agg_tokens=tokens, tokens_per_s=tokens_per_s)
    probe = Probe()
    pacing = SlackPacing() if window_s == 60 else SlackPacing.scaled(window_s)
    async with (
        FakeSlack(window_s=window_s) as slack,
        answerer_for(llm, max(8, answers), probe) as (answerer, store),
    ):
        channels = [f"C0BENCH{i:03d}" for i in range(answers)]
        for channel in channels:
            slack.add_channel(channel)
        adapter = SlackAdapter(
            bot_token=slack.bot_token,
            app_token=slack.app_token,
            signing_secret=None,
            api_url=slack.api_url,
            knowledge_channels=(),
            answerer=answerer,
            pacing=pacing,
            streaming=streaming,
        )
        await adapter.start()
        try:
            pushed: dict[tuple[str, str], float] = {}
            acks = []
            for i, channel in enumerate(channels):
                event = sp.app_mention(f"[q {i}] what is a WAL?", channel=channel)
                pushed[(channel, event["ts"])] = time.monotonic()
                acks.append(slack.push_event(sp.event_callback(event)))
            for ack in acks:  # envelopes are awaitable, not futures: wait for each ack in turn
                await ack
            await asyncio.sleep(0.1)
            await wait_until(lambda: adapter.in_progress == 0, 300, "Slack answers")
            first_post = {}
            firsts = [c for m in _SLACK_FIRST for c in slack.calls_to(m, ok=True)]
            for call in sorted(firsts, key=lambda c: c.time):
                where = (call.params.get("channel"), call.params.get("thread_ts"))
                if where in pushed and where not in first_post:
                    first_post[where] = call.time - pushed[where]
            edits: Counter[tuple[str, str]] = Counter()
            shown: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
            writes = [c for m in _SLACK_WRITES for c in slack.calls_to(m, ok=True)]
            for call in sorted(writes, key=lambda c: c.time):
                where = (call.params.get("channel"), call.params.get("ts"))
                edits[where] += 1
                shown[where].append((call.time, last_token_in(call.params)))
            complete = 0
            finals = []
            for channel, ts in pushed:
                thread = [m for m in slack.bot_messages(channel, thread_ts=ts) if m["ts"] != ts]
                text = "\n".join(json.dumps(m.get("blocks") or m.get("text")) for m in thread)
                complete += tokens_in_order(text) == list(range(1, tokens + 1))
                done = [t for m in thread for t, last in shown[(channel, m["ts"])] if last >= tokens]
                if done:
                    finals.append(min(done) - pushed[(channel, ts)])
            delays: list[float] = []
            for run_id, arrivals in probe.arrivals.items():
                record = await store.get_run(run_id)
                assert record is not None
                placeholder = record["placeholder"]
                assert isinstance(placeholder, dict)
                delays += visibility_delays(arrivals, shown[(placeholder["channel"], placeholder["ts"])])
            limited = sum(1 for c in slack.calls if c.status == 429)
            calls = calls_per_answer(slack, channels)
        finally:
            await adapter.aclose()
    await llm.reset()
    return {
        "answers": answers,
        "path": "streaming" if streaming else "edits",
        "time_scale": round(60 / window_s, 1),
        "placeholder_ms": summary(list(first_post.values()), scale=1000, digits=1),
        "edits_per_answer": summary([edits[k] for k in shown], digits=1),
        "http_429": limited,
        "complete_pct": round(100 * complete / answers, 1),
        "final_visible_s": summary(finals, digits=2),
        "token_visible_ms": summary(delays, scale=1000, digits=0),
        "edit_interval_s": pacing.edit_interval_s,
        "answered": len(first_post),
        "streamed": calls["streamed"]["answers"],
        "calls_per_answer": calls,
    }


def calls_per_answer(slack: FakeSlack, channels: list[str]) -> dict[str, dict[str, float]]:
    """Web API calls per answer, by method, for the answers that streamed and those edited in place (each answer
    has a channel of its own here); every call counts, 429s included."""
    by_channel: dict[str, Counter[str]] = defaultdict(Counter)
    for call in slack.calls:
        channel = call.params.get("channel") or call.params.get("channel_id")
        if call.method not in _SLACK_SETUP and channel in channels:
            by_channel[str(channel)][call.method] += 1
    started = {c.params.get("channel") for c in slack.calls_to("chat.startStream", ok=True)}
    paths: dict[str, list[Counter[str]]] = {"streamed": [], "edited": []}
    for channel in channels:
        paths["streamed" if channel in started else "edited"].append(by_channel[channel])
    result: dict[str, dict[str, float]] = {}
    for path, answers in paths.items():
        methods = sorted({m for counts in answers for m in counts})
        result[path] = {"answers": len(answers)}
        if answers:
            result[path].update({m: round(sum(c[m] for c in answers) / len(answers), 2) for m in methods})
            result[path]["total"] = round(sum(sum(c.values()) for c in answers) / len(answers), 2)
    return result


# --- Discord --------------------------------------------------------------------------------------------------


def discord_pacing(speed: float) -> DiscordPacing:
    base = DiscordPacing()
    if speed == 1:
        return base
    return replace(
        base, edit_interval_s=base.edit_interval_s / speed, channel_per_s=base.channel_per_s / speed
    )


async def discord_run(
    llm: FakeLLMProcess, *, answers: int, speed: float, tokens: int, tokens_per_s: float
) -> dict[str, Any]:
    preset = bench_preset()
    await script_llm(llm, preset, agg_tokens=tokens, tokens_per_s=tokens_per_s)
    probe = Probe()
    pacing = discord_pacing(speed)
    rates = {
        "message_rate": (5, 5.0 / speed),
        "webhook_rate": (5, 2.0 / speed),
        "global_rate": (50, 1.0 / speed),
    }
    async with FakeDiscord(**rates) as dc, answerer_for(llm, max(8, answers), probe) as (answerer, _):
        adapter = DiscordAdapter(
            bot_token=dc.token,
            answerer=answerer,
            api_base=dc.api_base,
            guild_ids=(dc.guild_id,),
            pacing=pacing,
            guild_ready_timeout=0.05,
        )
        await adapter.start()
        try:
            interactions = await asyncio.gather(
                *(dc.slash_command("moa", {"question": f"[q {i}] what is a WAL?"}) for i in range(answers))
            )
            await asyncio.sleep(0.1)
            await wait_until(lambda: adapter.in_progress == 0, 300, "Discord answers")
            by_id = {str(inter.id): inter for inter in interactions}
            deferred = {}
            for call in dc.requests(fake_discord.ROUTE_CALLBACK):
                inter_id = call.path.split("/")[2]
                if inter_id in by_id and inter_id not in deferred and call.status < 300:
                    deferred[inter_id] = call.time - by_id[inter_id].issued_at
            shown: dict[str, list[tuple[float, int]]] = defaultdict(list)
            for call in dc.requests(fake_discord.ROUTE_EDIT_ORIGINAL):
                token = call.path.split("/")[3]
                if call.status < 300:
                    shown[token].append((call.time, last_token_in(call.json)))
            complete, finals, edits = 0, [], []
            for inter in interactions:
                original = dc.original_response(inter.token)
                pieces = [original.content if original else ""] + [
                    f.content for f in dc.followups(inter.token)
                ]
                complete += tokens_in_order("\n".join(pieces)) == list(range(1, tokens + 1))
                edits.append(len(shown[inter.token]))
                done = [t for t, last in shown[inter.token] if last >= tokens]
                if done:
                    finals.append(min(done) - inter.issued_at)
            delays: list[float] = []
            if answers == 1:  # one answer: its run is the only one
                for arrivals in probe.arrivals.values():
                    delays += visibility_delays(arrivals, shown[interactions[0].token])
            limited = sum(dc.rate_limited.values())
        finally:
            await adapter.aclose()
    await llm.reset()
    return {
        "answers": answers,
        "time_scale": speed,
        "placeholder_ms": summary(list(deferred.values()), scale=1000, digits=1),
        "edits_per_answer": summary(edits, digits=1),
        "http_429": limited,
        "complete_pct": round(100 * complete / answers, 1),
        "final_visible_s": summary(finals, digits=2),
        "token_visible_ms": summary(delays, scale=1000, digits=0),
        "edit_interval_s": pacing.edit_interval_s,
        "answered": len(deferred),
    }


async def run(llm: FakeLLMProcess, *, quick: bool) -> dict[str, Any]:
    counts = (20,) if quick else (20, 50)
    slack_rows, discord_rows = [], []
    # one answer at the platforms' real pacing: token-to-visible delay
    for streaming in (False, True):
        slack_rows.append(
            await slack_run(llm, answers=1, window_s=60.0, tokens=150, tokens_per_s=30, streaming=streaming)
        )
    discord_rows.append(await discord_run(llm, answers=1, speed=1.0, tokens=150, tokens_per_s=30))
    for n in counts:
        for streaming in (False, True):
            slack_rows.append(
                await slack_run(llm, answers=n, window_s=6.0, tokens=120, tokens_per_s=40, streaming=streaming)
            )
        discord_rows.append(await discord_run(llm, answers=n, speed=5.0, tokens=120, tokens_per_s=40))
    return {
        "benchmark": "platforms",
        "slack": slack_rows,
        "discord": discord_rows,
        "targets": "placeholder p99 < 300 ms at 50 questions; token visible within the edit interval; "
        "0 HTTP 429; 100% of final texts complete",
    }
