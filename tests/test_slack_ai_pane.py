"""Slack's assistant pane and per-channel settings, end to end: the real slack-bolt app against the fake Slack, the
real core against the fake LLM."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from moa.conversation import Question, ReplySink
from tests.fakes import slack_payloads as sp
from tests.fakes.llm import FakeLLM
from tests.slack_harness import SlackBot, footer_of, markdown_of, mention, slack_bot

CH = sp.CHANNEL_ID
Json = dict[str, Any]


def asked_questions(bot: SlackBot) -> list[Question]:
    """Every question the adapter hands to the core, as it hands it."""
    questions: list[Question] = []
    answer = bot.answerer.answer

    async def recording(question: Question, sink: ReplySink) -> str | None:
        questions.append(question)
        return await answer(question, sink)

    bot.answerer.answer = recording  # type: ignore[method-assign]
    return questions


async def open_pane(bot: SlackBot, context_channel: str | None = CH) -> tuple[str, str]:
    """The user opens the assistant pane; returns its thread (channel, ts) once the bot has greeted it."""
    started = bot.slack.start_assistant_thread(context_channel=context_channel)
    thread = started["event"]["assistant_thread"]
    await bot.settled(bot.slack.push_event(started))
    return thread["channel_id"], thread["thread_ts"]


async def test_a_new_assistant_thread_gets_a_greeting_and_four_prompts(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        channel, ts = await open_pane(bot)
        [greeting] = bot.thread(channel, ts)
        assert greeting["text"].startswith("Hi! I'm moa.")
        prompts = bot.slack.suggested_prompts[(channel, ts)]
        assert prompts["title"] == "Try asking" and len(prompts["prompts"]) == 4
        assert prompts["prompts"][0]["title"] == "What is a Mixture of Agents?"


async def test_a_channels_suggested_prompts_replace_the_defaults_in_its_pane(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    own = ("Who owns billing?", "How do we rotate the staging certificates?")
    channels = {CH: {"suggested_prompts": list(own)}}
    async with slack_bot(fake_llm, tmp_path, streaming=True, channels=channels) as bot:
        looking_at_ch = await open_pane(bot, context_channel=CH)
        elsewhere = await open_pane(bot, context_channel=sp.OTHER_CHANNEL_ID)
        assert [p["message"] for p in bot.slack.suggested_prompts[looking_at_ch]["prompts"]] == list(own)
        assert len(bot.slack.suggested_prompts[elsewhere]["prompts"]) == 4


async def test_a_question_in_the_pane_is_streamed_titled_and_keeps_the_channel_in_view(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        questions = asked_questions(bot)
        channel, ts = await open_pane(bot, context_channel=CH)
        changed = bot.slack.change_assistant_context(channel, ts, context_channel=sp.OTHER_CHANNEL_ID)
        await bot.settled(bot.slack.push_event(changed))
        first = sp.event_callback(sp.dm_message("What is   MoA,\nreally?", thread_ts=ts))
        await bot.settled(bot.slack.push_event(first))
        await bot.settled(bot.slack.push_event(sp.event_callback(sp.dm_message("And WAL?", thread_ts=ts))))
        assert bot.slack.titles[(channel, ts)] == "What is MoA, really?"  # from the first question only
        assert len(bot.slack.calls_to("assistant.threads.setTitle")) == 1
        assert [q.context_channel for q in questions] == [sp.OTHER_CHANNEL_ID] * 2
        answers = [m for m in bot.thread(channel, ts) if m.get("markdown_text")]
        assert [bot.slack.stream(m["ts"]).markdown for m in answers] == [
            "[agg/x] answer to: What is   MoA,\nreally?",
            "[agg/x] answer to: And WAL?",
        ]
        assert bot.slack.calls_to("conversations.replies") == []  # the pane's thread is the bot's own


async def test_an_ordinary_direct_message_thread_is_not_titled(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        questions = asked_questions(bot)
        await bot.settled(bot.slack.push_event(sp.event_callback(sp.dm_message("hello"))))
        assert bot.slack.calls_to("assistant.threads.setTitle") == [] and questions[0].context_channel == ""


async def test_a_channels_preset_and_system_prompt_answer_there_only(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    presets = {"solo": {"proposers": ["solo/model"], "aggregator": "agg/x"}}
    channels = {CH: {"preset": "solo", "system_prompt": "Answer in French; readers are on call."}}
    fake_llm.script("solo/model")
    async with slack_bot(fake_llm, tmp_path, streaming=True, presets=presets, channels=channels) as bot:
        here, there = mention("bonjour?"), mention("hello?", channel=sp.OTHER_CHANNEL_ID)
        await bot.settled(bot.slack.push_event(here), bot.slack.push_event(there))
        [reply_here] = bot.thread(CH, here["event"]["ts"])
        [reply_there] = bot.thread(sp.OTHER_CHANNEL_ID, there["event"]["ts"])
        assert footer_of({"blocks": bot.slack.stream(reply_here["ts"]).final_blocks}).startswith(
            "solo · model → x"
        )
        assert footer_of({"blocks": bot.slack.stream(reply_there["ts"]).final_blocks}).startswith(
            "test · a, b → x"
        )
        [solo] = fake_llm.requests_for("solo/model")
        assert solo.messages[0]["role"] == "system"
        assert solo.messages[0]["content"].endswith("\n\nAnswer in French; readers are on call.")
        assert "Answer in French" not in json.dumps([r.body for r in fake_llm.requests_for("p/a")])
        assert markdown_of(reply_here) == "[agg/x] answer to: bonjour?"


async def test_malformed_pane_events_are_acknowledged_and_dropped(
    fake_llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        for thread in ({"channel_id": 5}, "no", {"channel_id": sp.DM_CHANNEL_ID, "thread_ts": ""}):
            broken = sp.event_callback({"type": "assistant_thread_started", "assistant_thread": thread})
            await bot.settled(bot.slack.push_event(broken, store=False))
        assert bot.slack.suggested_prompts == {} and bot.slack.calls_to("chat.postMessage") == []
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
