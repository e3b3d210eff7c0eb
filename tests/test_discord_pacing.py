"""The Discord adapter under Discord's limits: per-channel pacing with several answers at once, 429s, long answers
split across messages, Discord refusing a piece (50035), a deleted placeholder, and the 15-minute interaction token
(shortened here, in the fake and in the adapter alike)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path


from adapters.discord.formatting import HANDOVER_NOTE, MAX_CONTENT
from tests.discord_harness import PACING, discord_bot, eventually, fences_balanced
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.llm import FakeLLM

FOOTER = "\n-# test · a, b → x · "


def long_markdown(paragraphs: int = 6, code_lines: int = 80) -> str:
    text = [f"Paragraph {i}. " + "lorem ipsum dolor sit amet " * 20 for i in range(paragraphs)]
    code = "```python\n" + "\n".join(f"print('line {i}')  # {'x' * 20}" for i in range(code_lines)) + "\n```"
    half = paragraphs // 2
    return "\n\n".join([*text[:half], code, *text[half:]])


def prose_lines(text: str) -> list[str]:
    """The answer's lines without fences and blank lines: what must arrive, in order, however it is split."""
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("```")]


def assert_delivered(pieces: list[str], answer: str, *, limit: int = MAX_CONTENT) -> None:
    assert len(pieces) > 1
    assert all(len(piece) <= limit for piece in pieces)
    assert all(fences_balanced(piece) for piece in pieces), pieces
    assert all(FOOTER not in piece for piece in pieces[:-1]) and FOOTER in pieces[-1]
    body = "\n\n".join(pieces).rsplit(FOOTER, 1)[0]
    assert prose_lines(body) == prose_lines(answer)


def writes_in(dc: FakeDiscord, channel_id: int) -> list[float]:
    """Arrival times of every create or edit the bot made in a channel, interaction webhooks included."""
    tokens = {token for token, record in dc.interactions.items() if record.channel_id == channel_id}
    times = []
    for call in dc.calls:
        if call.method not in ("POST", "PATCH"):
            continue
        parts = call.path.split("/")
        if call.path.startswith(f"/channels/{channel_id}/messages") and not call.path.endswith("/threads"):
            times.append(call.time)
        elif parts[1] == "webhooks" and parts[3] in tokens:
            times.append(call.time)
    return sorted(times)


def most_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


def channel_messages(dc: FakeDiscord, channel_id: int) -> list[StoredMessage]:
    return [m for m in dc.bot_messages(channel_id) if m.interaction_token is None]


# --- pacing ------------------------------------------------------------------------------------------------------


async def test_several_answers_in_one_channel_share_its_budget(fake_llm: FakeLLM, tmp_path: Path) -> None:
    reply = " ".join(f"w{i}" for i in range(150))
    fake_llm.script("agg/x", reply=reply, tokens_per_s=80)
    async with discord_bot(fake_llm, tmp_path) as bot:
        dc = bot.dc
        asks = [dc.slash_command("moa", {"question": f"question {i}"}) for i in range(4)]
        interactions = await asyncio.gather(*asks)
        await bot.settled(within=30)
        for inter in interactions:
            original = dc.original_response(inter.token)
            assert original is not None and original.content.startswith(reply + FOOTER), original.history
            assert len(original.history) >= 3  # placeholder, some progress or streaming, final
        times = writes_in(dc, dc.channel_id)
        # every answer streamed, yet the channel never saw more than its budget: 5 writes per (scaled) 5 s
        assert most_in_window(times, 1.0) <= 5, times
        assert sum(dc.rate_limited.values()) == 0
        assert bot.observer.count("ratelimited") == 0


async def test_answers_in_one_thread_stay_within_discords_limits(fake_llm: FakeLLM, tmp_path: Path) -> None:
    reply = " ".join(f"w{i}" for i in range(100))
    async with discord_bot(fake_llm, tmp_path) as bot:
        dc = bot.dc
        first = await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> start")
        await bot.settled()
        fake_llm.script("agg/x", reply=reply, tokens_per_s=80)
        for i in range(3):
            await dc.user_message(first.id, f"<@{dc.bot_id}> follow-up {i}")
        await bot.settled(within=30)
        answers = dc.bot_messages(first.id)
        assert len(answers) == 4 and all(a.content.startswith(reply + FOOTER) for a in answers[1:])
        assert (
            sum(dc.rate_limited.values()) == 0
        )  # the fake enforces 5 creates and edits per second per channel
        assert most_in_window(writes_in(dc, first.id), 1.0) <= 5


