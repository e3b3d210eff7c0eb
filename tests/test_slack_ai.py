"""Slack's AI-app experience end to end: native streaming with a task card per model and its fallbacks, the thread
status, and the buttons on answers (Stop, 👍/👎, Show drafts), through the real slack-bolt app and slack_sdk clients
against the fake Slack, the real core against the fake LLM, a real Store under tmp_path. (The assistant pane and
per-channel settings: `test_slack_ai_pane.py`.)
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.formatting import DRAFTS_ACTION, FEEDBACK_ACTION, STOP_ACTION
from adapters.slack.outbox import SlackPacing
from moa.conversation import Phase, ReplyView
from tests.fakes import slack_payloads as sp
from tests.fakes.llm import FakeLLM, Failure
from tests.fakes.slack import FakeSlack
from tests.slack_harness import (
    SIGNING_SECRET,
    WINDOW_S,
    SlackBot,
    eventually,
    footer_of,
    markdown_of,
    mention,
    script_models,
    slack_bot,
)

CH = sp.CHANNEL_ID
EXPECTED = "[agg/x] answer to: {}"
Json = dict[str, Any]


def ts_of(body: Json) -> str:
    return str(body["event"]["ts"])


def words(n: int) -> str:
    return " ".join(f"word{i:03d}" for i in range(n))


async def run_of(bot: SlackBot) -> Json:
    """The one run of the test, as `moa-bot ask --json` shows it (once it is recorded as finished)."""
    async with bot.store.db.execute("SELECT id FROM runs") as cursor:
        [(run_id,)] = list(await cursor.fetchall())
    await eventually(lambda: True)
    for _ in range(200):
        record = await bot.store.get_run(run_id)
        assert record is not None
        if record["status"] not in ("pending", "running"):
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} still {record['status']}")


async def click(bot: SlackBot, channel: str, ts: str, action: str, **kwargs: Any) -> None:
    """Someone clicks a button of a message (Socket Mode), and the bot has done what the click asks."""
    await bot.settled(bot.slack.push_interactive(bot.slack.block_action(channel, ts, action, **kwargs)))


def markdown_chunks(bot: SlackBot, ts: str) -> list[str]:
    return [c["text"] for c in bot.slack.stream(ts).chunks if c["type"] == "markdown_text"]


def block(message: Json, kind: str) -> Json:
    [found] = [b for b in message.get("blocks") or [] if b["type"] == kind]
    return found


# ---------------------------------------------------------------------------------------------- streaming


async def test_an_answer_streams_in_one_message_with_a_card_per_model(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    answer = words(40)
    script_models(fake_llm, reply=answer, tokens_per_s=40)
    fake_llm.script("p/a", latency=0.3)
    async with slack_bot(fake_llm, tmp_path, streaming=True, script=False) as bot:
        body = mention("what is MoA?")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        stream = bot.slack.stream(reply["ts"])
        assert (stream.state, stream.task_display_mode) == ("stopped", "plan")
        assert (stream.recipient_user_id, stream.recipient_team_id) == (sp.USER_ID, sp.TEAM_ID)
        assert stream.markdown == answer and markdown_of(reply) == answer
        assert len(markdown_chunks(bot, reply["ts"])) >= 2  # streamed as it was written
        titles = [c["title"] for c in stream.chunks if c["type"] == "task_update"]
        assert "a: drafting" in titles  # the cards moved while the drafts were written
        cards = list(stream.tasks.values())
        assert [c["status"] for c in cards] == ["complete"] * 3
        assert [c["title"].split(":")[0] for c in cards] == ["a", "b", "x"]
        assert all(re.fullmatch(r"\w: done in \d+\.\d s, \d+ tokens", c["title"]) for c in cards), cards
        run = await run_of(bot)
        assert run["status"] == "done" and run["placeholder"]["ts"] == reply["ts"]  # type: ignore[index]
        footer, feedback, drafts = stream.final_blocks or []
        assert footer_of({"blocks": [footer]}).startswith("test · a, b → x · ")
        buttons = feedback["elements"][0]
        assert (buttons["positive_button"]["value"], buttons["negative_button"]["value"]) == (
            f"up:{run['id']}",
            f"down:{run['id']}",
        )
        assert drafts["elements"][0]["value"] == run["id"]
        assert [c.method for c in bot.slack.calls if c.method in ("chat.postMessage", "chat.update")] == []


async def test_streamed_text_and_cards_never_ping_anyone(fake_llm: FakeLLM, tmp_path: Path) -> None:
    pings = "Hey <!channel> <!here> <!everyone> <!subteam^S0DEVS|@devs> <@U0BOB> @here and @everyone! done"
    script_models(fake_llm, reply=pings, tokens_per_s=30)
    fake_llm.script("p/<!here>", latency=0.1)
    async with slack_bot(fake_llm, tmp_path, streaming=True, script=False) as bot:
        bot.answerer.catalog.presets["test"] = bot.answerer.catalog.presets["test"].__class__(
            **{**bot.answerer.catalog.get("test").__dict__, "proposers": ("p/a", "p/<!here>")}
        )
        body = mention("ping them all")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        stream = bot.slack.stream(reply["ts"])
        shown = json.dumps([stream.chunks, stream.final_blocks], ensure_ascii=False)
        assert not any(token in shown for token in ("<!", "<@", "@here", "@channel", "@everyone"))
        assert "@\u200bchannel" in stream.markdown and "@\u200bdevs" in stream.markdown
        assert any(c["title"].startswith("@\u200bhere: done in") for c in stream.tasks.values())


async def test_a_stream_that_expires_mid_answer_continues_by_edits_with_nothing_lost_or_repeated(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    answer = words(90)
    script_models(fake_llm, reply=answer, tokens_per_s=30)  # three seconds of writing
    async with (
        FakeSlack(window_s=WINDOW_S, stream_ttl_s=1.5) as slack,
        slack_bot(fake_llm, tmp_path, slack=slack, streaming=True, script=False) as bot,
    ):
        body = mention("a slow one")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))  # the streamed message, edited on: no second message
        stream = slack.stream(reply["ts"])
        assert stream.state == "expired" and stream.markdown and answer.startswith(stream.markdown)
        assert len(stream.markdown) < len(answer)  # it expired part-way through
        assert markdown_of(reply) == answer  # the whole answer, once
        assert footer_of(reply).startswith("test · ")
        assert slack.calls_to("chat.appendStream", ok=False)[0].error == "message_not_in_streaming_state"
        assert [c.params["ts"] for c in slack.calls_to("chat.update", ok=True)] == [reply["ts"]] * len(
            slack.calls_to("chat.update", ok=True)
        )
        assert (await run_of(bot))["status"] == "done"


async def test_a_synthesis_rewritten_mid_stream_is_replaced_by_edits(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    attempts = iter(["First attempt " + words(30), "Second attempt " + words(30)])
    script_models(fake_llm, reply=lambda body: next(attempts), tokens_per_s=20)
    fake_llm.fail("agg/x", Failure.cut(after_tokens=6))  # its stream breaks; it is asked again from the start
    async with slack_bot(fake_llm, tmp_path, streaming=True, script=False) as bot:
        body = mention("retry me")
        await bot.settled(bot.slack.push_event(body))
        [reply] = bot.thread(CH, ts_of(body))
        stream = bot.slack.stream(reply["ts"])
        assert stream.markdown.startswith("First attempt") and stream.state == "stopped"
        assert markdown_of(reply) == "Second attempt " + words(30)  # the rewritten text, alone
        updates = bot.slack.calls_to("chat.update", ok=True)
        assert len(updates) >= 2 and markdown_of(updates[0].params).startswith("Second")  # edited as written
        assert "First attempt" not in json.dumps([u.params for u in updates])


async def test_a_workspace_that_refuses_streaming_is_answered_by_edits_and_not_asked_again(
    fake_llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        bot.slack.fail("chat.startStream", Failure.error("method_not_supported"))
        bodies = [mention("first"), mention("second", channel=sp.OTHER_CHANNEL_ID)]
        for body in bodies:
            await bot.settled(bot.slack.push_event(body))
        for body, channel in zip(bodies, (CH, sp.OTHER_CHANNEL_ID), strict=True):
            [reply] = bot.thread(channel, ts_of(body))
            assert markdown_of(reply) == EXPECTED.format(body["event"]["text"].split("> ")[-1])
            assert reply["edits"][0]["text"] == "_Asking 2 models…_"  # a placeholder, edited
        assert len(bot.slack.calls_to("chat.startStream")) == 1
        assert any("native streaming refused in workspace" in r.getMessage() for r in caplog.records)


async def test_a_channel_that_refuses_streaming_does_not_stop_it_elsewhere(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        bot.slack.refuse_streaming(CH)
        for body in (mention("here"), mention("here again"), mention("there", channel=sp.OTHER_CHANNEL_ID)):
            await bot.settled(bot.slack.push_event(body))
        starts = bot.slack.calls_to("chat.startStream")
        assert [(c.params["channel"], c.status, c.error) for c in starts] == [
            (CH, 200, "channel_type_not_supported"),
            (sp.OTHER_CHANNEL_ID, 200, None),
        ]
        assert len(bot.slack.streams) == 1 and len(bot.slack.calls_to("chat.postMessage")) == 2


async def test_answers_beyond_the_workspaces_stream_starts_are_edited_instead(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    pacing = SlackPacing.scaled(WINDOW_S, tier2_per_window=1, tier2_burst=1)
    async with slack_bot(fake_llm, tmp_path, streaming=True, pacing=pacing) as bot:
        channels = [CH, sp.OTHER_CHANNEL_ID, sp.KNOWLEDGE_CHANNEL_ID]
        bodies = [mention(f"q{i}", channel=c) for i, c in enumerate(channels)]
        await bot.settled(*[bot.slack.push_event(b) for b in bodies])
        for body, channel in zip(bodies, channels, strict=True):
            assert bot.answer(channel, ts_of(body)) == EXPECTED.format(body["event"]["text"].split("> ")[-1])
        assert len(bot.slack.streams) == 1 and bot.slack.rate_limited == {}


async def test_an_answer_longer_than_one_streamed_message_continues_below_it(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    code = "```python\n" + "\n".join(f"print({i})  # line {i}" for i in range(60)) + "\n```"
    long = "\n\n".join([f"Paragraph {i}: " + "lorem ipsum " * 30 for i in range(4)] + [code, "The end."])
    script_models(fake_llm, reply=long, tokens_per_s=400)
    async with (
        FakeSlack(window_s=WINDOW_S, stream_max_total_chars=1_500) as slack,
        slack_bot(fake_llm, tmp_path, slack=slack, streaming=True, stream_chars=1_500, script=False) as bot,
    ):
        body = mention("write a lot")
        await bot.settled(bot.slack.push_event(body))
        first, *rest = bot.thread(CH, ts_of(body))
        stream = slack.stream(first["ts"])
        assert stream.state == "stopped" and len(stream.markdown) <= 1_500 and rest
        pieces = [stream.markdown] + [markdown_of(m) for m in rest]
        assert all(p.count("```") % 2 == 0 for p in pieces)  # a code block split is closed and reopened
        joined = "\n".join(pieces)
        for part in [f"Paragraph {i}: " for i in range(4)] + [f"print({i})  #" for i in range(60)]:
            assert joined.count(part) == 1, part  # everything, once
        assert pieces[-1].endswith("The end.") and footer_of(rest[-1]).startswith("test · ")
        assert block(rest[-1], "context_actions") and not stream.final_blocks  # the buttons go on the last
        assert not slack.calls_to("chat.appendStream", ok=False) and not slack.calls_to(
            "chat.stopStream", ok=False
        )


async def test_a_slash_command_streams_under_the_asked_message(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        await bot.settled(bot.slack.push_slash_command(sp.slash_command("via the command")))
        [asked] = [m for m in bot.slack.bot_messages(CH) if not m["thread_ts"]]
        [reply] = bot.thread(CH, asked["ts"])
        assert bot.slack.stream(reply["ts"]).markdown == EXPECTED.format("via the command")


async def test_a_stream_left_open_by_a_crash_is_ended_and_edited_on_recovery(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        question = bot.slack.add_message(CH, "what survives a crash?")
        client = AsyncWebClient(
            token=bot.slack.bot_token, base_url=bot.slack.api_url
        )  # the process that died
        started = await client.chat_startStream(
            channel=CH,
            thread_ts=question["ts"],
            markdown_text="half an",
            recipient_user_id=sp.USER_ID,
            recipient_team_id=sp.TEAM_ID,
        )
        where = {"platform": "slack", "team": sp.TEAM_ID, "channel": CH, "ts": started["ts"], "stream": "1"}
        sink = await bot.adapter.reopen({**where, "thread_ts": question["ts"]})
        assert sink is not None and bot.slack.stream(started["ts"]).state == "stopped"
        await sink.show(ReplyView(Phase.DONE, "Done", "half an answer, whole", "test · 1.0 s", run_id="r1"))
        assert markdown_of(bot.slack.message(CH, started["ts"])) == "half an answer, whole"


# ---------------------------------------------------------------------------------------------- thread status


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "edited"])
async def test_the_thread_status_shows_while_drafting_and_clears_when_the_answer_starts(
    fake_llm: FakeLLM, tmp_path: Path, streaming: bool
) -> None:
    script_models(fake_llm, reply=words(30), tokens_per_s=30)
    fake_llm.script("p/a", latency=1.0)
    async with slack_bot(fake_llm, tmp_path, streaming=streaming, script=False) as bot:
        body = mention("status?")
        await asyncio.wait_for(bot.slack.push_event(body), 3)
        await eventually(lambda: bot.slack.thread_status(CH, ts_of(body)) == "is asking 2 models…")
        await eventually(lambda: "a: drafting" in bot.slack.statuses[-1]["loading_messages"])
        await eventually(lambda: fake_llm.requests_for("agg/x"), 5)
        await bot.settled()
        assert bot.slack.thread_status(CH, ts_of(body)) == ""
        cleared = next(s["at"] for s in bot.slack.statuses if s["status"] == "")
        final = [c.time for c in bot.slack.calls if c.method in ("chat.stopStream", "chat.update")][-1]
        assert cleared < final - 0.3  # cleared as the answer began to be written, not once it was done


async def test_a_workspace_refusing_the_status_still_gets_answers_and_no_more_status_calls(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        fake_llm.script("p/a", latency=0.3)  # drafting takes long enough for a status
        bot.slack.fail("assistant.threads.setStatus", Failure.error("missing_scope"))
        for text in ("one", "two"):
            body = mention(text)
            await bot.settled(bot.slack.push_event(body))
            assert bot.answer(CH, ts_of(body)) == EXPECTED.format(text)
        assert len(bot.slack.calls_to("assistant.threads.setStatus")) == 1


# ---------------------------------------------------------------------------------------------- stop


async def slow_answer(bot: SlackBot, fake_llm: FakeLLM, text: str) -> tuple[Json, str]:
    """Ask a question whose answer takes long to write; returns its event and the message the answer is in,
    once some of the answer shows."""
    fake_llm.script("agg/x", reply=words(300), tokens_per_s=20)
    body = mention(text)
    await asyncio.wait_for(bot.slack.push_event(body), 3)
    await eventually(lambda: "word003" in json.dumps(bot.thread(CH, ts_of(body))), 10, "the answer under way")
    [message] = bot.thread(CH, ts_of(body))
    return body, message["ts"]


async def test_the_asker_stops_an_answer_with_its_stop_button(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body, ts = await slow_answer(bot, fake_llm, "stop me")
        await click(bot, CH, ts, STOP_ACTION)
        [reply] = bot.thread(CH, ts_of(body))
        text = markdown_of(reply)
        assert text.startswith("word000 word001 word002") and text.endswith("_(stopped)_")
        assert "word299" not in text and footer_of(reply).startswith("test · stopped after")
        run = await run_of(bot)
        assert run["status"] == "stopped" and str(run["answer"]).startswith("word000")
        await eventually(lambda: fake_llm.requests_for("agg/x")[-1].outcome == "client_gone")  # cancelled
        assert not [b for b in reply["blocks"] if b["type"] == "actions" and "Stop" in json.dumps(b)]


async def test_someone_else_cannot_stop_an_answer(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path) as bot:
        body, ts = await slow_answer(bot, fake_llm, "mine")
        await bot.slack.push_interactive(bot.slack.block_action(CH, ts, STOP_ACTION, user=sp.OTHER_USER_ID))
        await eventually(lambda: bot.slack.ephemerals)
        [note] = bot.slack.ephemerals
        assert (note["user"], note["text"], note["thread_ts"]) == (
            sp.OTHER_USER_ID,
            "Only the person who asked can stop this answer.",
            ts_of(body),
        )
        await asyncio.sleep(0.3)
        assert fake_llm.requests_for("agg/x")[-1].outcome == "pending"  # still being written
        await click(bot, CH, ts, STOP_ACTION)  # the asker can
        assert (await run_of(bot))["status"] == "stopped" and len(bot.slack.ephemerals) == 1


async def test_slacks_own_stop_control_on_a_stream_stops_the_run(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        body, ts = await slow_answer(bot, fake_llm, "stop the stream")
        bot.slack.user_stops_stream(ts)
        await bot.settled()
        streamed = bot.slack.stream(ts).markdown
        [reply] = bot.thread(CH, ts_of(body))
        assert markdown_of(reply).startswith(streamed) and markdown_of(reply).endswith("_(stopped)_")
        assert (await run_of(bot))["status"] == "stopped"
        assert bot.slack.calls_to("chat.appendStream", ok=False)[0].error == "stopped_by_user"


# ---------------------------------------------------------------------------------------------- feedback, drafts


async def answered(bot: SlackBot, text: str = "rate me") -> tuple[Json, Json, str]:
    """Ask and wait for the answer; returns the event, the answer's message and the run id."""
    body = mention(text)
    await bot.settled(bot.slack.push_event(body))
    reply = bot.thread(CH, ts_of(body))[-1]
    return body, reply, str((await run_of(bot))["id"])


