"""Team knowledge on Discord, through the real discord.py against the fake Discord: knowledge channels
backfilled and indexed live (edits, deletions, files), cited answers, the private-channel rule, the no-sources
modes, verified answers, and a restart in the middle of a backfill."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

from adapters.discord import DiscordAdapter
from bot.metrics import Metrics
from bot.service import Service
from moa.knowledge import Audience, Document, Kind
from moa.knowledge.model import Cursor, DocumentInfo
from moa.prompts import NO_SOURCES_NOTE
from tests.discord_harness import PACING, DiscordBot, discord_bot
from tests.fakes import discord_payloads as p
from tests.fakes.discord import ROUTE_ADD_REACTION, ROUTE_HISTORY, Failure, FakeDiscord, StoredMessage
from tests.fakes.documents import pdf_with_text, png_image
from tests.fakes.llm import FakeLLM

T = TypeVar("T")
DAY = 86400.0
SECRET = "ZEBRA-7731"


def general(dc: FakeDiscord) -> list[int]:
    return [dc.channel_id]


def mention(bot: DiscordBot, text: str) -> str:
    return f"<@{bot.dc.bot_id}> {text}"


def prompts(llm: FakeLLM) -> str:
    """Everything every model was sent, as one text."""
    return "\n".join(str(m["content"]) for r in llm.completions for m in r.messages)


async def until(check: Callable[[], Awaitable[T | None]], within: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.02)


async def cursor_of(bot: DiscordBot, channel_id: int) -> Cursor | None:
    assert bot.librarian is not None
    return await bot.librarian.cursor("discord", str(bot.dc.guild_id), str(channel_id))


async def backfilled(bot: DiscordBot, channel_id: int) -> Cursor:
    async def done() -> Cursor | None:
        cursor = await cursor_of(bot, channel_id)
        return cursor if cursor is not None and cursor.done else None

    return await until(done, what=f"backfill of {channel_id} done")


async def indexed(bot: DiscordBot, prefix: str = "discord:") -> dict[str, DocumentInfo]:
    assert bot.librarian is not None
    return {info.source: info for info in await bot.librarian.documents(prefix)}


def source(dc: FakeDiscord, message: StoredMessage) -> str:
    return f"discord:{dc.guild_id}:{message.channel_id}:{message.id}"


def history_reads(dc: FakeDiscord, channel_id: int) -> list[dict[str, str]]:
    return [c.query for c in dc.requests(ROUTE_HISTORY) if c.path == f"/channels/{channel_id}/messages"]


async def ask(bot: DiscordBot, channel_id: int, text: str, **options: object) -> StoredMessage:
    """A question with the bot's mention, answered before this returns."""
    asked = await bot.dc.user_message(channel_id, mention(bot, text), **options)  # type: ignore[arg-type]
    await bot.settled()
    return asked


def restarted(bot: DiscordBot, channels: list[int]) -> DiscordAdapter:
    """Another adapter on the same core and fake: the service after a restart."""
    return DiscordAdapter(
        bot_token=bot.dc.token,
        answerer=bot.answerer,
        api_base=bot.dc.api_base,
        guild_ids=(bot.dc.guild_id,),
        knowledge_channels={str(c) for c in channels},
        librarian=bot.librarian,
        pacing=PACING,
        guild_ready_timeout=0.05,
    )


# --- backfill -------------------------------------------------------------------------------------------


