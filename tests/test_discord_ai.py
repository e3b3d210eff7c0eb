"""The AI-app experience on Discord, end to end: a progress line per model, Stop for the asker while an answer is
written, 👍 / 👎 and Show drafts under the finished answer, clicks after a restart or on a purged run, and
per-channel presets and system prompts. A real discord.py client against the fake Discord, the real core against
the fake LLM."""

from __future__ import annotations

import contextlib

from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from adapters.discord.clicks import DRAFTS_GONE, FEEDBACK_GONE, STOP_REFUSED
from adapters.discord.formatting import MAX_CONTENT
from moa.answering import StopResult
from tests.core import open_test_core
from tests.fakes.discord import FakeDiscord
from tests.discord_harness import PACING, DiscordBot, discord_bot, eventually
from tests.fakes import discord_payloads as p
from tests.fakes.discord import InteractionRecord, StoredMessage
from tests.fakes.llm import Failure, FakeLLM

SLOW_REPLY = " ".join(f"word{i}" for i in range(400))  # 400 tokens at 40 a second: ten seconds of streaming


def buttons(message: StoredMessage) -> list[str]:
    """The custom_ids of a message's buttons, in order."""
    return [c["custom_id"] for row in message.components for c in row["components"]]


def mention(bot: DiscordBot, text: str) -> str:
    return f"<@{bot.dc.bot_id}> {text}"


async def only_run(bot: DiscordBot) -> str:
    async with bot.store.db.execute("SELECT id FROM runs") as cursor:
        ((run_id,),) = await cursor.fetchall()
    return str(run_id)


async def run_status(bot: DiscordBot, run_id: str) -> str:
    record = await bot.store.get_run(run_id)
    assert record is not None
    return str(record["status"])


async def ask_in_a_thread(bot: DiscordBot, question: str) -> int:
    """A mention in the channel; returns the thread the answer goes to."""
    asked = await bot.dc.user_message(bot.dc.channel_id, mention(bot, question))
    return bot.thread_of(asked)


async def placeholder_in(bot: DiscordBot, thread: int) -> StoredMessage:
    return await eventually(lambda: next(iter(bot.dc.bot_messages(thread)), None), 5, "a placeholder")  # type: ignore[return-value]


async def ephemeral_reply(bot: DiscordBot, click: InteractionRecord) -> str:
    """What the person who clicked was told, visible to them only."""
    await bot.settled()
    reply = bot.dc.original_response(click.token)
    assert reply is not None and reply.ephemeral, (click.callback_type, reply)
    return reply.content


# --- progress --------------------------------------------------------------------------------------------------


async def test_progress_shows_a_line_per_model_while_drafting(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("p/b", latency=1.0)
    fake_llm.fail("p/c", Failure.http(404, message="no such model", code="model_not_available"), times=5)
    three = {"proposers": ["p/a", "p/b", "p/c"], "aggregator": "agg/x"}
    async with discord_bot(fake_llm, tmp_path, presets={"three": three}) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "progress?", "preset": "three"})
        await bot.settled()
        original = bot.dc.original_response(inter.token)
        assert original is not None
        drafting = [h for h in original.history if "-# ⏳ b · drafting" in h]
        assert drafting, original.history
        # p/a is in, p/c has failed, p/b is still drafting
        assert any(
            h.startswith("⏳ 1/3 drafts in…\n") and "-# ✓ a · " in h and " tokens" in h and "-# ✗ c · failed (" in h
            for h in drafting
        ), drafting
        assert all(len(h) <= MAX_CONTENT for h in original.history)
        assert "-# " in original.content and "drafting" not in original.content  # the footer alone at the end


# --- the buttons ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["slash", "mention"])
async def test_stop_while_writing_then_feedback_and_drafts_on_the_answer(
    fake_llm: FakeLLM, tmp_path: Path, entry: str
) -> None:
    fake_llm.script("agg/x", reply=" ".join(f"w{i}" for i in range(50)), tokens_per_s=50)
    async with discord_bot(fake_llm, tmp_path) as bot:
        if entry == "slash":
            inter = await bot.dc.slash_command("moa", {"question": "buttons?"})
            message = await eventually(lambda: bot.dc.original_response(inter.token), 5, "the reply")
        else:
            message = await placeholder_in(bot, await ask_in_a_thread(bot, "buttons?"))
        assert isinstance(message, StoredMessage)
        await eventually(lambda: message.content.startswith("w0 w1"), 5, "streaming")
        run_id = await only_run(bot)
        assert buttons(message) == [f"moa:stop:{run_id}"]
        assert message.components[0]["components"][0]["label"] == "Stop"
        await bot.settled()
        assert message.content.startswith("w0 w1") and "\n-# test · " in message.content
        assert buttons(message) == [f"moa:up:{run_id}", f"moa:down:{run_id}", f"moa:drafts:{run_id}"]
        (row,) = message.components
        assert [c.get("emoji", {}).get("name") for c in row["components"][:2]] == ["👍", "👎"]
        assert row["components"][2]["label"] == "Show drafts"