async def test_feedback_is_stored_per_person_replaced_by_a_second_click_and_counted(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        _, reply, run_id = await answered(bot)
        for user, value in ((sp.USER_ID, "up"), (sp.USER_ID, "down"), (sp.OTHER_USER_ID, "up")):
            await click(bot, CH, reply["ts"], FEEDBACK_ACTION, value=f"{value}:{run_id}", user=user)
        record = await bot.store.get_run(run_id)
        assert record is not None
        assert sorted((f["user"], f["value"]) for f in record["feedback"]) == [  # type: ignore[attr-defined]
            (sp.USER_ID, "down"),
            (sp.OTHER_USER_ID, "up"),
        ]
        assert bot.feedback == ["up", "down", "up"] and bot.slack.ephemerals == []


async def test_show_drafts_shows_each_draft_to_the_clicker_only(fake_llm: FakeLLM, tmp_path: Path) -> None:
    script_models(fake_llm)
    fake_llm.fail("p/b", Failure.http(401, message="bad key"))  # not retried: this draft fails
    async with slack_bot(fake_llm, tmp_path, streaming=True, script=False) as bot:
        body, reply, _ = await answered(bot, "show me")
        await click(bot, CH, reply["ts"], DRAFTS_ACTION, user=sp.OTHER_USER_ID)
        [shown] = bot.slack.ephemerals
        assert (shown["user"], shown["thread_ts"]) == (sp.OTHER_USER_ID, ts_of(body))
        text = json.dumps(shown["blocks"], ensure_ascii=False)
        assert "Drafts for: show me" in shown["text"]
        assert "*a* · " in text and " tokens" in text and "[p/a] answer to: show me" in text
        assert "*b* · failed after " in text


async def test_buttons_on_an_answer_work_after_a_restart(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with FakeSlack(window_s=WINDOW_S) as slack:
        async with slack_bot(fake_llm, tmp_path, slack=slack, streaming=True) as bot:
            _, reply, run_id = await answered(bot)
        async with slack_bot(fake_llm, tmp_path, slack=slack, streaming=True) as again:
            await click(again, CH, reply["ts"], FEEDBACK_ACTION, value=f"down:{run_id}")
            await click(again, CH, reply["ts"], DRAFTS_ACTION)
            record = await again.store.get_run(run_id)
            assert record is not None and [f["value"] for f in record["feedback"]] == ["down"]  # type: ignore[attr-defined]
            assert "[p/a] answer to: rate me" in json.dumps(slack.ephemerals)


async def test_a_click_on_a_purged_answer_gets_a_polite_note(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, streaming=True) as bot:
        _, reply, run_id = await answered(bot)
        await bot.store.purge(older_than_days=0)
        await click(bot, CH, reply["ts"], FEEDBACK_ACTION, value=f"up:{run_id}")
        await click(bot, CH, reply["ts"], DRAFTS_ACTION)
        assert [e["text"] for e in bot.slack.ephemerals] == [
            "I can't find this answer any more (old answers are deleted after a while), so your feedback was not "
            "recorded.",
            "I can't find this answer any more (old answers are deleted after a while), so I can't show its drafts.",
        ]
        assert bot.feedback == []


async def test_clicks_work_in_http_mode(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with slack_bot(fake_llm, tmp_path, http=True) as bot:
        body = mention("over http")
        assert (await bot.slack.deliver_http(bot.events_url, body, SIGNING_SECRET))[0] == 200
        await bot.settled()
        reply = bot.thread(CH, ts_of(body))[-1]
        run_id = str((await run_of(bot))["id"])
        payload = bot.slack.block_action(CH, reply["ts"], FEEDBACK_ACTION, value=f"up:{run_id}")
        assert (await bot.slack.deliver_http(bot.events_url, payload, "wrong-secret"))[0] == 401
        assert (await bot.slack.deliver_http(bot.events_url, payload, SIGNING_SECRET))[0] == 200
        await bot.settled()
        assert bot.feedback == ["up"]


# ---------------------------------------------------------------------------------------------- the setting


def test_slack_streaming_is_on_unless_set_off() -> None:
    from types import SimpleNamespace

    from adapters.slack import SlackAdapter
    from bot.config import load_settings
    from bot.metrics import Metrics
    from bot.service import build_adapters
    from moa.errors import ConfigError
    from moa.presets import parse_catalog

    tokens = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    core = SimpleNamespace(catalog=parse_catalog({}, source="moa.toml"), librarian=None)
    core.answerer = SimpleNamespace(catalog=core.catalog)
    for value, streaming in ((None, True), ("on", True), ("OFF", False)):
        settings = load_settings({**tokens, **({"SLACK_STREAMING": value} if value else {})}, dotenv=None)
        [adapter] = build_adapters(settings, core, Metrics())  # type: ignore[arg-type]
        assert isinstance(adapter, SlackAdapter) and adapter.streaming is streaming
    with pytest.raises(ConfigError, match="SLACK_STREAMING: 'sometimes' is not one of on, off"):
        load_settings({**tokens, "SLACK_STREAMING": "sometimes"}, dotenv=None)


def test_the_manifest_asks_for_what_the_ai_app_experience_uses() -> None:
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "slack-manifest.yaml").read_text())
    assert manifest["features"]["assistant_view"]["assistant_description"]
    assert {"assistant:write", "chat:write", "im:history"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"assistant_thread_started", "assistant_thread_context_changed", "message.im"} <= events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


async def test_an_answer_that_starts_at_once_sets_no_status(fake_llm: FakeLLM, tmp_path: Path) -> None:
    pacing = SlackPacing.scaled(WINDOW_S, edit_interval_s=2.0)  # the status would wait two seconds
    async with slack_bot(fake_llm, tmp_path, streaming=True, pacing=pacing) as bot:
        body = mention("quick")
        await bot.settled(bot.slack.push_event(body))
        assert bot.answer(CH, ts_of(body)) == EXPECTED.format("quick")
        assert bot.slack.calls_to("assistant.threads.setStatus") == []
