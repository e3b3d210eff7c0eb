"""The Slack adapter end to end: the real slack-bolt app and slack_sdk clients against the fake Slack (Socket Mode
and signed HTTP mode), the real core against the fake LLM, a real Store under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.slack import SlackAdapter, check_auth
from adapters.slack.api import SlackApi, SlackCallError, web_client
from adapters.slack.outbox import Outbox, SlackPacing
from bot.config import Settings
from bot.platform_checks import check_platforms
from moa.conversation import Phase, ReplyView
from moa.prompts import NO_SOURCES_NOTE
from moa.persistence import RunRecord
from tests.fakes import slack_payloads as sp
from tests.fakes.llm import FakeLLM, Failure
from tests.fakes.slack import Envelope, FakeSlack, sign_request
from tests.slack_harness import (
    answer_messages,
    SIGNING_SECRET,
    WINDOW_S,
    RecordingObserver,
    SlackBot,
    build_adapter,
    eventually,
    footer_of,
    markdown_of,
    mention,
    script_models,
    slack_bot,
)

CH = sp.CHANNEL_ID
EXPECTED = "[agg/x] answer to: {}"


def ts_of(body: dict[str, object]) -> str:
    return str(body["event"]["ts"])  # type: ignore[index]


async def runs(bot: SlackBot) -> list[dict[str, object]]:
    async with bot.store.db.execute("SELECT id FROM runs ORDER BY created_at") as cursor:
        ids = [row[0] for row in await cursor.fetchall()]
    return [r for r in [await bot.store.get_run(i) for i in ids] if r is not None]


# ---------------------------------------------------------------------------------------------- entry points


@dataclass
class Answered:
    """A mention in a channel, answered."""

    bot: SlackBot
    body: dict[str, Any]
    envelope: Envelope

    @property
    def thread(self) -> list[dict[str, Any]]:
        return self.bot.thread(CH, ts_of(self.body))


@pytest.fixture
async def answered(fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[Answered]:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body = mention("what is &lt;MoA&gt;?")
        envelope = bot.slack.push_event(body)
        await bot.settled(envelope)
        yield Answered(bot, body, envelope)


async def test_a_mention_is_acknowledged_within_a_second(answered: Answered) -> None:
    latency = answered.envelope.ack_latency_s
    assert latency is not None and latency < 1.0


async def test_a_mention_is_answered_in_one_message_in_its_thread(answered: Answered) -> None:
    [reply] = answered.thread
    assert markdown_of(reply) == EXPECTED.format("what is <MoA>?")


async def test_the_answer_has_a_footer_naming_the_preset_and_models(answered: Answered) -> None:
    [reply] = answered.thread
    assert footer_of(reply).startswith("test · a, b → x · ")


async def test_the_answer_has_a_mrkdwn_fallback_text(answered: Answered) -> None:
    [reply] = answered.thread
    assert reply["text"].startswith("[agg/x] answer to: what is &lt;MoA&gt;?")


async def test_a_placeholder_is_posted_at_once_then_edited_with_progress(answered: Answered) -> None:
    [reply] = answered.thread
    versions = [e["text"] for e in reply["edits"]]
    assert versions[0] == "_Asking 2 models…_"
    assert any("drafts in" in (v or "") for v in versions)


async def test_the_run_is_recorded_with_its_event_and_placeholder(answered: Answered) -> None:
    [reply] = answered.thread
    [run] = await runs(answered.bot)
    assert run["status"] == "done" and run["event_id"] == answered.body["event_id"]
    assert run["placeholder"] == {
        "platform": "slack",
        "team": sp.TEAM_ID,
        "channel": CH,
        "ts": reply["ts"],
        "message": reply["ts"],  # what a ✅ on the answer finds its run by
        "thread_ts": ts_of(answered.body),
    }


async def test_slack_calls_are_reported_to_the_observer(answered: Answered) -> None:
    calls = answered.bot.observer.calls
    assert calls[("chat.update", "ok")] >= 2 and calls[("chat.postMessage", "ok")] == 1


@pytest.fixture
async def followed_up(fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[tuple[SlackBot, dict[str, Any]]]:
    """A mention answered, then in its thread a follow-up mention and a reply without one."""
    async with slack_bot(fake_llm, tmp_path) as bot:
        first = mention("what is WAL?")
        await bot.settled(bot.slack.push_event(first))
        follow = mention("and in Postgres?", thread_ts=ts_of(first))
        plain = sp.event_callback(sp.thread_reply("people chatting, no mention", thread_ts=ts_of(first)))
        await bot.settled(bot.slack.push_event(follow), bot.slack.push_event(plain))
        yield bot, first


async def test_a_follow_up_mention_in_the_thread_continues_the_conversation(
    followed_up: tuple[SlackBot, dict[str, Any]], fake_llm: FakeLLM
) -> None:
    bot, first = followed_up
    assert [m["content"] for m in fake_llm.requests_for("p/a")[-1].messages] == [
        "what is WAL?",
        EXPECTED.format("what is WAL?"),
        "and in Postgres?",
    ]
    assert markdown_of(bot.thread(CH, ts_of(first))[-1]) == EXPECTED.format("and in Postgres?")


async def test_a_thread_reply_without_a_mention_is_not_a_question(
    followed_up: tuple[SlackBot, dict[str, Any]],
) -> None:
    bot, _ = followed_up
    assert bot.aggregations == 2


async def test_the_bots_own_thread_is_never_read_back(followed_up: tuple[SlackBot, dict[str, Any]]) -> None:
    bot, _ = followed_up
    assert bot.slack.calls_to("conversations.replies") == []


async def test_direct_messages_are_questions_and_forget_works_there(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        dm = sp.event_callback(sp.dm_message("hello there"))
        await bot.settled(bot.slack.push_event(dm))
        assert bot.answer(sp.DM_CHANNEL_ID, ts_of(dm)) == EXPECTED.format("hello there")
        forget = sp.event_callback(sp.dm_message("forget", thread_ts=ts_of(dm)))
        await bot.settled(bot.slack.push_event(forget))
        reply = bot.thread(sp.DM_CHANNEL_ID, ts_of(dm))[-1]
        assert "deleted this conversation's stored history (2 messages)" in reply["text"]
        assert not await bot.store.has_history(_key(sp.DM_CHANNEL_ID, ts_of(dm)))
        top_level = sp.event_callback(sp.dm_message("forget"))
        await bot.settled(bot.slack.push_event(top_level))
        assert "inside that thread" in bot.thread(sp.DM_CHANNEL_ID, ts_of(top_level))[-1]["text"]
        assert bot.aggregations == 1


async def test_forget_in_a_channel_thread(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        first = mention("what is WAL?")
        await bot.settled(bot.slack.push_event(first))
        await bot.settled(bot.slack.push_event(mention("forget", thread_ts=ts_of(first))))
        assert "deleted this conversation's stored history" in bot.thread(CH, ts_of(first))[-1]["text"]
        await bot.settled(bot.slack.push_event(mention("again?", thread_ts=ts_of(first))))
        assert [m["content"] for m in fake_llm.requests_for("p/a")[-1].messages] == ["again?"]
        # the thread has the bot's messages: it is not read back to rebuild what was forgotten
        assert bot.slack.calls_to("conversations.replies") == []
        await bot.settled(bot.slack.push_event(mention("forget", thread_ts=ts_of(first))))
        await bot.settled(bot.slack.push_event(mention("forget", thread_ts=ts_of(first))))
        assert "nothing to forget" in bot.thread(CH, ts_of(first))[-1]["text"]


async def test_first_mention_in_an_existing_thread_reads_it_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        root = bot.slack.add_message(CH, "Our deploy failed with &lt;exit 137&gt;", user=sp.OTHER_USER_ID)
        bot.slack.add_message(CH, "OOM? ask <@U0ALICE>", user=sp.OTHER_USER_ID, thread_ts=root["ts"])
        await bot.settled(bot.slack.push_event(mention("why did it fail?", thread_ts=root["ts"])))
        assert len(bot.slack.calls_to("conversations.replies")) == 1
        messages = fake_llm.requests_for("agg/x")[-1].messages
        context = next(m["content"] for m in messages if "Earlier messages" in m["content"])
        assert "@bob: Our deploy failed with <exit 137>" in context and "@bob: OOM? ask @alice" in context
        assert messages[-1]["content"] == "why did it fail?"
        await bot.settled(bot.slack.push_event(mention("and now?", thread_ts=root["ts"])))
        assert len(bot.slack.calls_to("conversations.replies")) == 1  # never read again


@dataclass
class Commanded:
    """`/moa what is <!channel> MoA?`, answered."""

    bot: SlackBot
    envelope: Envelope
    ack_s: float
    asked: dict[str, Any]  # the message the bot posted with the question


@pytest.fixture
async def commanded(fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[Commanded]:
    async with slack_bot(fake_llm, tmp_path) as bot:
        started = time.monotonic()
        envelope = bot.slack.push_slash_command(sp.slash_command("what is <!channel> MoA?"))
        await asyncio.wait_for(envelope, 3)
        ack_s = time.monotonic() - started
        await bot.settled()
        [asked] = [m for m in bot.slack.bot_messages(CH) if not m["thread_ts"]]
        yield Commanded(bot, envelope, ack_s, asked)


async def test_slash_command_is_acknowledged_within_a_second(commanded: Commanded) -> None:
    assert commanded.ack_s < 1.0 and commanded.envelope.ack == {"envelope_id": commanded.envelope.envelope_id}


async def test_slash_command_posts_the_question_neutralized_in_the_channel(commanded: Commanded) -> None:
    assert commanded.asked["text"] == f"<@{sp.USER_ID}> asked: what is @\u200bchannel MoA?"


async def test_slash_command_is_answered_in_the_questions_thread(commanded: Commanded) -> None:
    answer = commanded.bot.answer(CH, commanded.asked["ts"])
    assert answer == EXPECTED.format("what is @\u200bchannel MoA?")  # output neutralized too
    assert commanded.bot.slack.response_url_posts == []  # in the channel, not an ephemeral reply


async def test_slash_command_question_reaches_the_models_as_typed(commanded: Commanded, fake_llm: FakeLLM) -> None:
    assert fake_llm.requests_for("p/a")[0].messages[-1]["content"] == "what is @channel MoA?"


async def test_a_mention_in_a_slash_commands_thread_continues_its_conversation(
    commanded: Commanded, fake_llm: FakeLLM
) -> None:
    await commanded.bot.settled(commanded.bot.slack.push_event(mention("more?", thread_ts=commanded.asked["ts"])))
    assert len(fake_llm.requests_for("p/a")[-1].messages) == 3


async def test_slash_command_delivered_twice_is_answered_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        form = bot.slack.slash_command_form("just once")  # one invocation: one trigger_id
        await bot.settled(bot.slack.push_slash_command(form), bot.slack.push_slash_command(form))
        assert len([m for m in bot.slack.bot_messages(CH) if not m["thread_ts"]]) == 1
        assert bot.aggregations == 1


async def slash_refusal(bot: SlackBot, text: str, channel: str = CH) -> dict[str, Any]:
    """The one reply to `/moa text` sent in `channel`: the body posted to its response_url."""
    await bot.settled(bot.slack.push_slash_command(sp.slash_command(text, channel_id=channel)))
    [post] = bot.slack.response_url_posts
    return post["body"]  # type: ignore[no-any-return]


async def test_slash_command_where_the_bot_is_not_a_member_says_how_to_invite_it(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body = await slash_refusal(bot, "hi", sp.NOT_MEMBER_CHANNEL_ID)
        assert body["response_type"] == "ephemeral"
        assert "not a member" in body["text"] and "/invite @moa" in body["text"]
        # nothing was posted there and no model asked; the question is on record as failed
        assert bot.slack.bot_messages(sp.NOT_MEMBER_CHANNEL_ID) == [] and fake_llm.requests == []
        assert [r["status"] for r in await runs(bot)] == ["failed"]


async def test_slash_command_in_a_channel_the_bot_cannot_see_says_so(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body = await slash_refusal(bot, "hi", "C0MISSING")
        assert body["response_type"] == "ephemeral" and "can't see it" in body["text"]
        assert fake_llm.requests == [] and [r["status"] for r in await runs(bot)] == ["failed"]


async def test_an_empty_slash_command_asks_for_a_question(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body = await slash_refusal(bot, "   ")
        assert body["response_type"] == "ephemeral" and "Ask me something after the command" in body["text"]
        assert fake_llm.requests == [] and await runs(bot) == []


async def test_knowledge_channel_needs_no_mention(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, knowledge={sp.KNOWLEDGE_CHANNEL_ID}) as bot:
        kc = sp.KNOWLEDGE_CHANNEL_ID
        top = sp.event_callback(sp.message("how do I rotate keys?", channel=kc))
        await bot.settled(bot.slack.push_event(top))
        # answered unasked, and no team source matched: the answer says so
        assert bot.answer(kc, ts_of(top)) == f"{EXPECTED.format('how do I rotate keys?')}\n\n{NO_SOURCES_NOTE}"
        reply = sp.event_callback(sp.thread_reply("and for the app token?", thread_ts=ts_of(top), channel=kc))
        await bot.settled(bot.slack.push_event(reply))
        assert len(fake_llm.requests_for("p/a")[-1].messages) == 3  # continued with the thread's history
        # a mention there arrives twice (message + app_mention): answered once
        twin = sp.app_mention("with a mention", channel=kc)
        as_message = sp.message(twin["text"], channel=kc, ts=twin["ts"])
        await bot.settled(
            bot.slack.push_event(sp.event_callback(as_message)),
            bot.slack.push_event(sp.event_callback(twin), store=False),
        )
        # other channels still need a mention
        await bot.settled(bot.slack.push_event(sp.event_callback(sp.message("just chatting"))))
        assert bot.aggregations == 3


async def test_app_mention_and_message_twins_are_answered_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        twin = sp.app_mention("once please")
        as_message = sp.message(twin["text"], ts=twin["ts"])
        await bot.settled(
            bot.slack.push_event(sp.event_callback(twin)),
            bot.slack.push_event(sp.event_callback(as_message), store=False),
        )
        assert bot.aggregations == 1 and len(bot.thread(CH, twin["ts"])) == 1


async def test_retried_events_are_answered_once_even_across_restarts(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body = mention("just once")
        await bot.settled(bot.slack.push_event(body), bot.slack.push_event(body, retry_attempt=1))
        assert bot.aggregations == 1
        await bot.adapter.aclose()  # a restart: a new adapter on the same database
        again = build_adapter(bot.slack, bot.answerer, bot.observer)
        await again.start()
        try:
            await asyncio.wait_for(bot.slack.push_event(body, retry_attempt=2, retry_reason="http_error"), 3)
            await eventually(lambda: again.in_progress == 0)
        finally:
            await again.aclose()
        assert bot.aggregations == 1 and len(bot.thread(CH, ts_of(body))) == 1
        assert all(e.ack is not None for e in bot.slack.envelopes)  # every delivery was acknowledged


IGNORED_EVENTS = {
    "the bot's own message": lambda: sp.bot_message(
        f"<@{sp.BOT_USER_ID}> me", bot_id=sp.BOT_ID, user=sp.BOT_USER_ID, app_id=sp.API_APP_ID
    ),
    "another bot's mention": lambda: sp.bot_message(f"<@{sp.BOT_USER_ID}> another bot asks"),
    "a legacy bot_message": lambda: sp.bot_message("legacy", subtype="bot_message", user=None),
    "an edit that adds a mention": lambda: sp.message_changed(
        ts="1700000000.000001",
        text=f"<@{sp.BOT_USER_ID}> edited",
        previous_text="x",
        user=sp.USER_ID,
        bot_id=None,
    ),
    "a deletion": lambda: {**sp.message("gone"), "subtype": "message_deleted"},
    "a channel join": lambda: {**sp.message(f"<@{sp.BOT_USER_ID}>"), "subtype": "channel_join"},
}


@pytest.mark.parametrize("kind", IGNORED_EVENTS)
async def test_messages_that_are_no_question_are_ignored_even_in_a_knowledge_channel(
    fake_llm: FakeLLM, tmp_path: Path, kind: str
) -> None:
    async with slack_bot(fake_llm, tmp_path, knowledge={CH}) as bot:
        await bot.settled(bot.slack.push_event(sp.event_callback(IGNORED_EVENTS[kind]())))
        assert fake_llm.requests == [] and bot.slack.calls_to("chat.postMessage") == []


async def test_the_bots_own_posts_and_edits_echoed_back_start_nothing(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with (
        FakeSlack(window_s=WINDOW_S, echo_bot_events=True) as slack,
        slack_bot(fake_llm, tmp_path, slack=slack, knowledge={CH}) as bot,
    ):
        await bot.settled(slack.push_event(sp.event_callback(sp.message("a real question"))))
        await eventually(lambda: len(slack.envelopes) > 3)  # echoes of our post and edits
        await bot.settled(*slack.envelopes)
        assert bot.aggregations == 1


# ---------------------------------------------------------------------------------------------- rendering


async def test_question_text_is_cleaned_before_the_models_see_it(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        text = "compare &lt;a&gt; &amp; b for <@U0BOB> in <#C0RANDOM|random>, see <https://x.example|spec>"
        await bot.settled(bot.slack.push_event(mention(text)))
        question = fake_llm.requests_for("p/a")[0].messages[-1]["content"]
        assert question == "compare <a> & b for @bob in #random, see spec (https://x.example)"
        await bot.settled(bot.slack.push_event(mention("and <@U0BOB>?")))
        assert len(bot.slack.calls_to("users.info")) == 1  # names are cached


async def test_markdown_answer_renders_as_a_markdown_block(fake_llm: FakeLLM, tmp_path: Path) -> None:
    md = "## Steps\n\n1. **Stop** the app\n2. Read [the guide](https://example.com/a?b=1&c=2)\n\n```bash\nkill -TERM $PID && echo ok\n```"
    script_models(fake_llm, reply=md)
    async with slack_bot(fake_llm, tmp_path, script=False) as bot:
        body = mention("how?")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        assert markdown_of(reply) == md
        assert reply["text"].startswith(
            "*Steps*\n\n1. *Stop* the app\n2. Read <https://example.com/a?b=1&amp;c=2|the guide>"
        )
        assert "```\nkill -TERM $PID &amp;&amp; echo ok\n```" in reply["text"]


async def test_model_output_never_pings_anyone(fake_llm: FakeLLM, tmp_path: Path) -> None:
    pings = "Hey <!channel> <!here> <!everyone> <!subteam^S0DEVS|@devs> <@U0BOB> @here and @everyone!"
    script_models(fake_llm, reply=pings)
    async with slack_bot(fake_llm, tmp_path, script=False) as bot:
        body = mention("ping them all")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        for version in [reply, *reply["edits"]]:
            shown = json.dumps([version["text"], version["blocks"]], ensure_ascii=False)
            assert not any(token in shown for token in ("<!", "<@", "@here", "@channel", "@everyone"))
        assert "@\u200bchannel" in markdown_of(reply) and "@\u200bdevs" in markdown_of(reply)


async def test_long_answers_continue_in_further_thread_messages(fake_llm: FakeLLM, tmp_path: Path) -> None:
    code = "```python\n" + "\n".join(f"print({i})  # line {i}" for i in range(250)) + "\n```"
    long = "\n\n".join([f"Paragraph {i}: " + "lorem ipsum " * 60 for i in range(6)] + [code, "The end."])
    script_models(fake_llm, reply=long, tokens_per_s=4000)
    async with slack_bot(fake_llm, tmp_path, script=False) as bot:
        body = mention("write a lot")
        # about 3 s on an idle machine; over 10 s on a machine busy with other work
        await bot.settled(bot.slack.push_event(body), within=30)
        thread = bot.thread(CH, ts_of(body))
        assert len(thread) >= 3
        pieces = [markdown_of(m) for m in thread]
        assert all(0 < len(p) <= 3500 and p.count("```") % 2 == 0 for p in pieces)
        assert [bool(footer_of(m)) for m in thread] == [False] * (len(thread) - 1) + [True]
        joined = "\n".join(pieces)
        assert all(f"Paragraph {i}: " in joined for i in range(6)) and all(
            f"print({i})" in joined for i in range(250)
        )
        assert pieces[-1].endswith("The end.")
        assert (
            thread[0]["edits"][0]["text"] == "_Asking 2 models…_"
        )  # the first piece replaced the placeholder
        # interim edits never grew past one message
        assert all(len(markdown_of(e)) <= 3500 for m in thread for e in m["edits"])


async def test_msg_too_long_splits_smaller_and_delivers_everything(fake_llm: FakeLLM, tmp_path: Path) -> None:
    long = "\n\n".join(f"Part {i}. " + "words " * 80 for i in range(6))  # ~3,000 characters
    script_models(fake_llm, reply=long)
    async with (
        FakeSlack(window_s=WINDOW_S, max_text_chars=1200) as slack,
        slack_bot(fake_llm, tmp_path, slack=slack, script=False) as bot,
    ):
        body = mention("long please")
        await bot.settled(bot.slack.push_event(body))
        assert slack.calls_to("chat.update", ok=False)[0].error == "msg_too_long"
        thread = bot.thread(CH, ts_of(body))
        assert len(thread) >= 3 and all(f"Part {i}." in bot.answer(CH, ts_of(body)) for i in range(6))
        assert footer_of(thread[-1])
        [run] = await runs(bot)
        assert run["status"] == "done"


async def test_a_workspace_refusing_markdown_blocks_gets_mrkdwn_text() -> None:
    async with FakeSlack(window_s=WINDOW_S) as slack:
        observer = RecordingObserver()
        api = SlackApi(web_client(slack.bot_token, slack.api_url, 5.0), observer)
        outbox = Outbox(api, SlackPacing.scaled(WINDOW_S), observer)
        [answer] = answer_messages("**Bold** answer", "preset · 1.0 s")
        slack.fail("chat.postMessage", Failure.error("invalid_blocks"))
        ts = await outbox.post(CH, answer, thread_ts=None)
        assert slack.message(CH, ts)["blocks"] is None
        assert slack.message(CH, ts)["text"] == "*Bold* answer\n\n_preset · 1.0 s_"
        await outbox.update(CH, ts, answer)  # from now on, no blocks are even tried
        assert len(slack.calls_to("chat.postMessage", ok=False)) == 1 and slack.calls_to(
            "chat.update", ok=True
        )
        assert slack.message(CH, ts)["blocks"] is None and not outbox.blocks_ok


# ---------------------------------------------------------------------------------------------- errors


async def test_every_model_failing_edits_the_placeholder_into_a_clear_message(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.fail(model, *[Failure.http(401, message="bad key")] * 5)
    async with slack_bot(fake_llm, tmp_path, script=False) as bot:
        body = mention("anyone?")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        assert (
            reply["text"].startswith(":warning:") and "API key" in reply["text"] and reply["blocks"] is None
        )
        [run] = await runs(bot)
        assert run["status"] == "failed" and "API key" in str(run["error"])


LIMITS = {"MOA_MAX_QUESTION_CHARS": "40", "MOA_ALLOWED_CHANNELS": f"{CH},{sp.DM_CHANNEL_ID}", "MOA_USER_RATE": "2/hour"}


async def test_an_over_long_question_gets_one_reply_saying_the_limit(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, env=LIMITS) as bot:
        long = mention("x" * 41)
        await bot.settled(bot.slack.push_event(long))
        [too_long] = bot.thread(CH, ts_of(long))
        assert "41 characters long; the limit is 40" in too_long["text"]
        assert bot.aggregations == 0


async def test_a_question_in_a_channel_not_allowed_gets_one_reply_saying_so(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, env=LIMITS) as bot:
        elsewhere = mention("hi", channel=sp.OTHER_CHANNEL_ID)
        await bot.settled(bot.slack.push_event(elsewhere))
        [not_here] = bot.thread(sp.OTHER_CHANNEL_ID, ts_of(elsewhere))
        assert "not enabled in this channel" in not_here["text"]
        assert bot.aggregations == 0


@pytest.fixture
async def over_the_rate(fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[SlackBot]:
    """A user who asked the two questions MOA_USER_RATE=2/hour allows."""
    async with slack_bot(fake_llm, tmp_path, env=LIMITS) as bot:
        for i in range(2):
            await bot.settled(bot.slack.push_event(mention(f"q{i}")))
        yield bot


async def test_a_mention_over_the_user_rate_gets_one_reply_saying_when_to_ask_again(
    over_the_rate: SlackBot,
) -> None:
    bot = over_the_rate
    over = mention("one more")
    await bot.settled(bot.slack.push_event(over))
    [limited] = bot.thread(CH, ts_of(over))
    assert "limit of 2 questions per 60 minutes" in limited["text"] and "ask again in" in limited["text"]
    assert bot.aggregations == 2


async def test_a_refused_slash_command_is_ephemeral_and_posts_nothing(over_the_rate: SlackBot) -> None:
    bot = over_the_rate
    posts = len(bot.slack.calls_to("chat.postMessage"))
    await bot.settled(bot.slack.push_slash_command(sp.slash_command("and via the command?")))
    assert "limit of 2 questions" in bot.slack.response_url_posts[-1]["body"]["text"]
    # not even for a moment: nothing posted, so nothing deleted
    assert len(bot.slack.calls_to("chat.postMessage")) == posts and not bot.slack.calls_to("chat.delete")
    assert bot.aggregations == 2


async def test_429s_are_honoured_and_the_final_text_is_never_lost(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        bot.slack.fail("chat.postMessage", Failure.rate_limit(retry_after=1))
        bot.slack.fail("chat.update", Failure.rate_limit(retry_after=1), times=3)
        body = mention("through the storm")
        await bot.settled(bot.slack.push_event(body))
        assert bot.answer(CH, ts_of(body)) == EXPECTED.format("through the storm")
        assert bot.slack.rate_limited == {"chat.postMessage": 1, "chat.update": 3}
        assert bot.observer.calls[("chat.update", "ratelimited")] == 3
        assert bot.observer.calls[("chat.postMessage", "ratelimited")] == 1


async def test_slack_server_errors_on_the_final_edit_are_retried(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        bot.slack.set_latency("chat.postMessage", 0.3)  # the answer is ready before the placeholder exists
        bot.slack.fail("chat.update", Failure.error("internal_error", status=500), times=2)
        body = mention("flaky slack")
        await bot.settled(bot.slack.push_event(body))
        assert bot.answer(CH, ts_of(body)) == EXPECTED.format("flaky slack")


async def test_twenty_answers_streaming_at_once_stay_inside_the_limits(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    def reply(body: dict[str, object]) -> str:
        question = body["messages"][-1]["content"]  # type: ignore[index]
        return f"Answer to {question}: " + " ".join(f"w{i}" for i in range(60))

    script_models(fake_llm, reply=reply, tokens_per_s=40)
    async with slack_bot(fake_llm, tmp_path, env={"MOA_MAX_CONCURRENT": "20"}, script=False) as bot:
        channels = [CH, sp.OTHER_CHANNEL_ID, sp.KNOWLEDGE_CHANNEL_ID, sp.PRIVATE_CHANNEL_ID]
        bodies = [mention(f"q{i}", channel=channels[i % 4]) for i in range(20)]
        await bot.settled(*[bot.slack.push_event(b) for b in bodies], within=30)
        for i, body in enumerate(bodies):
            assert bot.answer(channels[i % 4], ts_of(body)) == reply({"messages": [{"content": f"q{i}"}]})
        updates = [c for c in bot.slack.calls if c.method == "chat.update"]
        assert all(c.status == 200 for c in updates), (
            bot.slack.rate_limited
        )  # no 429 at all, so none unhandled
        times = sorted(c.time for c in updates)
        busiest = max(sum(1 for t in times if start <= t < start + WINDOW_S) for start in times)
        assert busiest <= 50 and len(updates) > 40  # streamed, and inside Tier 3 in every window
        assert all(r["status"] == "done" for r in await runs(bot))


# ---------------------------------------------------------------------------------------------- HTTP mode


async def test_http_mode_answers_the_url_verification_challenge(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        status, text = await bot.slack.deliver_http(bot.events_url, sp.url_verification("c-123"), SIGNING_SECRET)
        assert status == 200 and json.loads(text) == {"challenge": "c-123"}
        assert bot.adapter.connected


async def test_http_mode_refuses_a_wrong_signature_or_a_stale_one_and_starts_nothing(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        url, slack, body = bot.events_url, bot.slack, mention("over http")
        assert (await slack.deliver_http(url, body, "wrong-secret"))[0] == 401
        stale = int(time.time()) - 400
        assert (await slack.deliver_http(url, body, SIGNING_SECRET, timestamp=stale))[0] == 401
        assert bot.aggregations == 0 and bot.adapter.in_progress == 0


async def test_http_mode_acknowledges_an_event_at_once_and_answers_a_retry_of_it_once(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        url, slack, body = bot.events_url, bot.slack, mention("over http")
        started = time.monotonic()
        assert (await slack.deliver_http(url, body, SIGNING_SECRET))[0] == 200
        assert time.monotonic() - started < 1.0  # acknowledged long before the answer
        assert (
            await slack.deliver_http(url, body, SIGNING_SECRET, retry_num=1, retry_reason="http_timeout")
        )[0] == 200
        await bot.settled()
        assert bot.answer(CH, ts_of(body)) == EXPECTED.format("over http") and bot.aggregations == 1


async def test_http_mode_acknowledges_a_slash_command_with_an_empty_200_and_answers_it(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        slack = bot.slack
        status, text = await slack.deliver_http(bot.events_url, slack.slash_command_form("by command"), SIGNING_SECRET)
        assert (status, text) == (200, "")
        await bot.settled()
        [asked] = [m for m in slack.bot_messages(CH) if not m["thread_ts"] and "asked" in m["text"]]
        assert bot.answer(CH, asked["ts"]) == EXPECTED.format("by command")


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST exactly these bytes and headers, as anyone who can reach the endpoint could."""
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def slack_log(caplog: pytest.LogCaptureFixture, containing: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "adapters.slack" and containing in r.getMessage()]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_http_mode_refuses_unsigned_requests_before_reading_them(
    fake_llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        junk = b"\xff{not a slack request"
        signed = sign_request(junk, SIGNING_SECRET)
        cases = {
            "no headers": {},
            "signed with another secret": sign_request(junk, "wrong-secret"),
            "no signature": {"X-Slack-Request-Timestamp": signed["X-Slack-Request-Timestamp"]},
            "no timestamp": {"X-Slack-Signature": signed["X-Slack-Signature"]},
            "non-numeric timestamp": {**signed, "X-Slack-Request-Timestamp": "soon"},
            # a minute past Slack's five, so that a second ticking over never lands the request inside them
            "stale timestamp": sign_request(junk, SIGNING_SECRET, int(time.time()) - 360),
            "future timestamp": sign_request(junk, SIGNING_SECRET, int(time.time()) + 360),
            "altered body": signed,
        }
        for case, headers in cases.items():
            body = junk + b"!" if case == "altered body" else junk
            status, _ = await post(bot.events_url, body, headers)
            assert status == 401, case
        # the body would have been a 400 had it been signed; the same junk signed shows that
        assert (await post(bot.events_url, junk, signed))[0] == 400
        assert no_tracebacks(caplog) and bot.adapter.in_progress == 0 and fake_llm.requests == []


async def test_http_mode_refuses_signed_malformed_bodies_with_400(
    fake_llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bodies: list[tuple[bytes, str]] = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b'{"no": "type"}', "application/json"),
        (b'{"type": "event_callback"}', "application/json"),
        (b'{"type": "event_callback", "event": "app_mention"}', "application/json"),
        (b'{"type": "event_callback", "event": {"type": "message"}, "team": 5}', "application/json"),
        (b"[" * 100_000, "application/json"),
        (b'{"type": "url_verification", "challenge": "\xc3\x28"}', "application/json"),
        (b"garbage", "application/x-www-form-urlencoded"),
        (b"text=hi&user_id=U1", "application/x-www-form-urlencoded"),
        (b"payload=%7Bnot", "application/x-www-form-urlencoded"),
        (b"payload=%5B%5D", "application/x-www-form-urlencoded"),
        (b"command=%2Fmoa&text=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"hello", "text/plain"),
    ]
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        for body, content_type in bodies:
            headers = sign_request(body, SIGNING_SECRET, content_type=content_type)
            status, text = await post(bot.events_url, body, headers)
            assert status == 400 and text.startswith("refused: "), body[:60]
        assert no_tracebacks(caplog) and bot.adapter.in_progress == 0 and fake_llm.requests == []
        assert len(slack_log(caplog, "malformed")) == 1  # the rest are counted for the minute's summary


async def test_a_burst_of_unsigned_requests_is_logged_once_with_counts(
    fake_llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        stale = sign_request(b"{}", SIGNING_SECRET, int(time.time()) - 600)
        async with aiohttp.ClientSession() as session:

            async def attack(i: int) -> int:
                headers = stale if i % 10 == 0 else sign_request(b"{}", "guessed-secret")
                async with session.post(bot.events_url, data=b"{}", headers=headers) as response:
                    return response.status

            for start in range(0, 500, 50):
                assert set(await asyncio.gather(*(attack(i) for i in range(start, start + 50)))) == {401}
        [first] = slack_log(caplog, "unsigned")
        assert first.startswith("refused an unsigned request to /slack/events (")
        await bot.adapter.aclose()  # what was counted since is summed up, not lost
        [_, summary] = slack_log(caplog, "unsigned")
        assert summary.startswith("refused 499 unsigned requests to /slack/events in the last ")
        assert summary.endswith("(bad signature: 450, stale timestamp: 49)") or summary.endswith(
            "(bad signature: 449, stale timestamp: 50)"
        )
        assert no_tracebacks(caplog)


async def test_replayed_signed_slash_command_is_answered_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        form = bot.slack.slash_command_form("only once")
        sent_at = int(time.time())
        for _ in range(3):  # the very same signed request: within the 5-minute window its signature holds
            status, _ = await bot.slack.deliver_http(bot.events_url, form, SIGNING_SECRET, timestamp=sent_at)
            assert status == 200
        await bot.settled()
        asked = [m for m in bot.slack.bot_messages(CH) if not m["thread_ts"]]
        assert len(asked) == 1 and bot.aggregations == 1
        assert bot.answer(CH, asked[0]["ts"]) == EXPECTED.format("only once")


async def test_http_mode_slash_command_mentioning_payload_is_answered(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        form = bot.slack.slash_command_form("what is a payload?")
        assert (await bot.slack.deliver_http(bot.events_url, form, SIGNING_SECRET))[0] == 200
        await bot.settled()
        [asked] = [m for m in bot.slack.bot_messages(CH) if not m["thread_ts"]]
        assert bot.answer(CH, asked["ts"]) == EXPECTED.format("what is a payload?")


async def test_http_mode_refuses_events_while_not_running(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        await bot.adapter.aclose()
        assert not bot.adapter.connected
        status, _ = await bot.slack.deliver_http(bot.events_url, mention("too early"), SIGNING_SECRET)
        assert status == 503  # Slack delivers it again later
        await bot.adapter.start()  # the supervisor's restart: the same routes work again
        assert (await bot.slack.deliver_http(bot.events_url, mention("now"), SIGNING_SECRET))[0] == 200
        await bot.settled()
        assert bot.aggregations == 1


# ---------------------------------------------------------------------------------------------- lifecycle


async def test_socket_mode_reconnects_and_reports_its_state(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        assert bot.adapter.connected and bot.adapter.socket_mode
        await bot.slack.send_disconnect("refresh_requested")
        await bot.slack.wait_connected(total=2)
        await bot.settled(bot.slack.push_event(mention("still there?")))
        assert bot.aggregations == 1
        await bot.adapter.aclose()
        assert not bot.adapter.connected
        await bot.slack.wait_disconnected()


async def test_reopen_edits_the_stored_placeholder(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        fake_llm.script("p/a", latency=30)  # the run is still in flight when the "crash" happens
        body = mention("slow one")
        await asyncio.wait_for(bot.slack.push_event(body), 3)
        await eventually(lambda: bool(bot.thread(CH, ts_of(body))))
        [run] = await bot.store.unfinished_runs()
        await eventually(lambda: bool(fake_llm.requests_for("p/a")))
        await bot.adapter.aclose()  # cancels the answer: it says so in its placeholder
        [reply] = bot.thread(CH, ts_of(body))
        assert "interrupted" in reply["text"]
        assert await bot.adapter.reopen({"platform": "discord", "channel": "1"}) is None
        assert await bot.adapter.reopen({"platform": "slack"}) is None
        placeholder = (await bot.store.get_run(run.id))["placeholder"]  # type: ignore[index]
        sink = await bot.adapter.reopen(placeholder)
        assert sink is not None
        record = RunRecord(
            run.id, run.key, run.user, run.question, run.preset, run.status, placeholder, run.created_at
        )
        await bot.answerer.interrupt(record, sink)
        assert (
            bot.slack.message(CH, reply["ts"])["text"] == ":warning: " + "The answer was interrupted "
            "(the bot restarted). Please ask again."
        )
        await sink.show(ReplyView(Phase.DONE, "Done", "recovered **answer**", "f"))
        assert markdown_of(bot.slack.message(CH, reply["ts"])) == "recovered **answer**"


async def test_bad_credentials_fail_at_start_and_in_check(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        ok, detail = await check_auth(bot.slack.bot_token, bot.slack.api_url)
        assert ok and "auth.test ok" in detail and sp.TEAM_ID in detail
        common = dict(
            signing_secret=None,
            api_url=bot.slack.api_url,
            knowledge_channels=(),
            answerer=bot.answerer,
        )
        wrong_bot = SlackAdapter(bot_token="xoxb-wrong", app_token=bot.slack.app_token, **common)  # type: ignore[arg-type]
        with pytest.raises(SlackCallError, match="invalid_auth"):
            await wrong_bot.start()
        assert not wrong_bot.connected
        assert (await check_auth("xoxb-wrong", bot.slack.api_url))[1].startswith("auth.test failed (invalid_auth)")
        wrong_app = SlackAdapter(bot_token=bot.slack.bot_token, app_token="xapp-wrong", **common)  # type: ignore[arg-type]
        with pytest.raises(SlackCallError, match="invalid_auth"):
            await wrong_app.start()
        assert not wrong_app.connected and len(bot.slack.live_connections) == 1


async def test_doctor_checks_slack_auth(tmp_path: Path) -> None:
    async with FakeSlack() as slack:
        good = Settings(
            slack_bot_token=slack.bot_token, slack_app_token=slack.app_token, slack_api_url=slack.api_url
        )
        [(ok, what, detail)] = await check_platforms(good, 5.0)
        assert ok and what == "slack" and "auth.test ok" in detail and "Socket Mode" in detail
        bad = Settings(slack_bot_token="xoxb-nope", slack_signing_secret="s", slack_api_url=slack.api_url)
        [(ok, what, detail)] = await check_platforms(bad, 5.0)
        assert not ok and "invalid_auth" in detail and "SLACK_BOT_TOKEN" in detail


def _key(channel: str, thread_ts: str):  # type: ignore[no-untyped-def]
    from moa.conversation import ConversationKey

    return ConversationKey("slack", sp.TEAM_ID, channel, thread_ts)


async def test_a_question_can_name_its_preset(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("solo/model")
    solo = {"proposers": ["solo/model"], "aggregator": "agg/x", "layers": 2}
    async with slack_bot(fake_llm, tmp_path, presets={"solo": solo}) as bot:
        named = mention("preset:solo what is WAL?")
        unknown = mention("preset:nope what is WAL?")
        await bot.settled(bot.slack.push_event(named), bot.slack.push_event(unknown))
        [reply] = bot.thread(CH, ts_of(named))
        assert markdown_of(reply) == EXPECTED.format("what is WAL?")
        assert footer_of(reply).startswith("solo · model → x")
        assert fake_llm.requests_for("solo/model")[0].messages[-1]["content"] == "what is WAL?"
        [refusal] = bot.thread(CH, ts_of(unknown))
        assert "I don't know the preset 'nope'" in json.dumps(refusal)


async def test_forget_by_someone_not_allowed_deletes_nothing(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, env={"MOA_ALLOWED_USERS": sp.USER_ID}) as bot:
        first = mention("what is WAL?")
        await bot.settled(bot.slack.push_event(first))
        outsider = mention("forget", thread_ts=ts_of(first), user=sp.OTHER_USER_ID)
        await bot.settled(bot.slack.push_event(outsider))
        assert "not on the list" in bot.thread(CH, ts_of(first))[-1]["text"]
        assert await bot.store.has_history(_key(CH, ts_of(first)))


async def test_a_mention_of_only_invisible_characters_asks_nothing(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        empty = mention("\u200b\u200b \u2060")
        await bot.settled(bot.slack.push_event(empty))
        [reply] = bot.thread(CH, ts_of(empty))
        assert "didn't find a question" in reply["text"] and fake_llm.requests == []


async def test_a_rate_limited_read_is_waited_out_by_slack_sdk_and_counted(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        bot.slack.fail("users.info", Failure.rate_limit(retry_after=1))
        await bot.settled(bot.slack.push_event(mention("ask <@U0BOB> about it")))
        question = fake_llm.requests_for("p/a")[0].messages[-1]["content"]
        assert question == "ask @bob about it"  # the name was still looked up, after the 429's second
        assert [c.status for c in bot.slack.calls_to("users.info")] == [429, 200]
        assert bot.observer.calls[("users.info", "ratelimited")] == 1
