"""Team knowledge from Slack, through the real adapter (slack-bolt, slack_sdk) against the fake Slack and the real
core against the fake LLM: knowledge channels backfilled and indexed live, edits and deletions, shared files, ✅
reactions, the privacy rule, the no-sources modes and the cited sources on both answer paths. (`moa-bot run` as a
process: `test_run_process.py`.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.formatting import as_written, sources_blocks, to_mrkdwn
from moa.conversation import SourceRef
from moa.knowledge import Audience, Cursor, Kind, Visibility
from moa.prompts import NO_SOURCES_NOTE
from tests.fakes import slack_payloads as sp
from tests.fakes.documents import pdf_with_text, png_image
from tests.fakes.llm import FakeLLM, Failure
from tests.fakes.slack import FakeSlack
from tests.slack_harness import (
    WINDOW_S,
    SlackBot,
    citing,
    eventually,
    markdown_of,
    mention,
    script_models,
    slack_bot,
)

KC = sp.KNOWLEDGE_CHANNEL_ID
CH = sp.CHANNEL_ID
PRIVATE = sp.PRIVATE_CHANNEL_ID
DAY = 86_400.0
Json = dict[str, Any]


def ts_of(body: Json) -> str:
    return str(body["event"]["ts"])


def source(channel: str, ts: str) -> str:
    return f"slack:{sp.TEAM_ID}:{channel}:{ts}"


async def sources(bot: SlackBot, prefix: str = "slack:") -> set[str]:
    assert bot.librarian is not None
    return {d.source for d in await bot.librarian.documents(prefix)}


async def found(bot: SlackBot, text: str, channel: str = KC) -> list[str]:
    """The texts a question in `channel` would be given."""
    assert bot.librarian is not None
    audience = Audience("slack", sp.TEAM_ID, frozenset({channel}))
    return [p.text for p in await bot.librarian.search(text, audience, 10)]


def prompts(llm: FakeLLM, since: int = 0) -> str:
    return "\n".join(json.dumps(r.body) for r in llm.completions[since:])


async def permalink(slack: FakeSlack, channel: str, ts: str) -> str:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return str((await client.chat_getPermalink(channel=channel, message_ts=ts))["permalink"])


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(window_s=WINDOW_S) as fake:
        yield fake


# ---------------------------------------------------------------------------------------------- backfill


async def test_backfill_reads_the_history_and_threads_of_the_window_once(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    seeded = slack.seed_history(KC, 40, days=40, threads_every=4, replies=2)
    since = time.time() - 20 * DAY
    # the window's top-level messages and their threads (a reply to an older message comes with its thread)
    window = [m for m in slack.messages(KC) if float(m["thread_ts"] or m["ts"]) > since]
    days = {"MOA_KNOWLEDGE_BACKFILL_DAYS": "20"}
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, env=days) as bot:
        await bot.indexed()
        assert await sources(bot) == {source(KC, m["ts"]) for m in window}, "the window, with its threads"
        [history] = slack.calls_to("conversations.history")
        assert abs(float(history.params["oldest"]) - since) < 60, "history is read back 20 days, not further"
        assert bot.librarian is not None
        [cursor] = (await bot.librarian.stats()).cursors
        assert (cursor.done, cursor.messages) == (True, len(window)), "the backfill is recorded done, with a count"
        newest = seeded[-1]
        [document] = [d for d in await found(bot, newest["text"]) if d == newest["text"]]
        assert document
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, env=days) as bot:
        await bot.indexed()
        assert len(slack.calls_to("conversations.history")) == 1, "a finished backfill is never read again"


async def test_backfilled_documents_carry_author_thread_and_slacks_permalink(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    [parent] = slack.seed_history(KC, 1, days=1, threads_every=1, replies=1, text=lambda i: "the deploy key rotates",
                                  reply_text=lambda i, k: "the vault keeps it")
    [reply] = slack.replies_of(KC, parent["ts"])
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        await bot.indexed()
        assert bot.librarian is not None
        audience = Audience("slack", sp.TEAM_ID)
        [top] = await bot.librarian.search("deploy key rotates", audience, 1)
        [threaded] = await bot.librarian.search("vault keeps", audience, 1)
        assert (top.source, threaded.source) == (source(KC, parent["ts"]), source(KC, reply["ts"]))
        assert (top.author, threaded.author) == ("alice", "bob"), "authors by their display names"
        assert top.link == await permalink(slack, KC, parent["ts"]), "the permalink Slack gives"
        assert threaded.link == await permalink(slack, KC, reply["ts"]), "a reply's permalink names its thread"
        assert top.created_at == float(parent["ts"]) and top.visibility is Visibility.PUBLIC
        # one chat.getPermalink showed where the workspace's archives are; the test's own two calls follow it
        assert len(slack.calls_to("chat.getPermalink")) == 3


async def test_backfill_reads_on_from_its_oldest_message_when_slack_refuses_the_stored_cursor(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    seeded = slack.seed_history(KC, 10, days=10, threads_every=0)
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge=(), index=True) as bot:
        assert bot.librarian is not None  # a backfill that stopped at the 6th newest message, long ago
        stored = Cursor("slack", sp.TEAM_ID, KC, cursor="expired-cursor", messages=5, oldest=float(seeded[5]["ts"]))
        await bot.librarian.save_cursor(stored)
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        await bot.indexed()
        refused, resumed = slack.calls_to("conversations.history")
        assert (refused.params["cursor"], refused.error) == ("expired-cursor", "invalid_cursor")
        assert resumed.params["latest"] == seeded[5]["ts"] and "cursor" not in resumed.params
        assert await sources(bot) == {source(KC, m["ts"]) for m in seeded[:6]}, "read on from where it was"
        [cursor] = (await bot.librarian.stats()).cursors
        assert cursor.done and cursor.messages == 11


async def test_a_knowledge_channel_the_bot_cannot_read_is_backfilled_once_it_is_invited(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack.add_channel("C0LATER", "later", is_member=False)
    [old] = slack.seed_history("C0LATER", 1, days=3, threads_every=0, text=lambda i: "the old runbook")
    caplog.set_level(logging.WARNING, "adapters.slack")
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={"C0LATER"}, index=True) as bot:
        await bot.indexed()
        assert "knowledge channel C0LATER: the bot cannot read its history (not_in_channel)" in caplog.text
        assert "/invite @moa" in caplog.text and "Traceback" not in caplog.text
        slack.set_member("C0LATER", True)  # invited: its messages arrive from now on
        await bot.indexed(slack.push_event(sp.event_callback(sp.message("the new runbook", channel="C0LATER"))))
        assert source("C0LATER", old["ts"]) in await sources(bot), "the history is read once the bot can"


# ---------------------------------------------------------------------------------------------- live events


async def test_messages_and_replies_in_knowledge_channels_are_indexed_as_they_arrive(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        top = sp.event_callback(sp.message("Billing deploys run from the bastion.", channel=KC))
        await bot.indexed(slack.push_event(top))
        reply = sp.event_callback(
            sp.thread_reply("Rollbacks too.", thread_ts=ts_of(top), channel=KC, user=sp.OTHER_USER_ID)
        )
        elsewhere = sp.event_callback(sp.message("Billing deploys chat elsewhere."))
        direct = sp.event_callback(sp.dm_message("Billing deploys in private."))
        await bot.indexed(*(slack.push_event(e) for e in (reply, elsewhere, direct)))
        assert await sources(bot) == {source(KC, ts_of(top)), source(KC, ts_of(reply))}, \
            "only the knowledge channel's messages"
        assert bot.librarian is not None
        [threaded] = await bot.librarian.search("rollbacks", Audience("slack", sp.TEAM_ID), 1)
        assert threaded.author == "bob" and threaded.link == await permalink(slack, KC, ts_of(reply))
        await bot.settled()
        assert await found(bot, "how do billing deploys run?", CH) == ["Billing deploys run from the bastion."], \
            "a question elsewhere in the workspace finds it"


async def test_an_edit_is_indexed_again_and_a_deletion_leaves_the_index_at_once(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        note = sp.event_callback(sp.message("The staging password is hunter2.", channel=KC))
        await bot.indexed(slack.push_event(note))
        await bot.settled()
        answered = bot.aggregations
        await bot.indexed(slack.push_event(slack.edit_message(KC, ts_of(note), "The staging password is swordfish.")))
        assert await found(bot, "staging password") == ["The staging password is swordfish."], "edited: re-indexed"
        shared = slack.share_file(KC, "staging.md", "# Staging\n\nThe staging password moved to the vault.")
        await bot.indexed(slack.push_event(shared))
        assert len(await found(bot, "staging password")) == 2
        await bot.indexed(slack.push_event(slack.delete_message(KC, ts_of(note))))
        await bot.indexed(slack.push_event(slack.delete_message(KC, ts_of(shared))))
        assert await found(bot, "staging password") == [], "deleted messages, and the file shared with one, are gone"
        await bot.settled()
        assert bot.aggregations == answered, "edits, deletions and a file without words are no questions"


async def test_a_deleted_thread_parent_leaves_while_its_replies_stay(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        parent = sp.event_callback(sp.message("Where are the backups?", channel=KC))
        reply = sp.event_callback(sp.thread_reply("Backups are in the cold bucket.", thread_ts=ts_of(parent),
                                                  channel=KC))
        await bot.indexed(slack.push_event(parent), slack.push_event(reply))
        tombstone = slack.delete_message(KC, ts_of(parent))
        assert tombstone["event"]["subtype"] == "message_changed"  # Slack keeps a tombstone while replies remain
        await bot.indexed(slack.push_event(tombstone))
        assert await sources(bot) == {source(KC, ts_of(reply))}


async def test_a_deletion_during_a_backfill_is_not_undone_by_the_page_read_before_it(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    doomed, threaded = slack.seed_history(KC, 2, days=2, threads_every=2, replies=1,
                                          text=lambda i: f"secret plan {i}")
    slack.set_latency("conversations.replies", 1.0)  # the page's thread is read slowly
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        await eventually(lambda: slack.calls_to("conversations.history"), what="the history page read")
        await bot.indexed(slack.push_event(slack.delete_message(KC, doomed["ts"])), within=3.0)
        assert source(KC, doomed["ts"]) not in await sources(bot)
        assert source(KC, threaded["ts"]) in await sources(bot), "the rest of the page is indexed"


# ---------------------------------------------------------------------------------------------- files


async def test_shared_text_and_pdf_files_are_downloaded_with_the_bot_token_and_indexed(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    env = {"MOA_KNOWLEDGE_MAX_FILE_MB": "0.01"}  # 10 KiB
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, env=env) as bot:
        shares = [
            slack.share_file(KC, "notes.txt", b"The VPN rotates monthly."),
            slack.share_file(KC, "handbook.pdf", pdf_with_text(["Deploys run at 10:00 UTC."])),
            slack.share_file(KC, "diagram.png", png_image(4, 3)),
            slack.share_file(KC, "huge.txt", b"x " * 10_000),
        ]
        await bot.indexed(*(slack.push_event(s) for s in shares))
        files = {d.title: d for d in await bot.librarian.documents() if d.kind is Kind.FILE}  # type: ignore[union-attr]
        assert set(files) == {"notes.txt", "handbook.pdf"}, "text and PDF indexed, an image and a big file not"
        assert await found(bot, "when do deploys run") == ["handbook.pdf\n\nDeploys run at 10:00 UTC."]
        [vpn] = [d.source for d in files.values() if d.title == "notes.txt"]
        note = ts_of(shares[0])
        assert vpn == f"{source(KC, note)}/file:{shares[0]['event']['files'][0]['id']}"
        assert [d["authorized"] for d in slack.downloads] == [True, True], \
            "downloaded with the bot token; the image and the big file never downloaded"
        assert "skipped file 'diagram.png'" in caplog.text and "skipped file 'huge.txt'" in caplog.text
        await bot.settled()
        assert bot.aggregations == 0, "files shared without a word are no questions"


async def test_a_file_the_bot_may_not_download_is_skipped_and_logged(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        shared = slack.share_file(KC, "plans.md", "# Plans")
        # unshared before the bot came to read it: Slack sends a token that may not read a file to its sign-in page
        slack.files[shared["event"]["files"][0]["id"]]["channels"].clear()
        await bot.indexed(slack.push_event(shared))
        # the backfill may read the message too and try again: every try ends at the redirect, none follows it
        assert {d["status"] for d in slack.downloads} == {302}, "the sign-in redirect is not followed"
        assert "skipped file 'plans.md'" in caplog.text and "HTTP 302" in caplog.text
        assert "Traceback" not in caplog.text and await sources(bot) == set()


# ---------------------------------------------------------------------------------------------- ✅ reactions


async def answered_in(bot: SlackBot, channel: str, question: str) -> tuple[Json, str]:
    """A question asked with a mention, and the bot's answer's ts."""
    body = mention(question, channel=channel)
    await bot.settled(bot.slack.push_event(body))
    [answer] = bot.thread(channel, ts_of(body))
    return body, str(answer["ts"])


async def test_a_check_mark_by_the_asker_verifies_the_answer_and_taking_it_away_unverifies_it(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        _, answer = await answered_in(bot, CH, "who owns the billing service?")
        await bot.indexed(slack.push_event(slack.react(CH, answer, "white_check_mark")))
        [verified] = await bot.librarian.documents("verified:")  # type: ignore[union-attr]
        assert verified.visibility is Visibility.PUBLIC and verified.channel == CH
        [passage] = await bot.librarian.search("owns billing service", Audience("slack", sp.TEAM_ID), 1)  # type: ignore[union-attr]
        assert passage.link == await permalink(slack, CH, answer), "the verified entry links to the answer"
        assert passage.text.startswith("Q: who owns the billing service?\n\nA: [agg/x] answer to:")
        await bot.indexed(slack.push_event(slack.unreact(CH, answer, "white_check_mark")))
        assert await bot.librarian.documents("verified:") == []  # type: ignore[union-attr]


async def test_only_the_asker_or_a_curator_can_verify_and_only_the_bots_answers(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "adapters.slack")
    slack.add_user("U0CAROL", "carol")
    env = {"MOA_KNOWLEDGE_CURATORS": "U0CAROL"}
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, env=env) as bot:
        question, answer = await answered_in(bot, PRIVATE, "what is the launch date?")
        await bot.indexed(slack.push_event(slack.react(PRIVATE, answer, "white_check_mark", user=sp.OTHER_USER_ID)))
        assert await bot.librarian.documents("verified:") == [], "bob neither asked nor curates"  # type: ignore[union-attr]
        assert f"✅ added on {answer} in {PRIVATE} by {sp.OTHER_USER_ID}: not_allowed" in caplog.text
        await bot.indexed(slack.push_event(slack.react(PRIVATE, ts_of(question), "white_check_mark")))
        assert await bot.librarian.documents("verified:") == [], "a ✅ on a person's message verifies nothing"  # type: ignore[union-attr]
        await bot.indexed(slack.push_event(slack.react(PRIVATE, answer, "white_check_mark", user="U0CAROL")))
        [verified] = await bot.librarian.documents("verified:")  # type: ignore[union-attr]
        assert verified.visibility is Visibility.PRIVATE, "an answer in a private channel stays in it"


async def test_a_streamed_answer_is_verified_by_its_own_message(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, streaming=True) as bot:
        _, answer = await answered_in(bot, CH, "what is a streamed answer?")
        assert slack.stream(answer).state == "stopped"
        await bot.indexed(slack.push_event(slack.react(CH, answer, "white_check_mark")))
        assert len(await bot.librarian.documents("verified:")) == 1  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- privacy


async def test_a_private_channels_knowledge_is_used_only_for_questions_asked_in_it(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    fact = "The launch codename is BLUEHERON."
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC, PRIVATE}, index=True) as bot:
        await bot.indexed(slack.push_event(sp.event_callback(sp.message(fact, channel=PRIVATE,
                                                                        channel_type="group"))))
        await bot.settled()
        before = len(fake_llm.completions)
        for body in (mention("what is the launch codename?"), mention("launch codename?", channel=KC),
                     sp.event_callback(sp.dm_message("what is the launch codename?"))):
            await bot.settled(slack.push_event(body))
        assert len(fake_llm.completions) == before + 9 and "BLUEHERON" not in prompts(fake_llm, before), \
            "asked in another channel or a DM, the private channel's fact reaches no model"
        asked = len(fake_llm.completions)
        await bot.settled(slack.push_event(mention("what is the launch codename?", channel=PRIVATE)))
        assert all("BLUEHERON" in json.dumps(r.body) for r in fake_llm.completions[asked:]), \
            "asked in the private channel, every model gets it"


async def test_the_assistant_pane_uses_the_knowledge_of_the_channel_in_view(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    fact = "The launch codename is BLUEHERON."
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={PRIVATE}, index=True) as bot:
        await bot.indexed(slack.push_event(sp.event_callback(sp.message(fact, channel=PRIVATE,
                                                                        channel_type="group"))))
        for viewing, sees in ((CH, False), (PRIVATE, True)):
            started = slack.start_assistant_thread(context_channel=viewing)
            await bot.settled(slack.push_event(started))
            thread = started["event"]["assistant_thread"]
            before = len(fake_llm.completions)
            question = sp.dm_message("what is the launch codename?", channel=thread["channel_id"],
                                     thread_ts=thread["thread_ts"])
            await bot.settled(slack.push_event(sp.event_callback(question)))
            assert ("BLUEHERON" in prompts(fake_llm, before)) is sees, f"the pane beside {viewing}"


# ---------------------------------------------------------------------------------------------- no sources


async def test_silent_mode_leaves_a_shrug_on_unprompted_questions_no_source_matches(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    env = {"MOA_KNOWLEDGE_NO_SOURCES": "silent"}
    slack.seed_history(KC, 1, days=1, text=lambda i: "Payroll runs on the 25th.")
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, env=env) as bot:
        await bot.indexed()
        unmatched = sp.event_callback(sp.message("anyone seen my umbrella?", channel=KC))
        await bot.indexed(slack.push_event(unmatched))
        await bot.settled()
        assert bot.thread(KC, ts_of(unmatched)) == [] and fake_llm.requests == [], "no reply, no model asked"
        assert slack.message(KC, ts_of(unmatched))["reactions"] == {"shrug": [sp.BOT_USER_ID]}, "a 🤷 instead"
        matched = sp.event_callback(sp.message("when does payroll run?", channel=KC))
        asked = sp.event_callback(sp.app_mention("anyone seen my hat?", channel=KC))
        await bot.settled(slack.push_event(matched), slack.push_event(asked))
        assert bot.answer(KC, ts_of(matched)) == "[agg/x] answer to: when does payroll run?", \
            "a question a source matches is answered"
        assert bot.answer(KC, ts_of(asked)).startswith("[agg/x] answer to: anyone seen my hat?"), \
            "a mention is always answered"
        assert NO_SOURCES_NOTE not in bot.answer(KC, ts_of(asked))


# ---------------------------------------------------------------------------------------------- cited sources


async def test_a_streamed_answer_ends_with_a_block_linking_its_sources(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    script_models(fake_llm, reply=citing)
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, streaming=True,
                         script=False) as bot:
        fact = sp.event_callback(sp.message("Deploys run at ten, from the bastion.", channel=KC))
        await bot.indexed(slack.push_event(fact))
        await bot.settled()
        _, answer = await answered_in(bot, CH, "when do deploys run?")
        stream = slack.stream(answer)
        link = await permalink(slack, KC, ts_of(fact))
        assert stream.state == "stopped" and stream.markdown.endswith("when do deploys run? [1]"), \
            "the answer streamed as written, to its end"
        [sources_block] = [b for b in stream.final_blocks or [] if b["type"] == "section"]
        assert sources_block["text"]["text"] == f"*Sources*\n[1] <{link}|Deploys run at ten, from the bastion.> — alice · " \
            f"{time.strftime('%Y-%m-%d', time.gmtime(float(ts_of(fact))))}"
        assert [b["type"] for b in stream.final_blocks or []] == ["section", "context", "context_actions", "actions"], \
            "then the footer, 👍/👎 and Show drafts"
        assert slack.calls_to("chat.update") == [], "finished by stopStream, not edited"


async def test_an_edited_answer_links_its_markers_and_lists_its_sources(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    script_models(fake_llm, reply=citing)
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, script=False) as bot:
        fact = sp.event_callback(sp.message("Deploys run at ten, from the bastion.", channel=KC))
        await bot.indexed(slack.push_event(fact))
        await bot.settled()
        _, answer = await answered_in(bot, CH, "when do deploys run?")
        link = await permalink(slack, KC, ts_of(fact))
        shown = slack.message(CH, answer)
        assert markdown_of(shown).startswith(f"[agg/x] answer to: when do deploys run? [[1]]({link})\n\n**Sources**\n"
                                             f"- [1] [Deploys run at ten, from the bastion.]({link}) — alice · ")
        assert f"<{link}|[1]>" in shown["text"], "the mrkdwn fallback links the marker too"


def test_sources_render_as_one_mrkdwn_section_and_the_stream_text_as_written() -> None:
    refs = (
        SourceRef(1, "Deploy <runbook>", "alice", 1_700_000_000, "https://x.slack.com/archives/C1/p1", "message"),
        SourceRef(2, "notes.md", "", 0, "/srv/docs/notes.md", "local"),
    )
    [block] = sources_blocks(refs)
    assert block["text"]["text"] == ("*Sources*\n[1] <https://x.slack.com/archives/C1/p1|Deploy &lt;runbook&gt;> — "
                                     "alice · 2023-11-14\n[2] notes.md (`/srv/docs/notes.md`)")
    assert sources_blocks(()) == []
    final = "Deploys [[1]](https://x.slack.com/archives/C1/p1) and [2].\n\n**Sources**\n- [1] ..."
    assert as_written(final, refs) == "Deploys [1] and [2]."
    assert as_written(final, ()) == final
    assert to_mrkdwn("see [[1]](https://x.example/a)") == "see <https://x.example/a|[1]>"


async def test_edits_deletions_and_joins_in_a_knowledge_channel_never_become_questions(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        events = [
            sp.message_changed(ts=sp.next_ts(), text=f"<@{sp.BOT_USER_ID}> edited", previous_text="x", channel=KC,
                               user=sp.USER_ID, bot_id=None),
            {**sp.message("gone", channel=KC), "subtype": "message_deleted", "deleted_ts": sp.next_ts()},
            {**sp.message(f"<@{sp.BOT_USER_ID}>", channel=KC), "subtype": "channel_join"},
            sp.bot_message("another bot's note", channel=KC),
        ]
        await bot.indexed(*(slack.push_event(sp.event_callback(e)) for e in events))
        await bot.settled()
        assert fake_llm.requests == [] and slack.calls_to("chat.postMessage") == []
        assert await sources(bot) == {source(KC, events[0]["message"]["ts"])}, "the edited message is indexed"



async def test_a_message_in_a_knowledge_channel_is_not_its_own_source(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path
) -> None:
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        await bot.indexed()  # the channel's (empty) backfill is done
        said = sp.event_callback(sp.message("Deploy freezes start on Friday.", channel=KC))
        await bot.indexed(slack.push_event(said))
        assert "<source" not in prompts(fake_llm), "its answer is not given the message itself"
        assert bot.answer(KC, ts_of(said)).endswith(NO_SOURCES_NOTE)
        assert await found(bot, "deploy freezes") == ["Deploy freezes start on Friday."], "indexed once answered"


async def test_a_channel_whose_kind_slack_will_not_tell_is_kept_private(
    fake_llm: FakeLLM, slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack.seed_history(KC, 3, days=3, threads_every=0)
    slack.fail("conversations.info", Failure.error("missing_scope"))  # an app installed without channels:read
    async with slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True) as bot:
        await bot.indexed()
        documents = await bot.librarian.documents()  # type: ignore[union-attr]
        assert len(documents) == 3 and {d.visibility for d in documents} == {Visibility.PRIVATE}
        assert caplog.text.count("could not tell whether C0KNOWLEDGE is a private channel (") == 1


def test_the_manifest_asks_for_what_team_knowledge_uses() -> None:
    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "slack-manifest.yaml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"channels:history", "groups:history", "channels:read", "groups:read", "files:read", "reactions:read",
            "reactions:write", "users:read"} <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "message.groups", "reaction_added", "reaction_removed"} <= events
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for scope in ("channels:read", "files:read", "reactions:read", "reactions:write"):
        assert f"`{scope}`" in readme, f"README says why the app needs {scope}"


async def test_a_cited_answer_longer_than_one_stream_lists_its_sources_in_the_continuation(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 30 for i in range(4))
    long = f"Deploys run at ten [1].\n\n{paragraphs}\n\nFrom the bastion [1]."  # a marker in each part
    script_models(fake_llm, reply=lambda body: long if citing(body).endswith("[1]") else "no sources")
    async with (
        FakeSlack(window_s=WINDOW_S, stream_max_total_chars=1_000) as slack,
        slack_bot(fake_llm, tmp_path, slack=slack, knowledge={KC}, index=True, streaming=True,
                  stream_chars=1_000, script=False) as bot,
    ):
        fact = sp.event_callback(sp.message("Deploys run at ten, from the bastion.", channel=KC))
        await bot.indexed(slack.push_event(fact))
        body = mention("when do deploys run?")
        await bot.settled(slack.push_event(body))
        first, *rest = bot.thread(CH, ts_of(body))
        link = await permalink(slack, KC, ts_of(fact))
        stream = slack.stream(first["ts"])
        assert stream.state == "stopped" and rest, "the answer went on below the full stream"
        assert stream.markdown.startswith("Deploys run at ten [1].\n\nParagraph 0: ")
        continued = "\n".join(markdown_of(m) for m in rest)
        assert "Paragraph 0: " not in continued, "the continuation does not repeat what was streamed"
        assert continued.endswith(f"From the bastion [[1]]({link}).\n\n**Sources**\n"
                                  f"- [1] [Deploys run at ten, from the bastion.]({link}) — alice · "
                                  f"{time.strftime('%Y-%m-%d', time.gmtime(float(ts_of(fact))))}")