async def test_a_long_answer_has_its_buttons_on_the_last_message_only(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("agg/x", reply="\n\n".join("lorem ipsum dolor sit amet " * 30 for _ in range(8)))
    async with discord_bot(fake_llm, tmp_path) as bot:
        thread = await ask_in_a_thread(bot, "long?")
        await bot.settled()
        messages = bot.dc.bot_messages(thread)
        assert len(messages) >= 3
        run_id = await only_run(bot)
        assert [buttons(m) for m in messages[:-1]] == [[]] * (len(messages) - 1)
        assert buttons(messages[-1]) == [f"moa:up:{run_id}", f"moa:down:{run_id}", f"moa:drafts:{run_id}"]


async def test_the_asker_stops_an_answer_and_keeps_what_was_written(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("agg/x", reply=SLOW_REPLY, tokens_per_s=40)
    async with discord_bot(fake_llm, tmp_path) as bot:
        thread = await ask_in_a_thread(bot, "long story?")
        placeholder = await placeholder_in(bot, thread)
        await eventually(lambda: placeholder.content.startswith("word0 word1"), 5, "streaming")
        run_id = await only_run(bot)
        click = await bot.dc.click(placeholder.id, f"moa:stop:{run_id}")
        await bot.settled()
        assert bot.dc.interaction(click.token).callback_type == 6  # quietly acknowledged: the answer says it
        (answer,) = bot.dc.bot_messages(thread)
        body = answer.content.rsplit("\n-# ", 1)[0]
        assert body.startswith("word0 word1") and body.endswith("_(stopped)_")
        assert "word399" not in body and " · stopped after " in answer.content
        assert buttons(answer) == [f"moa:up:{run_id}", f"moa:down:{run_id}", f"moa:drafts:{run_id}"]
        assert await run_status(bot, run_id) == "stopped"
        (aggregator_call,) = fake_llm.requests_for("agg/x")
        await eventually(lambda: aggregator_call.outcome == "client_gone", 2, "the aggregator's call cancelled")


async def test_stop_cancels_every_model_call_at_once(fake_llm: FakeLLM, tmp_path: Path) -> None:
    for model in ("p/a", "p/b"):
        fake_llm.script(model, latency=30)
    async with discord_bot(fake_llm, tmp_path) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "slow drafts?"})
        await eventually(lambda: len(fake_llm.requests_for("p/b")) == 1, 5, "both proposers asked")
        original = await eventually(
            lambda: (m := bot.dc.original_response(inter.token)) and buttons(m) and m, 5, "Stop shown"
        )
        assert isinstance(original, StoredMessage)
        await bot.dc.click(original.id, buttons(original)[0])
        await eventually(
            lambda: [r.outcome for r in fake_llm.completions] == ["client_gone"] * 2, 2, "every model call cancelled"
        )
        await bot.settled()
        assert fake_llm.requests_for("agg/x") == []
        assert original.content.startswith("_(stopped before the answer began)_")


