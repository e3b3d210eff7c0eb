"""Slack text both ways, and which events are questions: pure functions, no network."""

from __future__ import annotations

import re

import pytest

from adapters.slack.events import addressed, ts_before
from adapters.slack.formatting import (
    FALLBACK_CHARS,
    MESSAGE_CHARS,
    ZWSP,
    answer_messages,
    asked_message,
    clean_question,
    mentioned_users,
    neutralize,
    streaming_message,
    to_mrkdwn,
)
from tests.fakes import slack_payloads as sp

BOT = sp.BOT_USER_ID


# ---------------------------------------------------------------------------------------------- incoming


def test_question_loses_the_bot_mention_and_slack_escapes() -> None:
    text = f"<@{BOT}> is 1 &lt; 2 &amp;&amp; 3 &gt; 2? see <https://a.example/x?y=1&amp;z=2|the docs>"
    assert clean_question(text, bot_user_id=BOT, names={}) == (
        "is 1 < 2 && 3 > 2? see the docs (https://a.example/x?y=1&z=2)"
    )
    assert clean_question(f"hey <@{BOT}> what now", bot_user_id=BOT, names={}) == "hey what now"
    # an escaped entity that spells markup stays text: `&lt;@U1&gt;` is what a user typed, not a mention
    assert clean_question("&lt;@U0BOB&gt; &amp;lt;", bot_user_id=BOT, names={}) == "<@U0BOB> &lt;"


def test_user_mentions_stay_readable() -> None:
    text = f"<@{BOT}> ask <@U0BOB> and <@U0CAROL|carol> in <#C0RANDOM|random> or <#C0X>, cc <!here> <!subteam^S1|@devs>"
    assert mentioned_users(text) == {BOT, "U0BOB"}
    cleaned = clean_question(text, bot_user_id=BOT, names={"U0BOB": "bob"})
    assert cleaned == "ask @bob and @carol in #random or #C0X, cc @here @devs"
    # a name that could not be looked up leaves the mention as Slack wrote it
    assert clean_question("ask <@U0NOBODY>", bot_user_id=BOT, names={}) == "ask <@U0NOBODY>"
    assert (
        clean_question("mail <mailto:a@b.c|a@b.c> <https://x.y>", bot_user_id=BOT, names={})
        == "mail a@b.c https://x.y"
    )


def test_timestamps_compare_as_numbers() -> None:
    assert ts_before("1700000000.000100", "1700000000.000200")
    assert ts_before("999999999.9", "1000000000.1")  # as strings this would be the other way round
    assert not ts_before("1700000000.1", "1700000000.1")


# ---------------------------------------------------------------------------------------------- events


def body(event: dict[str, object]) -> dict[str, object]:
    return sp.event_callback(event)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (sp.app_mention("hi"), "mention"),
        (sp.message(f"<@{BOT}> hi"), "mention"),  # the `message` twin of an app_mention
        (sp.dm_message("hi"), "dm"),
        ({k: v for k, v in sp.dm_message("no channel_type").items() if k != "channel_type"}, "dm"),
        (sp.message("hi", channel=sp.KNOWLEDGE_CHANNEL_ID), "knowledge"),
        (
            sp.thread_reply("more", thread_ts="1700000000.000001", channel=sp.KNOWLEDGE_CHANNEL_ID),
            "knowledge",
        ),
        (sp.thread_reply(f"<@{BOT}> more", thread_ts="1700000000.000001"), "mention"),
        (
            {
                **sp.thread_reply(f"<@{BOT}> also in channel", thread_ts="1700000000.000001"),
                "subtype": "thread_broadcast",
            },
            "mention",
        ),
        ({**sp.dm_message("with a file"), "subtype": "file_share"}, "dm"),
    ],
)
def test_messages_for_the_bot(event: dict[str, object], kind: str) -> None:
    incoming = addressed(body(event), bot_user_id=BOT, knowledge_channels={sp.KNOWLEDGE_CHANNEL_ID})
    assert incoming is not None and incoming.kind == kind
    assert incoming.team == sp.TEAM_ID and incoming.thread_ts == (event.get("thread_ts") or event["ts"])
    assert incoming.message_key == f"msg:{sp.TEAM_ID}:{event['channel']}:{event['ts']}"


@pytest.mark.parametrize(
    "event",
    [
        sp.message("people talking"),
        sp.thread_reply("a reply without a mention", thread_ts="1700000000.000001"),
        sp.bot_message(f"<@{BOT}> from another bot"),
        sp.bot_message("legacy integration", subtype="bot_message", user=None, channel_type="im"),
        sp.bot_message("my own echo", bot_id=sp.BOT_ID, user=BOT, app_id=sp.API_APP_ID, channel_type="im"),
        sp.message_changed(
            ts="1700000000.000001", text=f"<@{BOT}> new", previous_text="old", user=sp.USER_ID, bot_id=None
        ),
        {**sp.dm_message("bye"), "subtype": "message_deleted"},
        {**sp.message(f"<@{BOT}> joined"), "subtype": "channel_join"},
    ],
)
def test_messages_not_for_the_bot(event: dict[str, object]) -> None:
    assert addressed(body(event), bot_user_id=BOT, knowledge_channels={sp.KNOWLEDGE_CHANNEL_ID}) is None


