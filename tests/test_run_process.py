"""`moa-bot run` as an operator runs it: a real process against the fake Slack and the fake LLM.

These tests send real signals (SIGTERM, SIGKILL) and restart the process on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from storage import Store
from tests.fakes import slack_payloads as sp
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, sign_request
from moa.prompts import NO_SOURCES_NOTE
from tests import helpers
from tests.slack_harness import citing, markdown_of, script_models
from tests.test_cli import moa_bot

REPO = Path(__file__).resolve().parents[1]
# a real process takes longer to start and settle than an in-process adapter
eventually = functools.partial(helpers.eventually, within=20.0)
LONG_ANSWER = " ".join(f"word{i}" for i in range(60))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    def __init__(self, env: dict[str, str], cwd: Path, port: int) -> None:
        self.env, self.cwd, self.port = env, cwd, port
        self.process: asyncio.subprocess.Process | None = None
        self.log = cwd / f"bot-{time.monotonic_ns()}.log"

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", env=self.env, cwd=self.cwd,
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )
        await self.wait_health(200)

    async def health(self) -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}/healthz",
                                   timeout=aiohttp.ClientTimeout(total=2)) as response:
                return response.status, await response.json()

    async def wait_health(self, status: int, within: float = 20.0) -> dict[str, object]:
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"moa-bot run exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                code, body = await self.health()
                last = (code, body)
                if code == status:
                    return body
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = exc
            await asyncio.sleep(0.1)
        raise AssertionError(f"health never became {status}; last: {last}\n{self.log.read_text()}")

    async def signal(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 60)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def running_bot(env: dict[str, str], cwd: Path, port: int) -> AsyncIterator[BotProcess]:
    bot = BotProcess(env, cwd, port)
    try:
        await bot.start()
        yield bot
    finally:
        await bot.kill()


def bot_env(llm: FakeLLM, slack: FakeSlack, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a", "p/b"]\naggregator = "agg/x"\nretries = 0\n')
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "TOGETHER_API_KEY": "together-secret-key-123",
        "TOGETHER_BASE_URL": llm.base_url,
        "MOA_CONFIG": str(config),
        "MOA_DB": str(tmp_path / "data" / "moa.sqlite3"),
        "MOA_HTTP_PORT": str(port),
        "MOA_LOG_FORMAT": "json",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


def thread_texts(slack: FakeSlack, ts: str) -> list[str]:
    return [markdown_of(m) or m.get("text", "") for m in slack.bot_messages(sp.CHANNEL_ID, thread_ts=ts)
            if m["ts"] != ts]


async def test_sigkill_mid_answer_then_restart_answers_it(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("p/a")
    fake_llm.script("p/b")
    fake_llm.script("agg/x", reply=LONG_ANSWER, tokens_per_s=6)  # ten seconds of streaming
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as bot:
            event = sp.event_callback(sp.app_mention("what survives a crash?"))
            await asyncio.wait_for(slack.push_event(event), 10)
            ts = event["event"]["ts"]
            await eventually(lambda: any("word3" in t for t in thread_texts(slack, ts)), what="streaming")
            await bot.kill()  # SIGKILL: no chance to clean up
        async with Store(tmp_path / "data" / "moa.sqlite3") as store:
            [run] = await store.unfinished_runs()
            assert run.question == "what survives a crash?" and run.placeholder["ts"], \
                "a SIGKILL leaves the run unfinished, with its placeholder on record"
        fake_llm.script("agg/x", reply=LONG_ANSWER)  # the restarted process gets a quick aggregator
        async with running_bot(env, tmp_path, port) as bot:
            await eventually(lambda: any(t.rstrip().endswith("word59") for t in thread_texts(slack, ts)),
                             what="the answer completed after the restart")
            # the text is visible a moment before the run record is closed: stop the way an operator would
            assert await bot.signal(signal.SIGTERM) == 0
        texts = thread_texts(slack, ts)
        assert len(texts) == 1 and texts[0].strip() == LONG_ANSWER, "the restart answers in full in the same placeholder"
        async with Store(tmp_path / "data" / "moa.sqlite3") as store:
            assert await store.unfinished_runs() == [], "no run is left unfinished after the restart"
            record = await store.get_run(run.id)
            assert record is not None and record["status"] == "done", "the resumed run is recorded done"


async def test_sigkill_then_late_restart_marks_the_answer_interrupted(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("p/a", latency=30)
    fake_llm.script("p/b")
    fake_llm.script("agg/x")
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as bot:
            event = sp.event_callback(sp.app_mention("slow question"))
            await asyncio.wait_for(slack.push_event(event), 10)
            ts = event["event"]["ts"]
            await eventually(lambda: thread_texts(slack, ts), what="placeholder")
            # the placeholder is visible a moment before it is on record; the models are asked after that
            await eventually(lambda: fake_llm.requests_for("p/a"), what="the placeholder on record")
            await bot.kill()
        env["MOA_RECOVER_MAX_AGE_S"] = "0"  # too old to answer again
        async with running_bot(env, tmp_path, port):
            await eventually(lambda: any("interrupted" in t for t in thread_texts(slack, ts)),
                             what="placeholder marked interrupted")
        assert not any("Asking" in t or "drafts in" in t for t in thread_texts(slack, ts))


async def test_sigterm_finishes_quick_answers_and_interrupts_slow_ones(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("p/a")
    fake_llm.script("p/b")
    fake_llm.script("agg/x", reply=lambda body: "slow" if "slow" in str(body["messages"][-1]) else "quick",
                    latency=0.0)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port, MOA_SHUTDOWN_GRACE_S="2")
        async with running_bot(env, tmp_path, port) as bot:
            fake_llm.script("p/a", latency=60)  # the slow question never gets its drafts
            slow = sp.event_callback(sp.app_mention("slow one"))
            await asyncio.wait_for(slack.push_event(slow), 10)
            await eventually(lambda: thread_texts(slack, slow["event"]["ts"]), what="slow placeholder")
            started = time.monotonic()
            assert await bot.signal(signal.SIGTERM) == 0, "SIGTERM exits 0"
            assert time.monotonic() - started < 10, "SIGTERM exits soon after the 2 s grace"
        slow_texts = thread_texts(slack, slow["event"]["ts"])
        assert len(slow_texts) == 1 and "interrupted" in slow_texts[0] and "ask again" in slow_texts[0], \
            "an answer still running after the grace is edited into 'interrupted'"
        lines = [json.loads(line) for line in bot.log.read_text().splitlines() if line.startswith("{")]
        answers = [line for line in lines if line["logger"] == "moa.answer"]
        assert [a["status"] for a in answers] == ["interrupted"], "the JSON log has one line per answer"
        log_text = bot.log.read_text()
        for secret in (slack.bot_token, slack.app_token, "together-secret-key-123"):
            assert secret not in log_text, "no secret reaches the log"


async def test_health_follows_slack_going_away_and_coming_back(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    port = free_port()
    slack = FakeSlack()
    await slack.start()
    slack_port = slack.port
    env = bot_env(fake_llm, slack, tmp_path, port)
    try:
        async with running_bot(env, tmp_path, port) as bot:
            body = await bot.wait_health(200)
            assert body["components"] == {"database": "ok", "slack": "connected"}, "health names every component"
            await slack.aclose()  # Slack goes away
            body = await bot.wait_health(503)
            assert body["components"]["slack"] == "disconnected", "health names Slack as disconnected"
            slack = FakeSlack(port=slack_port)  # and comes back
            await slack.start()
            await bot.wait_health(200, within=60)
            event = sp.event_callback(sp.app_mention("still there?"))
            await asyncio.wait_for(slack.push_event(event), 10)
            await eventually(lambda: any("answer to: still there?" in t
                                         for t in thread_texts(slack, event["event"]["ts"])), what="answer")
            # the answer is visible a moment before its run is counted
            done_line = 'moa_runs_total{platform="slack",preset="default",status="done"} 1.0'
            metrics = ""
            for _ in range(100):
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        metrics = await response.text()
                if done_line in metrics:
                    break
                await asyncio.sleep(0.05)
            assert done_line in metrics, "metrics count the answer given after Slack came back"
            assert 'moa_platform_api_calls_total{method="chat.startStream",outcome="ok",platform="slack"}' in metrics, \
                "metrics count Slack API calls"
    finally:
        await slack.aclose()


@pytest.mark.parametrize("variable", ["MOA_USER_RATE", "MOA_ALLOWED_CHANNELS"])
async def test_limits_and_allow_lists_reply_once(fake_llm: FakeLLM, tmp_path: Path, variable: str) -> None:
    script_models(fake_llm)
    port = free_port()
    value = {"MOA_USER_RATE": "1/hour", "MOA_ALLOWED_CHANNELS": "C0SOMEWHEREELSE"}[variable]
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port, **{variable: value})
        async with running_bot(env, tmp_path, port):
            first = sp.event_callback(sp.app_mention("first"))
            await asyncio.wait_for(slack.push_event(first), 10)
            second = sp.event_callback(sp.app_mention("second"))
            await asyncio.wait_for(slack.push_event(second), 10)
            expected = "limit of 1 questions" if variable == "MOA_USER_RATE" else "not enabled in this channel"
            await eventually(lambda: any(expected in t for t in thread_texts(slack, second["event"]["ts"])),
                             what="refusal")
            assert len(thread_texts(slack, second["event"]["ts"])) == 1
            if variable == "MOA_ALLOWED_CHANNELS":
                assert all(r.model != "agg/x" for r in fake_llm.requests)


async def test_slack_and_discord_together_survive_discord_going_away(fake_llm: FakeLLM, tmp_path: Path) -> None:
    from tests.fakes.discord import FakeDiscord

    script_models(fake_llm)
    port = free_port()
    discord = FakeDiscord()
    await discord.start()
    discord_port = discord.port
    try:
        async with FakeSlack() as slack:
            env = bot_env(fake_llm, slack, tmp_path, port,
                          DISCORD_BOT_TOKEN=discord.token, DISCORD_API_BASE=discord.api_base)
            async with running_bot(env, tmp_path, port) as bot:
                body = await bot.wait_health(200)
                assert body["components"] == {"database": "ok", "slack": "connected", "discord": "connected"}, \
                    "health names both platforms"
                interaction = await discord.slash_command(options={"question": "hello discord"})
                def answered() -> bool:
                    original = discord.original_response(interaction.token)
                    return original is not None and "answer to: hello discord" in original.content

                await eventually(answered, what="discord answer")
                await discord.aclose()  # Discord goes away; Slack keeps working
                body = await bot.wait_health(503)
                assert body["components"]["discord"] == "disconnected", "health names Discord as disconnected"
                assert body["components"]["slack"] == "connected", "Slack stays connected while Discord is away"
                event = sp.event_callback(sp.app_mention("slack still answers?"))
                await asyncio.wait_for(slack.push_event(event), 10)
                await eventually(lambda: any("answer to: slack still answers?" in t
                                             for t in thread_texts(slack, event["event"]["ts"])), what="slack")
                discord = FakeDiscord(port=discord_port)  # and Discord comes back
                await discord.start()
                body = await bot.wait_health(200, within=90)
                assert body["components"]["discord"] == "connected", "Discord reconnects when it comes back"
                assert await bot.signal(signal.SIGTERM) == 0, "SIGTERM exits 0"
    finally:
        await discord.aclose()


async def test_sigterm_answers_every_question_accepted_before_it(fake_llm: FakeLLM, tmp_path: Path) -> None:
    """Ten questions in one channel: their placeholders are paced at about one a second, so most are still
    waiting to be posted when SIGTERM comes. All were accepted, so all are answered within the grace."""
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port, MOA_SHUTDOWN_GRACE_S="30")
        async with running_bot(env, tmp_path, port) as bot:
            events = [sp.event_callback(sp.app_mention(f"question {i}")) for i in range(10)]
            for event in events:
                await asyncio.wait_for(slack.push_event(event), 10)
            assert len(slack.calls_to("chat.postMessage")) < 10, "the channel's pacing holds most placeholders back"
            started = time.monotonic()
            assert await bot.signal(signal.SIGTERM) == 0, "SIGTERM exits 0"
            took = time.monotonic() - started
        for i, event in enumerate(events):
            texts = thread_texts(slack, event["event"]["ts"])
            assert texts == [f"[agg/x] answer to: question {i}"], f"question {i}, accepted before SIGTERM, is answered: {texts}"
        lines = [json.loads(line) for line in bot.log.read_text().splitlines() if line.startswith("{")]
        statuses = [line["status"] for line in lines if line["logger"] == "moa.answer"]
        assert statuses == ["done"] * 10, "every accepted question is recorded done"
        assert took < 30, "the answers finish within the grace"


async def test_http_mode_refuses_junk_quietly_and_answers_a_replayed_command_once(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    port = free_port()
    secret = "process-signing-secret"
    url = f"http://127.0.0.1:{port}/slack/events"
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port, SLACK_SIGNING_SECRET=secret)
        del env["SLACK_APP_TOKEN"]  # HTTP mode: Slack POSTs to /slack/events
        async with running_bot(env, tmp_path, port) as bot, aiohttp.ClientSession() as session:

            async def post(body: bytes, headers: dict[str, str]) -> int:
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status

            junk = b"\x00{]\xff" * 100
            for _ in range(10):  # 500 requests from anyone who can reach the endpoint, in bursts of 50
                statuses = await asyncio.gather(*(post(junk, {}) for _burst in range(50)))
                assert set(statuses) == {401}
            now = int(time.time())
            assert await post(junk, {"X-Slack-Request-Timestamp": "x", "X-Slack-Signature": "v0=0"}) == 401
            assert await post(junk, sign_request(junk, secret, now - 600)) == 401
            assert await post(junk, sign_request(junk, "not-the-secret")) == 401
            assert await post(junk, sign_request(junk, secret, content_type="application/json")) == 400
            form = slack.slash_command_form("asked twice")
            for _ in range(2):  # the same signed request replayed within its 5 minutes
                assert (await slack.deliver_http(url, form, secret, timestamp=now))[0] == 200
            await eventually(lambda: fake_llm.requests_for("agg/x"), what="the command's answer")
            assert await bot.signal(signal.SIGTERM) == 0  # lets any second answer finish, were there one
        [asked] = [m for m in slack.bot_messages(sp.CHANNEL_ID) if not m["thread_ts"]]
        assert any("answer to: asked twice" in t for t in thread_texts(slack, asked["ts"])), \
            "the signed command is answered"
        assert len(fake_llm.requests_for("agg/x")) == 1, "the replayed command is answered once"
        lines = [json.loads(line) for line in bot.log.read_text().splitlines() if line.startswith("{")]
        assert not [line for line in lines if "exception" in line or line["level"] in ("ERROR", "CRITICAL")], \
            "junk leaves no traceback and no error in the log"
        refusals = [line["message"] for line in lines if "unsigned request" in line["message"]]
        # one at once, one summary (at shutdown here; once a minute when it goes on)
        assert len(refusals) == 2, "refused requests are logged once, then summed up"
        assert refusals[1].startswith("refused 502 unsigned requests to /slack/events"), "the summary counts them"
        assert "(missing signature: 499, " in refusals[1], "the summary counts them by reason"
        assert secret not in bot.log.read_text(), "the signing secret never reaches the log"


# team knowledge ------------------------------------------------------------------------------------------

KC = sp.KNOWLEDGE_CHANNEL_ID


def logged(bot: BotProcess) -> list[str]:
    return [json.loads(line)["message"] for line in bot.log.read_text().splitlines() if line.startswith("{")]


async def answers(bot: BotProcess, count: int) -> None:
    """Until `count` answers are recorded finished (the log's line per answer comes after the run record)."""
    await eventually(lambda: sum(m.startswith("answer run=") for m in logged(bot)) >= count,
                     what=f"{count} answers recorded")


async def ask(slack: FakeSlack, event: dict[str, object]) -> str:
    await asyncio.wait_for(slack.push_event(event), 10)
    return str(event["event"]["ts"])  # type: ignore[index]


def reply_to(slack: FakeSlack, asked: str, channel: str = sp.CHANNEL_ID) -> dict[str, Any]:
    """The bot's one message in the thread of the question `asked`."""
    [reply] = [m for m in slack.bot_messages(channel, thread_ts=asked) if m["ts"] != asked]
    return reply


def prompts_since(llm: FakeLLM, count: int) -> str:
    return "\n".join(json.dumps(r.body) for r in llm.completions[count:])


async def indexed(db: str, source: str, *, present: bool = True, not_hash: str | None = None) -> str | None:
    """Poll the database (as `moa-bot knowledge list` reads it) until `source` is indexed (with another content
    than `not_hash`), or gone."""
    async with Store(db) as store:
        for _ in range(400):
            found = await store.document_hash(source)
            if (found is not None and found != not_hash) if present else found is None:
                return found
            await asyncio.sleep(0.05)
    raise AssertionError(f"{source} never {'indexed' if present else 'removed'}")


async def test_a_knowledge_channel_is_backfilled_across_a_restart_then_kept_up_to_date(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm, reply=citing)  # the answer cites its first team source
    port = free_port()
    facts = {0: "The deploy window is Tuesday at ten UTC.", 249: "The VPN password is ZEBRA-9."}
    async with FakeSlack(tier3_per_minute=1) as slack:  # one history page a minute, at first
        seeded = slack.seed_history(KC, 250, days=30, threads_every=250, replies=1,
                                    text=lambda i: facts.get(i, f"chatter {i}"))
        env = bot_env(fake_llm, slack, tmp_path, port, MOA_KNOWLEDGE_CHANNELS=KC)
        source = functools.partial("slack:{}:{}:{}".format, sp.TEAM_ID, KC)
        async with running_bot(env, tmp_path, port) as bot:
            await eventually(lambda: slack.rate_limited["conversations.history"], what="a second page refused")
            started = time.monotonic()
            assert await bot.signal(signal.SIGTERM) == 0
            assert time.monotonic() - started < 10, "a backfill waiting on Slack does not hold the shutdown up"
        code, out, _ = await moa_bot("knowledge", "stats", env=env, cwd=tmp_path)
        assert code == 0 and f"backfill slack {sp.TEAM_ID} {KC}: in progress, 200 messages" in out, \
            "the backfill's progress is on record, and stats show it"
        first, refused = slack.calls_to("conversations.history")
        assert "cursor" not in first.params and refused.params["cursor"] and refused.status == 429
        slack.tier_limits[3] = 50
        slack.reset_limits()
        async with running_bot(env, tmp_path, port) as bot:
            await eventually(lambda: f"knowledge: backfill of slack channel {KC} done: 251 messages" in logged(bot),
                             what="the backfill done")
            resumed = slack.calls_to("conversations.history")[2:]
            assert [c.params.get("cursor") for c in resumed] == [refused.params["cursor"]], \
                "the restarted backfill resumes from its stored cursor: no page is read twice"

            # a cited answer, from a message the resumed backfill read, links to it
            window = await ask(slack, sp.event_callback(sp.app_mention("when is the deploy window?")))
            await answers(bot, 1)
            answer = reply_to(slack, window)
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            link = (await client.chat_getPermalink(channel=KC, message_ts=seeded[0]["ts"]))["permalink"]
            [listed] = [b for b in slack.stream(answer["ts"]).final_blocks or [] if b["type"] == "section"]
            assert markdown_of(answer).endswith("[1]") and listed["text"]["text"].startswith(
                f"*Sources*\n[1] <{link}|The deploy window is Tuesday at ten UTC.> — "
            ), "the streamed answer cites [1] and ends with a Sources block linking Slack's permalink"

            # a deleted message is never in a prompt again
            vpn = await ask(slack, sp.event_callback(sp.app_mention("what is the VPN password?")))
            await answers(bot, 2)
            assert "ZEBRA-9" in prompts_since(fake_llm, 0), "the backfilled message is used..."
            await asyncio.wait_for(slack.push_event(slack.delete_message(KC, seeded[249]["ts"])), 10)
            await indexed(env["MOA_DB"], source(seeded[249]["ts"]), present=False)
            asked = len(fake_llm.completions)
            await ask(slack, sp.event_callback(sp.app_mention("what is the VPN password?", channel=sp.OTHER_CHANNEL_ID)))
            await answers(bot, 3)
            assert "ZEBRA-9" not in prompts_since(fake_llm, asked), "...until it is deleted: then never again"

            # a live message is indexed, and an edit indexes it again
            note = await ask(slack, sp.event_callback(sp.message("Billing deploys need two approvals.", channel=KC)))
            await answers(bot, 4)  # a knowledge channel answers it, then indexes it
            first_hash = await indexed(env["MOA_DB"], source(note))
            await asyncio.wait_for(
                slack.push_event(slack.edit_message(KC, note, "Billing deploys need three approvals.")), 10)
            await indexed(env["MOA_DB"], source(note), not_hash=first_hash)
            asked = len(fake_llm.completions)
            approvals = await ask(slack, sp.event_callback(sp.app_mention("how many approvals do billing deploys need?")))
            await answers(bot, 5)
            assert "three approvals" in prompts_since(fake_llm, asked), "the live message, as edited, is used"
            assert "two approvals" not in prompts_since(fake_llm, asked), "its text before the edit is not"

            # a ✅ by the asker verifies an answer; by someone else who does not curate, it does nothing
            verified, refused_ts = reply_to(slack, approvals)["ts"], reply_to(slack, vpn)["ts"]
            await asyncio.wait_for(slack.push_event(slack.react(sp.CHANNEL_ID, verified, "white_check_mark")), 10)
            await asyncio.wait_for(slack.push_event(slack.react(sp.CHANNEL_ID, refused_ts, "white_check_mark",
                                                                user=sp.OTHER_USER_ID)), 10)
            await eventually(lambda: sum("✅ added" in m for m in logged(bot)) == 2, what="both ✅ handled")
            outcomes = [m for m in logged(bot) if "✅ added" in m]
            assert f"knowledge: ✅ added on {verified} in {sp.CHANNEL_ID} by {sp.USER_ID}: verified" in outcomes, \
                "the asker's ✅ verifies the answer"
            assert f"knowledge: ✅ added on {refused_ts} in {sp.CHANNEL_ID} by {sp.OTHER_USER_ID}: not_allowed" \
                in outcomes, "a ✅ by someone who neither asked nor curates is refused"
            asked = len(fake_llm.completions)
            await ask(slack, sp.event_callback(sp.app_mention("how many approvals do billing deploys need?",
                                                             channel=sp.OTHER_CHANNEL_ID, user=sp.OTHER_USER_ID)))
            await answers(bot, 6)
            assert "Q: how many approvals do billing deploys need?" in prompts_since(fake_llm, asked), \
                "the verified answer is team knowledge now"
            assert await bot.signal(signal.SIGTERM) == 0


async def test_private_knowledge_stays_in_its_channel_and_unmatched_questions_follow_the_no_sources_mode(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    port = free_port()
    private = sp.PRIVATE_CHANNEL_ID
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port, MOA_KNOWLEDGE_CHANNELS=f"{KC},{private}")
        async with running_bot(env, tmp_path, port) as bot:
            fact = sp.event_callback(sp.message("The launch codename is BLUEHERON.", channel=private,
                                                channel_type="group"))
            await ask(slack, fact)
            await answers(bot, 1)
            await indexed(env["MOA_DB"], f"slack:{sp.TEAM_ID}:{private}:{fact['event']['ts']}")
            asked = len(fake_llm.completions)
            for event in (sp.app_mention("what is the launch codename?"),
                          sp.dm_message("what is the launch codename?"),
                          sp.app_mention("what is the launch codename?", channel=KC)):
                await ask(slack, sp.event_callback(event))
            await answers(bot, 4)
            assert len(fake_llm.completions) == asked + 9 and "BLUEHERON" not in prompts_since(fake_llm, asked), \
                "a private channel's fact reaches no model for a question from another channel or a DM"
            asked = len(fake_llm.completions)
            await ask(slack, sp.event_callback(sp.app_mention("what is the launch codename?", channel=private)))
            await answers(bot, 5)
            assert "BLUEHERON" in prompts_since(fake_llm, asked), "asked in the private channel, it is used"

            umbrella = await ask(slack, sp.event_callback(sp.message("anyone seen my umbrella?", channel=KC)))
            await answers(bot, 6)
            assert markdown_of(reply_to(slack, umbrella, KC)).endswith(NO_SOURCES_NOTE), "MOA_KNOWLEDGE_NO_SOURCES=answer: answered, with a note"
            assert await bot.signal(signal.SIGTERM) == 0
        reads = len(slack.calls_to("conversations.history"))
        async with running_bot({**env, "MOA_KNOWLEDGE_NO_SOURCES": "silent"}, tmp_path, port) as bot:
            # (the umbrella question is team knowledge now: this one shares no word with anything indexed)
            scarf = await ask(slack, sp.event_callback(sp.message("is the coffee machine fixed?", channel=KC)))
            await eventually(lambda: slack.message(KC, scarf)["reactions"], what="a reaction")
            assert slack.message(KC, scarf)["reactions"] == {"shrug": [sp.BOT_USER_ID]}, \
                "MOA_KNOWLEDGE_NO_SOURCES=silent: a 🤷 on the question..."
            assert await bot.signal(signal.SIGTERM) == 0
        assert [m for m in slack.bot_messages(KC, thread_ts=scarf) if m["ts"] != scarf] == [], "...and no reply"
        assert len(slack.calls_to("conversations.history")) == reads, "finished backfills are not read again"


# the database under faults -------------------------------------------------------------------------------


def mount(*args: str) -> bool:
    """Run mount(8); False where tests may not mount (not root, no CAP_SYS_ADMIN, no mount command)."""
    return shutil.which("mount") is not None and subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def mounted(path: Path, *args: str) -> Iterator[None]:
    if not mount(*args, str(path)):
        pytest.skip(f"this machine does not let tests mount ({' '.join(args)}); needs root with CAP_SYS_ADMIN")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """`path` read-only for real: chmod for a normal user; for root, whom chmod does not stop, a read-only bind
    mount of the file."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    with mounted(path, "--bind", str(path)):
        if not mount("-o", "remount,bind,ro", str(path)):
            pytest.skip("this machine does not let tests remount read-only; needs root with CAP_SYS_ADMIN")
        yield


def fill(path: Path) -> None:
    """Write `path` until its file system has not one block left."""
    with path.open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)


async def run_until_it_exits(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """`moa-bot run` expected to stop by itself: killed, and the test failed, if it is still up after 20 s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 20)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("moa-bot run kept running") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_second_run_on_one_database_refuses_to_start(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as first:
            code, out, err = await run_until_it_exits({**env, "MOA_HTTP_PORT": str(free_port())}, tmp_path)
            assert code == 2 and out == ""
            [line] = err.strip().splitlines()
            assert "MOA_DB" in line and env["MOA_DB"] in line and "PostgreSQL" in line
            event = sp.event_callback(sp.app_mention("still yours?"))
            await asyncio.wait_for(slack.push_event(event), 10)
            await eventually(lambda: any("answer to: still yours?" in t for t in thread_texts(slack, event["event"]["ts"])),
                             what="the first process answering")
            await first.kill()  # SIGKILL: the kernel drops the lock with the process
        async with running_bot(env, tmp_path, port):
            pass


async def test_terminal_commands_work_beside_a_running_service(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port):
            code, out, err = await moa_bot("ask", "beside the service?", env=env, cwd=tmp_path)
            assert code == 0, err
            assert "answer to: beside the service?" in out


async def test_health_reports_deleted_database_files(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as bot:
            for suffix in ("", "-wal", "-shm"):
                os.unlink(env["MOA_DB"] + suffix)
            body = await bot.wait_health(503, within=5)
            assert body["components"]["database"] == (
                "the database file was deleted or replaced; restart to recreate it"
            )


async def test_health_reports_a_full_disk_until_space_returns(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    port = free_port()
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted(disk, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        async with FakeSlack() as slack:
            env = bot_env(fake_llm, slack, tmp_path, port, MOA_DB=str(disk / "moa.sqlite3"))
            async with running_bot(env, tmp_path, port) as bot:
                fill(disk / "filler")
                body = await bot.wait_health(503, within=5)
                assert body["components"]["database"] == "not writable: the disk is full"
                (disk / "filler").unlink()
                body = await bot.wait_health(200, within=5)
                assert body["components"]["database"] == "ok"


async def test_health_reports_writes_past_the_file_size_limit(fake_llm: FakeLLM, tmp_path: Path) -> None:
    # RLIMIT_FSIZE: a real write failure (EFBIG) on any machine, where a tmpfs cannot be mounted
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as bot:
            assert bot.process is not None
            pid, wal = bot.process.pid, os.stat(env["MOA_DB"] + "-wal")
            _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal.st_size, hard))  # the WAL cannot grow
            body = await bot.wait_health(503, within=5)
            assert body["components"]["database"] == "not writable: a disk read or write failed (I/O error)"
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
            await bot.wait_health(200, within=5)


async def test_run_refuses_a_read_only_database_in_one_line(fake_llm: FakeLLM, tmp_path: Path) -> None:
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with Store(env["MOA_DB"]):
            pass
        with read_only_file(Path(env["MOA_DB"])):
            code, out, err = await run_until_it_exits(env, tmp_path)
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == [f"moa-bot: MOA_DB: cannot open {env['MOA_DB']}: the database is read-only"]


async def test_questions_that_cannot_be_stored_get_a_reply_and_leave_nothing_half_posted(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm)
    port = free_port()
    async with FakeSlack() as slack:
        env = bot_env(fake_llm, slack, tmp_path, port)
        async with running_bot(env, tmp_path, port) as bot:
            assert bot.process is not None
            pid, wal = bot.process.pid, os.stat(env["MOA_DB"] + "-wal")
            _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal.st_size, hard))  # no write can land now
            await bot.wait_health(503, within=5)
            event = sp.event_callback(sp.app_mention("are you storing this?"))
            ack = await asyncio.wait_for(slack.push_event(event), 10)
            assert ack["envelope_id"]  # acknowledged: Slack will not deliver it again and again
            await eventually(lambda: thread_texts(slack, event["event"]["ts"]), what="a reply")
            [reply] = thread_texts(slack, event["event"]["ts"])
            assert "can't store questions right now" in reply and "Error" not in reply
            posts = len(slack.calls_to("chat.postMessage"))
            await asyncio.wait_for(slack.push_slash_command(sp.slash_command("and this one?")), 10)
            await eventually(lambda: slack.response_url_posts, what="an ephemeral reply")
            assert "can't store questions right now" in slack.response_url_posts[-1]["body"]["text"]
            assert len(slack.calls_to("chat.postMessage")) == posts  # no "asked" message left behind
            assert fake_llm.requests == []
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