async def test_someone_else_cannot_stop_an_answer(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("agg/x", reply=" ".join(f"w{i}" for i in range(40)), tokens_per_s=40)
    async with discord_bot(fake_llm, tmp_path) as bot:
        thread = await ask_in_a_thread(bot, "mine?")
        placeholder = await placeholder_in(bot, thread)
        await eventually(lambda: buttons(placeholder), 5, "Stop shown")
        run_id = await only_run(bot)
        click = await bot.dc.click(placeholder.id, f"moa:stop:{run_id}", user=bot.dc.bob)
        assert await ephemeral_reply(bot, click) == STOP_REFUSED[StopResult.NOT_ASKER]
        assert bot.dc.interaction(click.token).callback_type == 4
        assert await run_status(bot, run_id) == "done"
        assert placeholder.content.rsplit("\n-# ", 1)[0].endswith("w39")


async def test_feedback_is_stored_once_per_person_and_counted(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "was this good?"})
        await bot.settled()
        original = bot.dc.original_response(inter.token)
        assert original is not None
        run_id = await only_run(bot)
        clicks = [
            await bot.dc.click(original.id, f"moa:up:{run_id}"),
            await bot.dc.click(original.id, f"moa:down:{run_id}"),  # alice changes her mind
            await bot.dc.click(original.id, f"moa:up:{run_id}", user=bot.dc.bob),
        ]
        await bot.settled()
        assert [bot.dc.interaction(c.token).callback_type for c in clicks] == [6, 6, 6]
        assert all(bot.dc.followups(c.token) == [] for c in clicks)  # nothing else to say
        record = await bot.store.get_run(run_id)
        assert record is not None
        votes = {(f["user"], f["value"]) for f in record["feedback"]}  # type: ignore[attr-defined]
        assert votes == {(str(bot.dc.alice["id"]), "down"), (str(bot.dc.bob["id"]), "up")}
        assert bot.feedback == ["up", "down", "up"]
        assert buttons(original) == [f"moa:up:{run_id}", f"moa:down:{run_id}", f"moa:drafts:{run_id}"]


async def test_show_drafts_tells_the_clicker_each_models_draft(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail("p/b", Failure.http(404, message="no such model", code="model_not_available"), times=5)
    async with discord_bot(fake_llm, tmp_path) as bot:
        thread = await ask_in_a_thread(bot, "what did each say?")
        await bot.settled()
        (answer,) = bot.dc.bot_messages(thread)
        run_id = await only_run(bot)
        click = await bot.dc.click(answer.id, f"moa:drafts:{run_id}", user=bot.dc.bob)
        shown = await ephemeral_reply(bot, click)
        assert bot.dc.interaction(click.token).callback_type == 5  # "thinking…" for bob, then the drafts
        lines = shown.split("\n\n")
        assert lines[0] == "**Drafts for:** what did each say?"
        assert lines[1].startswith("**1. a** · ") and lines[1].endswith(" tokens")
        assert lines[2] == "[p/a] answer to: what did each say?"
        assert lines[3].startswith("**2. b** · ✗ failed after ") and "no such model" in lines[3]
        assert bot.dc.followups(click.token) == []
        assert [m for m in bot.dc.bot_messages(thread) if not m.ephemeral] == [answer]  # nothing others see


async def test_long_drafts_continue_in_ephemeral_follow_ups(fake_llm: FakeLLM, tmp_path: Path) -> None:
    draft = "\n\n".join(f"Point {i}: " + "detail " * 40 for i in range(8))  # about 2,400 characters
    for model in ("p/a", "p/b"):
        fake_llm.script(model, reply=draft)
    async with discord_bot(fake_llm, tmp_path) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "drafts?"})
        await bot.settled()
        original = bot.dc.original_response(inter.token)
        assert original is not None
        click = await bot.dc.click(original.id, f"moa:drafts:{await only_run(bot)}")
        first = await ephemeral_reply(bot, click)
        follow_ups = bot.dc.followups(click.token)
        pieces = [first, *(m.content for m in follow_ups)]
        assert len(pieces) >= 3 and all(m.ephemeral for m in follow_ups)
        assert all(len(piece) <= MAX_CONTENT for piece in pieces)
        text = "\n\n".join(pieces)
        assert text.count("Point 7: ") == 2 and "**2. b** · " in text


async def test_clicks_on_a_purged_answer_get_a_polite_note(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path) as bot:
        inter = await bot.dc.slash_command("moa", {"question": "soon forgotten"})
        await bot.settled()
        original = bot.dc.original_response(inter.token)
        assert original is not None
        run_id = await only_run(bot)
        assert await bot.store.purge(older_than_days=-1) == 1
        up = await bot.dc.click(original.id, f"moa:up:{run_id}")
        drafts = await bot.dc.click(original.id, f"moa:drafts:{run_id}")
        await bot.settled()
        (note,) = bot.dc.followups(up.token)
        assert note.ephemeral and note.content == FEEDBACK_GONE
        assert await ephemeral_reply(bot, drafts) == DRAFTS_GONE
        assert bot.feedback == []