# ---------------------------------------------------------------------------------------------- outgoing


def test_pings_are_neutralized() -> None:
    text = "<!channel> <!here|here> <!everyone> <!subteam^S0DEVS|@devs> <!subteam^S0X> <@U0BOB> <@U0BOB|bob> @here"
    out = neutralize(text)
    assert out == " ".join(
        f"@{ZWSP}{n}" for n in ("channel", "here", "everyone", "devs", "group", "U0BOB", "bob", "here")
    )
    assert not re.search(r"<[!@]|(?<!\u200b)@(here|channel|everyone)", out.replace(f"@{ZWSP}", ""))
    assert neutralize("mail me at a@here.com, @channels") == "mail me at a@here.com, @channels"


def test_markdown_goes_in_a_markdown_block_unchanged_with_a_mrkdwn_fallback() -> None:
    md = (
        "# Write-ahead log\n\n"
        "A **WAL** is *append-only*; see [the docs](https://sqlite.org/wal.html) & ~~old~~ notes.\n\n"
        "- first\n- second\n  * nested\n1. one\n\n"
        "> quoted <b>\n\n"
        "```python\nif a < b and c > d:\n    print('**not bold**')\n```\n\n"
        "Inline `x < y` code."
    )
    [message] = answer_messages(md, "test · a, b → x · 1.0 s")
    assert message.blocks[0] == {"type": "markdown", "text": md}
    assert message.blocks[1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "test · a, b → x · 1.0 s"}],
    }
    assert message.text.split("\n") == [
        "*Write-ahead log*",
        "",
        "A *WAL* is _append-only_; see <https://sqlite.org/wal.html|the docs> &amp; ~old~ notes.",
        "",
        "• first",
        "• second",
        "  • nested",
        "1. one",
        "",
        "> quoted &lt;b&gt;",
        "",
        "```",
        "if a &lt; b and c &gt; d:",
        "    print('**not bold**')",
        "```",
        "",
        "Inline `x &lt; y` code.",
        "",
        "_test · a, b → x · 1.0 s_",
    ]


def test_to_mrkdwn_headings_and_emphasis() -> None:
    assert to_mrkdwn("## **Bold** heading ##") == "*Bold heading*"
    assert to_mrkdwn("__strong__ and _em_ and snake_case_name") == "*strong* and _em_ and snake_case_name"
    assert to_mrkdwn("2 * 3 * 4") == "2 * 3 * 4"


def test_long_answers_split_without_cutting_code_blocks_open() -> None:
    code = "```sql\n" + "\n".join(f"SELECT {i} FROM t WHERE x < {i};" for i in range(300)) + "\n```"
    md = "\n\n".join(["Intro paragraph. " * 40, code, "Outro paragraph. " * 40])
    messages = answer_messages(md, "footer")
    assert len(messages) >= 3
    texts = [m.blocks[0]["text"] for m in messages]
    for text in texts:
        assert len(text) <= MESSAGE_CHARS
        assert text.count("```") % 2 == 0  # every piece closes what it opens
    assert all("```sql" in t for t in texts if "SELECT" in t)  # a reopened block keeps its language
    assert [footer for m in messages for b in m.blocks if b["type"] == "context" for footer in [b]] == [
        messages[-1].blocks[-1]
    ]
    assert all(len(m.text) <= FALLBACK_CHARS for m in messages)
    joined = "\n".join(texts)
    assert all(f"SELECT {i} FROM" in joined for i in range(300))


def test_fallback_text_stays_postable_when_escaping_grows_it() -> None:
    [message] = answer_messages("<&>" * 1100, "f")  # 3,300 characters that escape to ~13,000
    assert len(message.text) <= FALLBACK_CHARS and message.text.endswith("…\n\n_f_")
    assert message.blocks[0]["text"] == "<&>" * 1100


def test_interim_edits_stay_short_and_close_fences() -> None:
    message = streaming_message("```\n" + "x\n" * 5000, "Writing…")
    shown = message.blocks[0]["text"]
    assert len(shown) <= MESSAGE_CHARS and shown.count("```") % 2 == 0 and "still writing" in shown
    assert streaming_message("", "Writing…").blocks == []


def test_asked_message_names_the_user_and_pings_nobody_else() -> None:
    message = asked_message(sp.USER_ID, "tell <!channel> about a < b " + "x" * 5000)
    assert message.text.startswith(f"<@{sp.USER_ID}> asked: tell @{ZWSP}channel about a &lt; b ")
    assert len(message.text) < 3100 and message.text.endswith("…")
