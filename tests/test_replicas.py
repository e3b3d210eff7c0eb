"""Several `moa-bot run` replicas on one PostgreSQL behave as one bot (that a SQLite file takes one service is
tested in test_storage and test_run_process).

The first tests check the parts in this process: conversations' turns across processes, a stopping replica's
hand-over, SQLite's takeover after a restart, Discord's shards, the settings. The last ones run two and three real
processes against the fake Slack, Discord and LLM on one PostgreSQL, with a heartbeat every 0.3 s and a takeover after
1.5 s. A process takes seconds to start, so each of those walks through several behaviours with the same
processes; every assertion names the behaviour it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from adapters.discord import DiscordAdapter
from bot.config import load_settings
from moa.conversation import ConversationKey, Phase, Question, ReplyView
from moa.errors import ConfigError
from storage import PostgresStore, Store
from tests.core import core_settings, open_test_core
from tests.fakes import slack_payloads as sp
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack
from tests.postgres_server import PostgresServer
from tests.slack_harness import markdown_of, script_models, slack_bot
from tests.test_answering import RecordingSink
from tests.test_run_process import LONG_ANSWER, BotProcess, bot_env, eventually, free_port, thread_texts

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
HEARTBEAT_S, TAKEOVER_AFTER_S = 0.3, 1.5
REPLICA_ENV = {"MOA_HEARTBEAT_S": str(HEARTBEAT_S), "MOA_TAKEOVER_AFTER_S": str(TAKEOVER_AFTER_S)}


async def never(_: object = None) -> None:
    raise AssertionError("waited, where nobody held the turn")


# turns, hand-over and takeover, in this process -------------------------------------------------------------


@pytest.mark.postgres
async def test_answers_in_one_conversation_take_turns_across_processes(postgres_server: PostgresServer) -> None:
    url = await postgres_server.emptied_database()
    async with PostgresStore(url) as one, PostgresStore(url) as two:
        told = asyncio.Event()

        async def on_wait() -> None:
            told.set()

        async def second_answer() -> None:
            async with two.claim_turn(KEY, on_wait):
                pass

        async with one.claim_turn(KEY, never):
            waiting = asyncio.create_task(second_answer())
            await asyncio.wait_for(told.wait(), 5)
            async with two.claim_turn(ConversationKey("slack", "T1", "C1", "other"), never):
                pass  # another conversation is not held up
            await asyncio.sleep(0.2)
            assert not waiting.done(), "the second answer waits while the first holds the conversation"
        await asyncio.wait_for(waiting, 5)


async def test_a_stopping_replica_hands_a_new_question_over_with_its_placeholder(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    async with open_test_core(core_settings(fake_llm, tmp_path)) as core:
        core.answerer.stop_intake(hand_over=True)
        sink = RecordingSink()
        run_id = await core.answerer.answer(Question(KEY, "U1", "asked while stopping"), sink)
        assert sink.refusals == [] and sink.opened == 1, "the question gets its placeholder, not a refusal"
        [run] = await core.store.unfinished_runs()
        assert (run.id, run.owner, run.placeholder) == (run_id, "", {"where": "test"}), \
            "the run is left, with its placeholder, to whichever replica claims it"
        assert fake_llm.requests == [], "the stopping replica asks no model"


async def test_a_question_that_reaches_a_stopping_replica_as_it_closes_is_handed_over(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        bot.answerer.stop_intake(hand_over=True)  # SIGTERM on a replica; its answers in flight are drained
        event = sp.event_callback(sp.app_mention("asked as the replica closed"))
        await asyncio.wait_for(bot.slack.push_event(event), 10)  # acknowledged: Slack will not send it again
        await bot.adapter.aclose()
        [run] = await bot.store.unfinished_runs()
        assert (run.question, run.owner) == ("asked as the replica closed", ""), \
            "the acknowledged question is stored and left to another replica, not dropped with the connection"
        assert run.placeholder.get("ts"), "...with its placeholder, for the other replica to answer into"


async def test_a_stopping_replica_leaves_an_answer_late_for_the_grace_to_another(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    fake_llm.script("p/a", latency=30)
    settings = core_settings(fake_llm, tmp_path)
    async with open_test_core(settings) as core:
        sink = RecordingSink()
        answering = asyncio.create_task(core.answerer.answer(Question(KEY, "U1", "slow"), sink))
        await eventually(lambda: fake_llm.requests_for("p/a"), what="the models asked")
        assert await core.answerer.drain(0.1, hand_over=True) == 1
        await asyncio.gather(answering, return_exceptions=True)
        [run] = await core.store.unfinished_runs()
        assert run.owner == settings.replica_id, "still this replica's: others take it once it retires"
        assert all(view.phase is not Phase.INTERRUPTED for view in sink.views), "the user is not told to ask again"


async def test_an_answer_shown_as_the_shutdown_comes_is_recorded_as_given(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)

    class CancelledAfterTheAnswer(RecordingSink):
        async def show(self, view: ReplyView) -> None:
            await super().show(view)
            if view.phase is Phase.DONE:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # lands on the next await: the bookkeeping after the answer

    async with open_test_core(core_settings(fake_llm, tmp_path)) as core:
        sink = CancelledAfterTheAnswer()
        with pytest.raises(asyncio.CancelledError):
            await core.answerer.answer(Question(KEY, "U1", "q"), sink)
        assert sink.views[-1].phase is Phase.DONE, "the answer stays on screen, not 'interrupted'"
        [record] = [await core.store.get_run(sink.views[-1].run_id)]
        assert record is not None and record["status"] == "done", "and it is recorded done: nobody answers it again"


async def test_a_service_on_sqlite_takes_over_at_once_what_its_predecessor_left(tmp_path: Path) -> None:
    path = tmp_path / "moa.sqlite3"
    crashed = await Store(path).start(exclusive=True)
    await crashed.heartbeat("crashed")
    run = await crashed.create_run(KEY, "U1", "q", "default", "E1", owner="crashed")
    await crashed.aclose()  # as a SIGKILL leaves it: a fresh heartbeat, a run in flight
    async with Store(path) as beside:
        assert await beside.claim_orphans("terminal", 30.0, ["slack"]) == [], "a fresh heartbeat is respected"
    successor = await Store(path).start(exclusive=True)
    try:
        [claimed] = await successor.claim_orphans("successor", 30.0, ["slack"])
        assert claimed.id == run, "the service lock proves the predecessor gone: no takeover timeout to wait"
    finally:
        await successor.aclose()


@pytest.mark.postgres
async def test_services_share_a_postgresql_database(postgres_server: PostgresServer) -> None:
    url = await postgres_server.emptied_database()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            store = await PostgresStore(url).start(exclusive=True)
            stack.push_async_callback(store.aclose)
            assert await store.health() == "ok"


# settings ---------------------------------------------------------------------------------------------------


def test_each_process_is_a_replica_of_its_own() -> None:
    ids = {load_settings({}, dotenv=None).replica_id for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MOA_HEARTBEAT_S": "5", "MOA_TAKEOVER_AFTER_S": "10"}, r"^MOA_TAKEOVER_AFTER_S: 10 s is too short .* 15 s$"),
        ({"DISCORD_SHARD_IDS": "0"}, r"^DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,2"}, r"^DISCORD_SHARD_IDS: shard 2 does not exist"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "one"}, r"^DISCORD_SHARD_IDS: shard ids are numbers"),
    ],
)
def test_replica_settings_that_cannot_work_are_one_clear_line(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(env, dotenv=None)


# Discord's shards ---------------------------------------------------------------------------------------------


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count


def guild_on_shard_one(dc: FakeDiscord) -> int:
    """A second guild, on the shard the first is not on (of two)."""
    while True:
        guild = dc.add_guild("second")
        if shard_of(guild, 2) != shard_of(dc.guild_id, 2):
            return guild
        time.sleep(0.002)  # a snowflake of the next millisecond


async def test_replicas_split_discord_s_shards_and_each_answers_its_own_guilds(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    async with FakeDiscord() as dc:
        second = guild_on_shard_one(dc)
        async with open_test_core(core_settings(fake_llm, tmp_path)) as core, contextlib.AsyncExitStack() as stack:
            replicas = []
            for shard in (0, 1):
                adapter = DiscordAdapter(bot_token=dc.token, answerer=core.answerer, api_base=dc.api_base,
                                         guild_ready_timeout=0.05, shard_count=2, shard_ids=[shard])
                await adapter.start()
                stack.push_async_callback(adapter.aclose)
                replicas.append(adapter)
            assert [dict(a.shards) for a in replicas] == [{0: "ready"}, {1: "ready"}], "each runs its shard"
            assert sorted(i["shard"] for i in dc.identifies) == [[0, 2], [1, 2]], "each identifies as its shard"
            asked = {}
            for guild in (dc.guild_id, second):
                channel = dc.guilds[guild].channel_ids[0]
                asked[guild] = await dc.slash_command(options={"question": f"in guild {guild}"}, channel_id=channel)
            for guild, interaction in asked.items():
                def answered(token: str = interaction.token) -> bool:
                    original = dc.original_response(token)
                    return original is not None and "answer to: in guild" in original.content

                await eventually(answered, what=f"the answer in guild {guild}")
                [holder] = [a for a in replicas if a._client is not None and a._client.get_guild(guild)]
                assert holder is replicas[shard_of(guild, 2)], "a guild's events reach the replica of its shard"
        assert len(fake_llm.requests_for("agg/x")) == 2, "each question is answered once"


# real processes on one PostgreSQL ------------------------------------------------------------------------------


@dataclass
class Replica:
    bot: BotProcess
    socket: int | None  # the id of its Socket Mode connection in the fake Slack

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot.port}"

    async def health(self) -> dict[str, object]:
        return await self.bot.wait_health(200)


@dataclass
class Replicas:
    """Real `moa-bot run` processes on one database; each is killed at the end if still running."""

    env: dict[str, str]
    cwd: Path
    slack: FakeSlack
    started: list[Replica] = field(default_factory=list)

    async def start(self, **extra: str) -> Replica:
        port = free_port()
        seen = {c.id for c in self.slack.connections}
        bot = BotProcess({**self.env, "MOA_HTTP_PORT": str(port), **extra}, self.cwd, port)
        self.started.append(replica := Replica(bot, None))
        await bot.start()  # healthy: Slack (and Discord) connected
        new = [c.id for c in self.slack.live_connections if c.id not in seen]
        replica.socket = new[-1] if new else None
        return replica

    async def kill_all(self) -> None:
        for replica in self.started:
            await replica.bot.kill()


@contextlib.asynccontextmanager
async def replicas(env: dict[str, str], cwd: Path, slack: FakeSlack) -> AsyncIterator[Replicas]:
    group = Replicas(env, cwd, slack)
    try:
        yield group
    finally:
        await group.kill_all()


async def unfinished(url: str) -> list[str]:
    async with PostgresStore(url) as store:
        return [run.id for run in await store.unfinished_runs()]


@pytest.mark.postgres
async def test_replicas_answer_every_delivery_once_and_one_survivor_finishes_a_killed_one_s_answer(
    fake_llm: FakeLLM, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    script_models(fake_llm)
    database = await postgres_server.new_database()
    async with FakeSlack() as slack, FakeDiscord() as dc:
        second_guild = guild_on_shard_one(dc)
        env = bot_env(fake_llm, slack, tmp_path, 0, MOA_DB=database, DISCORD_BOT_TOKEN=dc.token,
                      DISCORD_API_BASE=dc.api_base, DISCORD_SHARD_COUNT="2", **REPLICA_ENV)
        async with replicas(env, tmp_path, slack) as group:
            one = await group.start(DISCORD_SHARD_IDS="0")
            two = await group.start(DISCORD_SHARD_IDS="1")
            healths = [await one.health(), await two.health()]
            assert [h["shards"] for h in healths] == [{"discord": {"0": "ready"}}, {"discord": {"1": "ready"}}], \
                "/healthz names each replica's Discord shards and their states"
            assert healths[0]["replica"] != healths[1]["replica"], "each process is a replica of its own"

            # a Socket Mode delivery, and Slack's retry of it on the other replica's connection
            event = sp.event_callback(sp.app_mention("asked of both"))
            deliveries = [slack.push_event(event, connection=one.socket),
                          slack.push_event(event, 1, connection=two.socket)]
            acks = [await asyncio.wait_for(delivery.future, 10) for delivery in deliveries]
            assert all(ack["envelope_id"] for ack in acks), "both replicas acknowledge their delivery"
            ts = event["event"]["ts"]
            await eventually(lambda: any("answer to: asked of both" in t for t in thread_texts(slack, ts)),
                             what="the answer")

            # Discord: each guild's command reaches the replica of its shard, and is answered once
            commands = [await dc.slash_command(options={"question": f"discord {guild}"},
                                               channel_id=dc.guilds[guild].channel_ids[0])
                        for guild in (dc.guild_id, second_guild)]
            for command in commands:
                await eventually(lambda token=command.token: "answer to: discord" in getattr(
                    dc.original_response(token), "content", ""), what="the Discord answer")

            # a long answer on the first replica, which is killed while it streams
            fake_llm.script("agg/x", reply=LONG_ANSWER, tokens_per_s=6)
            long = sp.event_callback(sp.app_mention("what survives a replica's crash?"))
            await asyncio.wait_for(slack.push_event(long, connection=one.socket), 10)
            long_ts = long["event"]["ts"]
            await eventually(lambda: any("word3" in t for t in thread_texts(slack, long_ts)), what="streaming")
            # a third replica (Slack only: each Discord shard has its replica), so that two survive the kill
            three = await group.start(DISCORD_BOT_TOKEN="")
            asked = len(fake_llm.requests_for("p/a"))
            fake_llm.script("agg/x", reply=LONG_ANSWER)  # the survivor's aggregator is quick
            await one.bot.kill()
            killed = time.monotonic()
            await eventually(lambda: len(fake_llm.requests_for("p/a")) > asked, what="the takeover")
            took = time.monotonic() - killed
            await eventually(lambda: any(t.rstrip().endswith("word59") for t in thread_texts(slack, long_ts)),
                             what="the answer completed by the survivor")
            await asyncio.sleep(3 * HEARTBEAT_S)  # time for a second survivor to claim it too, if it could
            assert await two.bot.signal(signal.SIGTERM) == 0
            assert await three.bot.signal(signal.SIGTERM) == 0
        assert TAKEOVER_AFTER_S - 2 * HEARTBEAT_S <= took <= TAKEOVER_AFTER_S + 6, \
            f"the survivor takes over once the heartbeat is {TAKEOVER_AFTER_S} s old, not before (took {took:.1f} s)"
        assert thread_texts(slack, ts) == ["[agg/x] answer to: asked of both"], \
            "an event delivered to both replicas is answered once"
        assert len([r for r in fake_llm.requests_for("agg/x") if "asked of both" in str(r.messages)]) == 1, \
            "...and its answer is written once"
        assert len([r for r in fake_llm.requests_for("agg/x") if "discord" in str(r.messages)]) == 2, \
            "each Discord command is answered once, by the replica of its guild's shard"
        assert len([r for r in fake_llm.requests_for("agg/x") if "survives a replica" in str(r.messages)]) == 2, \
            "of two survivors, one takes the killed replica's answer over (the killed one wrote it first)"
        texts = thread_texts(slack, long_ts)
        assert len(texts) == 1 and texts[0].strip() == LONG_ANSWER, \
            "the survivor answers the killed replica's question in full, in its placeholder"
        assert await unfinished(database) == [], "no run is left unfinished"


class LoadBalancer:
    """What stands in front of replicas in Slack's HTTP mode: each request to the next replica that is up; one
    that refuses (503, or nothing listening) leaves the rotation and the request goes to the next, as Slack's own
    retry would bring it. Health checks every 0.1 s take a draining replica (503) out of the rotation."""

    def __init__(self, slack: FakeSlack, secret: str) -> None:
        self.slack, self.secret = slack, secret
        self.pool: list[Replica] = []
        self._turn = itertools.count()

    async def deliver(self, event: dict[str, object]) -> Replica:
        for _ in range(20):
            if self.pool:
                replica = self.pool[next(self._turn) % len(self.pool)]
                if await self.send(replica, event):
                    return replica
                self.out(replica)
            await asyncio.sleep(0.1)
        raise AssertionError("no replica took the event")

    async def send(self, replica: Replica, event: dict[str, object]) -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            status, _ = await self.slack.deliver_http(f"{replica.url}/slack/events", event, self.secret)
            return status == 200
        return False

    def out(self, replica: Replica) -> None:
        if replica in self.pool:
            self.pool.remove(replica)

    async def check_health(self) -> None:
        while True:
            for replica in list(self.pool):
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    if (await replica.bot.health())[0] != 200:
                        self.out(replica)
            await asyncio.sleep(0.1)


@pytest.mark.postgres
async def test_a_rolling_restart_behind_a_load_balancer_loses_and_duplicates_nothing(
    fake_llm: FakeLLM, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    script_models(fake_llm, tokens_per_s=5)  # an answer streams for about a second
    database, secret = await postgres_server.new_database(), "rolling-signing-secret"
    channels = [f"C0ROLL{i}" for i in range(6)]  # Slack paces posts per channel: spread the questions
    async with FakeSlack() as slack:
        for channel in channels:
            slack.add_channel(channel, channel.lower())
        env = bot_env(fake_llm, slack, tmp_path, 0, MOA_DB=database, SLACK_SIGNING_SECRET=secret,
                      MOA_SHUTDOWN_GRACE_S="30", MOA_USER_RATE="1000/hour", **REPLICA_ENV)  # one asker, many questions
        del env["SLACK_APP_TOKEN"]  # HTTP mode: Slack POSTs each event to the load balancer
        balancer = LoadBalancer(slack, secret)
        events: list[dict[str, object]] = []

        async def ask_all_along() -> None:
            for i in itertools.count():
                event = sp.event_callback(sp.app_mention(f"question {i}", channel=channels[i % len(channels)]))
                await balancer.deliver(event)
                events.append(event)
                await asyncio.sleep(0.4)

        async with replicas(env, tmp_path, slack) as group:
            balancer.pool = [await group.start(), await group.start()]
            health = asyncio.create_task(balancer.check_health())
            asking = asyncio.create_task(ask_all_along())
            try:
                await asyncio.sleep(2.0)
                old = balancer.pool[0]
                assert old.bot.process is not None
                old.bot.process.send_signal(signal.SIGTERM)
                # a request the balancer had already sent its way, as the signal came
                late = sp.event_callback(sp.app_mention(f"asked as {old.bot.port} stopped", channel=channels[0]))
                if not await balancer.send(old, late):  # it had nothing in flight, and was gone at once
                    await balancer.deliver(late)
                events.append(late)
                new = await group.start()
                balancer.pool.append(new)
                assert await asyncio.wait_for(old.bot.process.wait(), 40) == 0, "the old replica exits 0"
                balancer.out(old)
                await asyncio.sleep(1.0)
                assert not asking.done(), asking.exception()
            finally:
                asking.cancel()
                health.cancel()
                await asyncio.gather(asking, health, return_exceptions=True)
            def unanswered() -> list[str]:
                return [e["event"]["text"] for e in events  # type: ignore[index]
                        if not any("answer to:" in t for t in thread_texts_in(slack, e))]

            with contextlib.suppress(AssertionError):
                await eventually(lambda: not unanswered(), what="every question answered")
            assert unanswered() == [], "no question is lost"
            for replica in balancer.pool:
                assert await replica.bot.signal(signal.SIGTERM) == 0
        for event in events:
            question = event["event"]["text"].split("> ", 1)[1]  # type: ignore[index]
            assert thread_texts_in(slack, event) == [f"[agg/x] answer to: {question}"], \
                f"{question!r}: answered once, in full, with no 'restarting' or 'interrupted' reply"
        written = [json.dumps(r.messages) for r in fake_llm.requests_for("agg/x")]
        assert len(written) == len(events), "no answer is written twice"
        logs = "".join(replica.bot.log.read_text() for replica in group.started)
        assert "handed over to another replica" in logs, "what reached a stopping replica was handed over"
        assert await unfinished(database) == [], "no run is left unfinished"


def thread_texts_in(slack: FakeSlack, event: dict[str, object]) -> list[str]:
    """The bot's replies in the thread of an event's message (in any channel)."""
    inner = event["event"]
    assert isinstance(inner, dict)
    return [markdown_of(m) or m.get("text", "") for m in slack.bot_messages(inner["channel"], thread_ts=inner["ts"])
            if m["ts"] != inner["ts"]]