async def test_429s_are_waited_out_and_the_final_text_lands(fake_llm: FakeLLM, tmp_path: Path) -> None:
    reply = " ".join(f"w{i}" for i in range(200))
    fake_llm.script("agg/x", reply=reply, tokens_per_s=150)
    # Discord stricter than the adapter expects: 2 creates or edits per second per channel
    async with discord_bot(fake_llm, tmp_path, fake={"message_rate": (2, 1.0)}) as bot:
        dc = bot.dc
        asked = [await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> q{i}") for i in range(2)]
        dm = dc.dm_channel_id(dc.bob)
        for i in range(2):
            await dc.user_message(dm, f"dm {i}", author=dc.bob)
        await bot.settled(within=30)
        for message in asked:
            (answer,) = dc.bot_messages(message.id)
            assert answer.content.startswith(reply + FOOTER)
        assert [m.content.startswith(reply + FOOTER) for m in dc.bot_messages(dm)] == [True, True]
        limited = sum(dc.rate_limited.values())
        assert limited >= 1
        assert bot.observer.count("ratelimited") == limited  # every 429 is counted for /metrics


# --- long answers ----------------------------------------------------------------------------------------------


async def test_long_answer_continues_in_follow_ups(fake_llm: FakeLLM, tmp_path: Path) -> None:
    answer = long_markdown()
    assert len(answer) > 2 * MAX_CONTENT
    fake_llm.script("agg/x", reply=answer, tokens_per_s=2000)
    async with discord_bot(fake_llm, tmp_path) as bot:
        dc = bot.dc
        inter = await dc.slash_command("moa", {"question": "long please"})
        asked = await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> long again")
        await bot.settled(within=20)
        original = dc.original_response(inter.token)
        assert original is not None
        followups = dc.followups(inter.token)
        assert followups and all(not f.ephemeral for f in followups)
        assert_delivered([original.content, *(f.content for f in followups)], answer)
        # interim edits showed a preview that fit
        assert all(len(h) <= MAX_CONTENT for h in original.history)
        assert_delivered([m.content for m in dc.bot_messages(asked.id)], answer)
        assert all(call.status != 400 for call in dc.calls)


async def test_a_piece_discord_refuses_is_sent_smaller(fake_llm: FakeLLM, tmp_path: Path) -> None:
    answer = long_markdown()
    fake_llm.script("agg/x", reply=answer, tokens_per_s=2000)
    async with discord_bot(fake_llm, tmp_path) as bot:
        dc = bot.dc
        # Discord counting characters differently than we do (e.g. in UTF-16 units) looks like this: 50035
        dc.max_content = 1500
        asked = await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> long")
        await bot.settled(within=20)
        refused = [c for c in dc.calls if c.status == 400]
        assert refused
        assert_delivered([m.content for m in dc.bot_messages(asked.id)], answer, limit=1500)


async def test_a_deleted_placeholder_is_replaced(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("agg/x", reply="the answer", latency=0.6)
    async with discord_bot(fake_llm, tmp_path) as bot:
        dc = bot.dc
        asked = await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> q")
        placeholder = await dc.wait_for(lambda: dc.bot_messages(asked.id))
        placeholder[0].deleted = True  # a moderator removed it while the models were working
        await bot.settled()
        (answer,) = dc.bot_messages(asked.id)
        assert answer.id != placeholder[0].id and answer.content.startswith("the answer" + FOOTER)


# --- the interaction token's 15 minutes --------------------------------------------------------------------------


async def test_a_slow_answer_moves_to_a_channel_message_before_the_token_expires(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    answer = long_markdown(paragraphs=4, code_lines=30)
    fake_llm.script("agg/x", reply=answer, latency=2.0, tokens_per_s=3000)
    ttl = 1.5
    pacing = replace(PACING, interaction_ttl_s=ttl, token_margin_s=0.5)
    async with discord_bot(fake_llm, tmp_path, pacing=pacing, fake={"interaction_token_ttl": ttl}) as bot:
        dc = bot.dc
        inter = await dc.slash_command("moa", {"question": "slow one"})
        await bot.settled(within=20)
        original = dc.original_response(inter.token)
        assert original is not None
        # while the token still worked, the original reply was marked as continued below
        assert original.content.endswith(HANDOVER_NOTE)
        assert all(t < inter.issued_at + ttl for t in original.edit_times)
        assert all(call.status != 401 for call in dc.calls)  # never used an expired token
        continued = channel_messages(dc, dc.channel_id)
        assert continued[0].reference is not None and continued[0].reference["message_id"] == str(original.id)
        assert dc.followups(inter.token) == []  # the rest went as ordinary channel messages
        assert_delivered([m.content for m in continued], answer)


async def test_a_token_dead_earlier_than_expected_still_gets_the_answer_out(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.script("agg/x", reply="late but whole", latency=0.8)
    async with discord_bot(fake_llm, tmp_path, fake={"interaction_token_ttl": 0.4}) as bot:
        dc = bot.dc
        inter = await dc.slash_command("moa", {"question": "q"})
        await bot.settled(within=10)
        (continued,) = channel_messages(dc, dc.channel_id)
        assert continued.content.startswith("late but whole" + FOOTER)
        assert any(call.status == 401 for call in dc.calls)  # Discord said 50027, the adapter moved on
        # the original reply, no longer editable through the token, is marked as the bot's own message
        original = dc.original_response(inter.token)
        assert original is not None and original.content.endswith(HANDOVER_NOTE)
        assert continued.reference is not None and continued.reference["message_id"] == str(original.id)


async def test_deferral_is_quick_even_when_the_core_is_slow(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path, pacing=replace(PACING, ack_within_s=0.2)) as bot:
        dc = bot.dc
        real_first_time = bot.store.first_time

        async def slow_first_time(platform: str, event_id: str) -> bool:
            await asyncio.sleep(0.6)  # a database stalled on its disk
            return await real_first_time(platform, event_id)

        bot.store.first_time = slow_first_time  # type: ignore[method-assign]
        inter = await dc.slash_command("moa", {"question": "still there?"})
        await eventually(lambda: dc.interaction(inter.token).callback_type == 5, 0.5, "deferred in time")
        await bot.settled()
        original = dc.original_response(inter.token)
        assert original is not None and original.content.startswith(
            "[agg/x] answer to: still there?" + FOOTER
        )