async def test_backfill_reads_the_channel_and_its_threads_back_to_the_window(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    seeded: list[StoredMessage] = []
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        env={"MOA_KNOWLEDGE_BACKFILL_DAYS": "365"},
        setup=lambda dc: seeded.extend(dc.add_history(dc.channel_id, 150, days=400, threads_every=5)),
    ) as bot:
        dc = bot.dc
        cursor = await backfilled(bot, dc.channel_id)
        window = time.time() - 365 * DAY
        replies = [r for m in seeded if m.thread_id for r in dc.messages(m.thread_id)]
        expected = {source(dc, m) for m in [*seeded, *replies] if m.created_at >= window}
        docs = await indexed(bot)
        assert set(docs) == expected and len(expected) < len(seeded) + len(replies)
        # a thread's replies are kept under its channel, with the thread in their source
        assert {docs[source(dc, r)].channel for r in replies if source(dc, r) in docs} == {str(dc.channel_id)}
        assert cursor.messages == len(expected) and window <= cursor.oldest < window + 4 * DAY
        reads = history_reads(dc, dc.channel_id)
        assert [r.get("limit") for r in reads] == ["100", "100"]  # newest first, then before the oldest read
        newest_first = sorted((m.id for m in seeded), reverse=True)
        assert "before" not in reads[0] and reads[1]["before"] == str(newest_first[99])


async def test_a_restart_in_the_middle_of_a_backfill_resumes_from_its_cursor(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    slow = replace(PACING, backfill_per_s=4.0)
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        adapter={"pacing": slow},
        setup=lambda dc: dc.add_history(dc.channel_id, 350, days=300, threads_every=0),
    ) as bot:
        dc = bot.dc

        async def partly() -> Cursor | None:
            cursor = await cursor_of(bot, dc.channel_id)
            return cursor if cursor is not None and cursor.messages >= 100 and not cursor.done else None

        await until(partly, what="a page backfilled")
        await bot.adapter.aclose()
        stopped = await cursor_of(bot, dc.channel_id)
        assert stopped is not None and not stopped.done and stopped.cursor.startswith("before:")
        before_restart = len(history_reads(dc, dc.channel_id))
        again = restarted(bot, [dc.channel_id])
        await again.start()
        try:
            cursor = await backfilled(bot, dc.channel_id)
        finally:
            await again.aclose()
        resumed = history_reads(dc, dc.channel_id)[before_restart:]
        assert resumed[0]["before"] == stopped.cursor.removeprefix("before:")  # not from the newest again
        assert all("before" in read for read in resumed)
        assert len(await indexed(bot)) == 350 and stopped.messages < cursor.messages <= 350