# the OpenAI-compatible API -------------------------------------------------------------------------------

API_KEY = "process-api-key-0123456789"


def api_env(llm: FakeLLM, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """`moa-bot run` with the API as its only adapter: no Slack, no Discord."""
    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a", "p/b"]\naggregator = "agg/x"\nretries = 0\n')
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "TOGETHER_API_KEY": "together-secret-key-123",
        "TOGETHER_BASE_URL": llm.base_url,
        "MOA_CONFIG": str(config),
        "MOA_DB": str(tmp_path / "data" / "moa.sqlite3"),
        "MOA_HTTP_PORT": str(port),
        "MOA_LOG_FORMAT": "json",
        "MOA_API_KEYS": API_KEY,
        **extra,
    }


async def api_runs_counted(port: int, count: int) -> str:
    """/metrics once it counts `count` answered API runs (a run is counted a moment after its answer)."""
    line = f'moa_runs_total{{platform="api",preset="default",status="done"}} {count:.1f}'
    metrics = ""
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
            if line in metrics:
                break
            await asyncio.sleep(0.05)
    assert line in metrics
    return metrics


async def test_the_openai_sdk_sync_and_async_streamed_and_not_gets_answers_from_moa_bot_run(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    import openai

    script_models(fake_llm)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    env = api_env(fake_llm, tmp_path, port)
    async with running_bot(env, tmp_path, port) as bot:
        body = await bot.wait_health(200)
        assert body["components"] == {"database": "ok", "api": "connected"}

        def sync_client() -> tuple[str | None, str]:
            with openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
                whole = client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "sync whole"}])
                stream = client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "sync stream"}], stream=True)
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return whole.choices[0].message.content, streamed

        # the sync client blocks its thread; the fake LLM answers on this one
        assert await asyncio.to_thread(sync_client) == ("[agg/x] answer to: sync whole",
                                                        "[agg/x] answer to: sync stream")
        async with openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
            whole = await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "async whole"}])
            assert whole.choices[0].message.content == "[agg/x] answer to: async whole"
            assert whole.usage is not None and whole.usage.total_tokens > 0
            stream = await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "async stream"}], stream=True,
                stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
                "[agg/x] answer to: async stream")
            # the usage of every call of the run, which costs what the other one did (a question as long)
            assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens
            assert [m.id async for m in client.models.list()] == ["default", "demo", "lite", "seed", "self"]
        await api_runs_counted(port, 4)
        assert await bot.signal(signal.SIGTERM) == 0
    assert API_KEY not in bot.log.read_text()