async def test_stop_on_a_finished_answer_says_there_is_nothing_to_stop(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path) as bot:
        # a placeholder an earlier process left with its Stop button, for a run no process is writing
        stale = bot.dc.add_user_message(
            bot.dc.channel_id, "⏳ Asking 2 models…", author=bot.dc.bot_user, reply_to=None, ping_reply=False
        )
        stale.components = [p.action_row(p.button("Stop", "moa:stop:0123abcd", style=2))]
        stale.allowed_mentions = [{"parse": []}]  # as the bot sends every message
        click = await bot.dc.click(stale.id, "moa:stop:0123abcd")
        assert await ephemeral_reply(bot, click) == STOP_REFUSED[StopResult.NOT_RUNNING]


async def test_buttons_work_after_a_restart(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path) as bot, contextlib.AsyncExitStack() as stack:
        thread = await ask_in_a_thread(bot, "remember this?")
        await bot.settled()
        (answer,) = bot.dc.bot_messages(thread)
        run_id = await only_run(bot)
        await bot.adapter.aclose()
        # a new process: a new core on the same database, a new client on the same Discord
        core = await stack.enter_async_context(open_test_core(bot.settings))
        restarted = DiscordAdapter(
            bot_token=bot.dc.token,
            answerer=core.answerer,
            api_base=bot.dc.api_base,
            guild_ids=(bot.dc.guild_id,),
            pacing=PACING,
            guild_ready_timeout=0.05,
        )
        await restarted.start()
        try:
            up = await bot.dc.click(answer.id, f"moa:up:{run_id}", user=bot.dc.bob)
            drafts = await bot.dc.click(answer.id, f"moa:drafts:{run_id}", user=bot.dc.bob)
            await eventually(
                lambda: (r := bot.dc.original_response(drafts.token)) and r.content and bot.dc.interaction(up.token).callback_type,
                5,
                "both clicks answered",
            )
            await eventually(lambda: restarted.in_progress == 0, 5, "clicks handled")
            assert bot.dc.interaction(up.token).callback_type == 6
            reply = bot.dc.original_response(drafts.token)
            assert reply is not None and reply.ephemeral and "[p/a] answer to: remember this?" in reply.content
            record = await bot.store.get_run(run_id)
            assert record is not None and record["feedback"][0]["value"] == "up"  # type: ignore[index]
        finally:
            await restarted.aclose()


# --- per-channel settings ----------------------------------------------------------------------------------------


async def test_channel_settings_choose_the_preset_and_system_prompt(fake_llm: FakeLLM, tmp_path: Path) -> None:
    solo = {"proposers": ["p/solo"], "aggregator": "agg/x"}
    fake_llm.script("p/solo")

    def channels(dc: FakeDiscord) -> dict[str, dict[str, str]]:
        return {f"discord:{dc.channel_id}": {"preset": "solo", "system_prompt": "Answer in French."}}

    async with discord_bot(fake_llm, tmp_path, presets={"solo": solo}, channels=channels, system_prompt="Be brief.") as bot:
        dc = bot.dc
        thread = await ask_in_a_thread(bot, "in the configured channel")
        await bot.settled()
        await dc.user_message(thread, mention(bot, "and in its thread"))  # a thread inherits its channel's
        await dc.slash_command("moa", {"question": "by slash command"})
        await dc.slash_command("moa", {"question": "named preset wins", "preset": "test"})
        await dc.slash_command("moa", {"question": "elsewhere"}, channel_id=dc.other_channel_id)
        await bot.settled()

        def asked(question: str) -> tuple[set[str | None], set[str]]:
            """Which proposers answered `question`, and whose standing instructions they were given."""
            calls = [r for r in fake_llm.completions if r.messages[-1]["content"] == question and r.model != "agg/x"]
            system = " ".join(r.messages[0]["content"] for r in calls if r.messages[0]["role"] == "system")
            return {r.model for r in calls}, {s for s in ("Answer in French.", "Be brief.") if s in system}

        for question in ("in the configured channel", "and in its thread", "by slash command"):
            assert asked(question) == ({"p/solo"}, {"Answer in French."}), question
        assert asked("named preset wins") == ({"p/a", "p/b"}, {"Answer in French."})
        assert asked("elsewhere") == ({"p/a", "p/b"}, {"Be brief."})