async def test_a_finished_channel_is_only_caught_up_at_the_next_start(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        setup=lambda dc: dc.add_history(dc.channel_id, 250, days=100, threads_every=0),
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        await bot.adapter.aclose()
        away = dc.add_user_message(
            dc.channel_id, "written while the bot was away", author=dc.bob, reply_to=None, ping_reply=False
        )
        reads = len(history_reads(dc, dc.channel_id))
        active_reads = len(dc.requests("GET /guilds/{guild_id}/threads/active"))
        await bot.adapter.start()

        async def caught_up() -> bool:
            threads_read = len(dc.requests("GET /guilds/{guild_id}/threads/active")) > active_reads
            return threads_read and source(dc, away) in await indexed(bot)

        await until(caught_up, what="caught up")
        assert len(history_reads(dc, dc.channel_id)) == reads + 1  # one page: it met what was indexed already
        assert len(await indexed(bot)) == 251


async def test_a_channel_added_later_is_backfilled_then(fake_llm: FakeLLM, tmp_path: Path) -> None:
    def setup(dc: FakeDiscord) -> None:
        dc.add_history(dc.channel_id, 20, days=30, threads_every=0)
        dc.add_history(dc.other_channel_id, 30, days=30, threads_every=0)

    async with discord_bot(fake_llm, tmp_path, knowledge=general, setup=setup) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        assert await cursor_of(bot, dc.other_channel_id) is None
        await bot.adapter.aclose()
        again = restarted(bot, [dc.channel_id, dc.other_channel_id])
        await again.start()
        try:
            cursor = await backfilled(bot, dc.other_channel_id)
        finally:
            await again.aclose()
        assert cursor.messages == 30 and len(await indexed(bot)) == 50


async def test_a_channel_made_private_is_indexed_again_as_private(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        setup=lambda dc: dc.add_history(dc.channel_id, 10, days=30, threads_every=0),
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        assert {d.visibility.value for d in (await indexed(bot)).values()} == {"public"}
        await bot.adapter.aclose()
        # while the bot was away, @everyone lost the channel
        dc.channel(dc.channel_id)["permission_overwrites"] = [
            p.permission_overwrite(dc.guild_id, p.OVERWRITE_ROLE, deny=p.PERMISSION_VIEW_CHANNEL),
            p.permission_overwrite(dc.bot_id, p.OVERWRITE_MEMBER, allow=p.PERMISSION_VIEW_CHANNEL),
        ]
        await bot.adapter.start()

        async def private_again() -> bool:
            docs = await indexed(bot)
            cursor = await cursor_of(bot, dc.channel_id)
            return (
                len(docs) == 10
                and {d.visibility.value for d in docs.values()} == {"private"}
                and bool(cursor and cursor.done)
            )

        await until(private_again, what="indexed again as private")


async def test_a_channel_made_private_while_the_bot_runs_is_indexed_again_at_once(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        setup=lambda dc: dc.add_history(dc.channel_id, 10, days=30, threads_every=0),
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        await dc.set_channel_private(dc.channel_id)

        async def private_again() -> bool:
            docs = await indexed(bot)
            return len(docs) == 10 and {d.visibility.value for d in docs.values()} == {"private"}

        await until(private_again, what="indexed again as private")
        await backfilled(bot, dc.channel_id)


async def test_the_daily_purge_keeps_channels_the_file_makes_knowledge_channels(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(
        fake_llm,
        tmp_path,
        knowledge=general,
        channels=lambda dc: {f"discord:{dc.channel_id}": {"knowledge": True}},
        setup=lambda dc: dc.add_history(dc.channel_id, 5, days=30, threads_every=0),
    ) as bot:
        assert bot.librarian is not None and not bot.settings.knowledge_channels
        await backfilled(bot, bot.dc.channel_id)
        gone = Document("discord:1:2:3", Kind.MESSAGE, "discord", "1", "2", "a channel taken out of the file")
        await bot.librarian.index_message(gone)
        core = SimpleNamespace(catalog=bot.answerer.catalog, librarian=bot.librarian)
        service = Service(bot.settings, core, [], Metrics())  # type: ignore[arg-type]
        assert (
            await service.purge_knowledge()
            == "1 documents of channels no longer in MOA_KNOWLEDGE_CHANNELS removed"
        )
        assert len(await indexed(bot)) == 5


# --- live indexing ----------------------------------------------------------------------------------------


async def test_messages_are_indexed_as_they_arrive_and_again_when_edited(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(fake_llm, tmp_path, knowledge=general) as bot:
        dc = bot.dc
        assert bot.librarian is not None
        await backfilled(bot, dc.channel_id)
        note = await dc.user_message(dc.channel_id, "Deploys run at 10:00 from the bastion.")
        await bot.settled()
        audience = Audience("discord", str(dc.guild_id), frozenset({str(dc.other_channel_id)}))
        (found,) = await bot.librarian.search("when do deploys run", audience, 5)
        assert (found.source, found.text, found.author) == (source(dc, note), note.content, "alice")
        assert found.link == f"https://discord.com/channels/{dc.guild_id}/{dc.channel_id}/{note.id}"
        await dc.user_edit(note.id, "Deploys run at 11:00 from the bastion.")
        await bot.settled()
        (found,) = await bot.librarian.search("when do deploys run", audience, 5)
        assert found.text == "Deploys run at 11:00 from the bastion."
        # its thread's replies too, and what others say elsewhere is not knowledge
        reply = await dc.user_message(note.id, "Except on Fridays, deploys wait.", author=dc.bob)
        await dc.user_message(dc.other_channel_id, "Deploys in random chatter.")
        await bot.settled()
        docs = await indexed(bot)
        assert set(docs) == {source(dc, note), source(dc, reply)}
        assert docs[source(dc, reply)].channel == str(dc.channel_id)


async def test_a_deleted_message_is_never_in_a_prompt_again(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path, knowledge=general) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        note = await dc.user_message(dc.channel_id, "The vault password rotates on Tuesdays.")
        await bot.settled()
        await ask(bot, dc.other_channel_id, "when does the vault password rotate?")
        assert "Tuesdays" in prompts(fake_llm)
        await dc.user_delete(note.id)
        await bot.settled()
        fake_llm.requests.clear()
        await ask(bot, dc.other_channel_id, "when does the vault password rotate?")
        assert fake_llm.completions and "Tuesdays" not in prompts(fake_llm)
        assert await indexed(bot) == {}


async def test_bulk_deletions_and_deleted_threads_leave_the_index(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(fake_llm, tmp_path, knowledge=general) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        thread = await dc.user_thread(dc.channel_id, "incident 42")
        cause = await dc.user_message(thread, "The root cause was a full disk.")
        spam = [await dc.user_message(dc.channel_id, f"Buy cheap watches {i}") for i in range(3)]
        kept = await dc.user_message(dc.channel_id, "Backups run nightly.")
        await bot.settled()
        assert set(await indexed(bot)) == {source(dc, m) for m in [cause, *spam, kept]}
        await dc.bulk_delete(dc.channel_id, [m.id for m in spam])
        await dc.delete_thread(thread)
        await bot.settled()
        assert set(await indexed(bot)) == {source(dc, kept)}


async def test_text_files_are_indexed_with_their_name_and_others_skipped(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(
        fake_llm, tmp_path, knowledge=general, env={"MOA_KNOWLEDGE_MAX_FILE_MB": "0.01"}
    ) as bot:
        dc = bot.dc
        assert bot.librarian is not None
        await backfilled(bot, dc.channel_id)
        files = {
            "runbook.md": b"# Runbook\n\nRestart the queue worker with systemctl.",
            "handbook.pdf": pdf_with_text(["Invoices are sent on the first working day."]),
            "logo.png": png_image(4, 3),
            "dump.txt": b"x " * 10_000,  # over MOA_KNOWLEDGE_MAX_FILE_MB
        }
        shared = await dc.user_message(dc.channel_id, "", attachments=list(files.items()))
        await bot.settled()
        ids = {a["filename"]: a["id"] for a in shared.attachments}
        message = source(dc, shared)
        docs = await indexed(bot)
        assert {s: d.title for s, d in docs.items()} == {
            f"{message}/file:{ids['runbook.md']}": "runbook.md",
            f"{message}/file:{ids['handbook.pdf']}": "handbook.pdf",
        }
        # the skipped ones are never downloaded
        assert sorted(f["attachment_id"] for f in dc.cdn_fetches) == sorted(
            [ids["runbook.md"], ids["handbook.pdf"]]
        )
        audience = Audience("discord", str(dc.guild_id), frozenset({str(dc.channel_id)}))
        (found,) = await bot.librarian.search("when are invoices sent", audience, 5)
        assert found.title == "handbook.pdf" and "first working day" in found.text
        # an edit that takes a file away takes it out of the index; the message's deletion takes the rest
        await dc.user_edit(shared.id, "")
        dc.message(shared.id).attachments = [a for a in shared.attachments if a["filename"] != "runbook.md"]
        await dc.user_edit(shared.id, "the handbook")
        await bot.settled()
        assert set(await indexed(bot)) == {message, f"{message}/file:{ids['handbook.pdf']}"}
        assert len(dc.cdn_fetches) == 2  # nothing downloaded again
        await dc.user_delete(shared.id)
        await bot.settled()
        assert await indexed(bot) == {}


# --- answers ---------------------------------------------------------------------------------------------


async def test_a_cited_answer_links_to_its_source(fake_llm: FakeLLM, tmp_path: Path) -> None:
    noted: list[StoredMessage] = []

    def setup(dc: FakeDiscord) -> None:
        noted.append(
            dc.add_user_message(
                dc.channel_id,
                "Billing deploys run make ship from the bastion.",
                author=dc.bob,
                reply_to=None,
                ping_reply=False,
                created_at=time.time() - 3 * DAY,
            )
        )

    fake_llm.script("agg/x", reply="Run `make ship` from the bastion [1].", tokens_per_s=400)
    async with discord_bot(fake_llm, tmp_path, knowledge=general, setup=setup) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        asked = await ask(bot, dc.other_channel_id, "how do billing deploys run?")
        (answer,) = dc.bot_messages(asked.id)
        link = f"https://discord.com/channels/{dc.guild_id}/{dc.channel_id}/{noted[0].id}"
        assert f"Run `make ship` from the bastion [[1]]({link})." in answer.content
        assert (
            f"**Sources**\n- [1] [Billing deploys run make ship from the bastion.]({link}) — bob · "
            in answer.content
        )
        # the link leads to the message
        guild, channel, message = (int(i) for i in re.findall(r"channels/(\d+)/(\d+)/(\d+)", link)[0])
        assert (guild, channel) == (dc.guild_id, dc.message(message).channel_id)
        assert dc.message(message).content == "Billing deploys run make ship from the bastion."


async def test_a_private_channels_knowledge_is_only_for_questions_asked_there(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    channels: dict[str, int] = {}

    def setup(dc: FakeDiscord) -> None:
        channels["staff"] = dc.add_channel(dc.guild_id, "staff", private=True)
        dc.add_user_message(
            channels["staff"],
            f"The staff wifi password is {SECRET}.",
            author=dc.bob,
            reply_to=None,
            ping_reply=False,
            created_at=time.time() - DAY,
        )

    async with discord_bot(
        fake_llm, tmp_path, knowledge=lambda dc: [dc.channel_id, channels["staff"]], setup=setup
    ) as bot:
        dc = bot.dc
        await backfilled(bot, channels["staff"])
        assert {d.visibility.value for d in (await indexed(bot)).values()} == {"private"}
        await ask(bot, dc.other_channel_id, "what is the staff wifi password?")
        await ask(bot, dc.channel_id, "what is the staff wifi password?")
        dm = dc.dm_channel_id(dc.bob)
        await dc.user_message(dm, "what is the staff wifi password?", author=dc.bob)
        await bot.settled()
        assert len(fake_llm.requests_for("agg/x")) == 3 and SECRET not in prompts(fake_llm)
        # asked in the channel itself, then in the question's thread
        asked = await dc.user_message(channels["staff"], "what is the staff wifi password?")
        await bot.settled()
        assert SECRET in prompts(fake_llm)
        fake_llm.requests.clear()
        await dc.user_message(asked.id, "and the wifi password for guests?", author=dc.bob)
        await bot.settled()
        assert SECRET in prompts(fake_llm)


async def test_silent_mode_only_shrugs_at_an_unprompted_question_nothing_matches(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(
        fake_llm, tmp_path, knowledge=general, env={"MOA_KNOWLEDGE_NO_SOURCES": "silent"}
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        question = await dc.user_message(dc.channel_id, "Who owns the billing service?")
        await bot.settled()
        assert dc.message(question.id).reactions == {"🤷": [dc.bot_id]}
        assert dc.bot_messages(dc.channel_id) == [] and dc.threads(dc.channel_id) == []
        assert fake_llm.completions == []
        # the question itself is indexed, and is knowledge for the next one (not for itself)
        assert source(dc, question) in await indexed(bot)
        # a mention always gets an answer, without the note
        asked = await ask(bot, dc.channel_id, "Who deploys on Fridays?")
        (answer,) = dc.bot_messages(asked.id)
        assert (
            "[agg/x] answer to: Who deploys on Fridays?" in answer.content
            and NO_SOURCES_NOTE not in answer.content
        )
        assert dc.message(asked.id).reactions == {}


async def test_a_shrug_discord_refuses_posts_nothing_instead(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(
        fake_llm, tmp_path, knowledge=general, env={"MOA_KNOWLEDGE_NO_SOURCES": "silent"}
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        dc.fail(ROUTE_ADD_REACTION, Failure.error(50013, status=403, message="Missing Permissions"))
        question = await dc.user_message(dc.channel_id, "Who owns the billing service?")
        await bot.settled()
        assert len(dc.requests(ROUTE_ADD_REACTION)) == 1 and dc.message(question.id).reactions == {}
        assert dc.bot_messages(dc.channel_id) == [] and dc.threads(dc.channel_id) == []


async def test_the_asker_verifies_an_answer_with_a_check_mark_and_takes_it_back(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(fake_llm, tmp_path, knowledge=general) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        asked = await ask(bot, dc.other_channel_id, "how do we rotate the signing keys?")
        answer = dc.bot_messages(asked.id)[0]
        await dc.user_react(answer.id, "✅", user=dc.bob)  # not the asker, not a curator
        await bot.settled()
        assert await indexed(bot, "verified:") == {}
        await dc.user_react(answer.id, "✅")  # alice asked
        await bot.settled()
        (verified,) = (await indexed(bot, "verified:")).values()
        assert verified.channel == str(dc.other_channel_id) and verified.visibility.value == "public"
        fake_llm.requests.clear()
        await ask(bot, dc.channel_id, "rotate the signing keys how?", author=dc.bob)
        assert "Q: how do we rotate the signing keys?" in prompts(fake_llm)
        await dc.user_react(answer.id, "✅", remove=True)
        await bot.settled()
        assert await indexed(bot, "verified:") == {}


async def test_an_answer_verified_in_a_private_channel_stays_private(fake_llm: FakeLLM, tmp_path: Path) -> None:
    channels: dict[str, int] = {}

    def setup(dc: FakeDiscord) -> None:
        channels["staff"] = dc.add_channel(dc.guild_id, "staff", private=True)

    async with discord_bot(fake_llm, tmp_path, knowledge=general, setup=setup) as bot:
        dc = bot.dc
        asked = await ask(bot, channels["staff"], f"what is the staff wifi password? It is {SECRET}, right?")
        await dc.user_react(dc.bot_messages(asked.id)[0].id, "✅")
        await bot.settled()
        (verified,) = (await indexed(bot, "verified:")).values()
        assert (verified.channel, verified.visibility.value) == (str(channels["staff"]), "private")
        fake_llm.requests.clear()
        await ask(bot, dc.other_channel_id, "what is the staff wifi password?")
        assert fake_llm.completions and SECRET not in prompts(fake_llm)


async def test_a_curators_check_mark_verifies_anyones_answer(fake_llm: FakeLLM, tmp_path: Path) -> None:
    async with discord_bot(
        fake_llm, tmp_path, knowledge=general, env=lambda dc: {"MOA_KNOWLEDGE_CURATORS": dc.bob["id"]}
    ) as bot:
        dc = bot.dc
        await backfilled(bot, dc.channel_id)
        asked = await ask(bot, dc.other_channel_id, "how do we rotate the signing keys?")
        await dc.user_react(dc.bot_messages(asked.id)[0].id, "✅", user=dc.bob)
        await bot.settled()
        (verified,) = (await indexed(bot, "verified:")).values()
        assert verified.title == "how do we rotate the signing keys?"


async def test_reactions_are_asked_for_only_with_knowledge_channels(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    async with discord_bot(fake_llm, tmp_path, knowledge=general) as bot:
        assert bot.dc.intents is not None
        assert bot.dc.intents & p.INTENT_GUILD_MESSAGE_REACTIONS
        assert not bot.dc.intents & p.INTENT_DIRECT_MESSAGE_REACTIONS
    async with discord_bot(fake_llm, tmp_path) as bot:
        assert bot.dc.intents is not None and not bot.dc.intents & p.INTENT_GUILD_MESSAGE_REACTIONS