async def test_the_together_sdk_pointed_at_moa_bot_run_gets_answers(fake_llm: FakeLLM, tmp_path: Path) -> None:
    import together

    script_models(fake_llm)
    port = free_port()
    async with running_bot(api_env(fake_llm, tmp_path, port), tmp_path, port):
        client = together.AsyncTogether(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
        try:
            whole = await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "together whole"}])
            assert whole.choices[0].message.content == "[agg/x] answer to: together whole"
            stream = await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "together stream"}], stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert streamed == "[agg/x] answer to: together stream"
        finally:
            await client.close()


async def test_sigterm_lets_api_streams_finish_and_refuses_new_requests_with_503(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    script_models(fake_llm, reply=LONG_ANSWER, tokens_per_s=30)  # two seconds of streaming
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "default", "messages": [{"role": "user", "content": "long one"}], "stream": True}
    async with running_bot(api_env(fake_llm, tmp_path, port, MOA_SHUTDOWN_GRACE_S="30"), tmp_path, port) as bot, \
            aiohttp.ClientSession() as session:
        async with session.post(url, headers=headers, json=body) as response:
            received = b""
            async for raw in response.content:
                received += raw
                if b"word3" in received:
                    break
            assert bot.process is not None
            bot.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with session.post(url, headers=headers, json={**body, "stream": False}) as refused:
                assert refused.status == 503
                assert (await refused.json())["error"]["code"] == "shutting_down"
            received += await response.content.read()
        assert received.rstrip().endswith(b"data: [DONE]") and b"word59" in received
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
