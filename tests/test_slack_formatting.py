"""Slack text both ways, and which events are questions (pure functions), and the outbox seam every message
leaves through (against the fake Slack)."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from adapters.base import NullObserver
from adapters.slack.api import SlackApi, web_client
from adapters.slack.addressing import addressed, ts_before
from tests.slack_harness import answer_messages
from adapters.slack.formatting import (
    FALLBACK_CHARS,
    MESSAGE_CHARS,
    ZWSP,
    SlackMessage,
    asked_message,
    clean_question,
    mentioned_users,
    neutralize,
    notice_message,
    status_message,
    streaming_message,
    to_mrkdwn,
)
from adapters.slack.outbox import Outbox, SlackPacing
from tests.fakes import slack_payloads as sp
from tests.fakes.slack import FakeSlack

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


def test_to_mrkdwn_knows_fences_as_render_does() -> None:
    md = "- a\n  - run:\n\n    ```bash\n    a < b **x**\n    ```\n```x``` is *inline*"
    assert to_mrkdwn(md).split("\n") == [
        "• a",
        "  • run:",
        "",
        "```",
        "    a &lt; b **x**",
        "```",
        "```x``` is _inline_",
    ]


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


# ---------------------------------------------------------------------------------------------- no pings, ever

WEB = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
PLAIN_PING = re.compile(r"(?<![\w@])@(here|channel|everyone)\b", re.IGNORECASE)
COMMONMARK = MarkdownIt("commonmark")
ASKER = "U0ASKER"


def _angle_targets(text: str) -> list[str]:
    """Targets of `<…>` tokens as Slack reads them: from a raw `<` to the next `>`, before any `|` label."""
    targets = []
    for match in re.finditer("<", text):
        end = text.find(">", match.end())
        if end >= 0:
            targets.append(text[match.end() : end].split("|", 1)[0].strip())
    return targets


def _commonmark_tokens(text: str) -> list[Token]:
    tokens = []
    for token in COMMONMARK.parse(text):
        tokens.append(token)
        tokens.extend(token.children or [])
    return tokens


def live_markup(text: str, surface: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The live Slack markup in a string bound for Slack that the bot did not put there on purpose.

    mrkdwn (`text`, context elements, ephemeral replies): Slack parses raw `<…>` tokens only (`&lt;` is an
    escaped `<`, never markup); every token must be a web/mail link or a mention of an `allowed` user.
    markdown blocks: CommonMark first (a real parser finds link and image destinations, backslash escapes and
    entities are undone, `&lt;` becomes `<`), then Slack's `<!…>`, `<@…>`, `<#…>` markup in any of that text, or
    a destination starting with `!`, `@` or `#`, is live. Read conservatively: code is not exempt.
    Plain `@here`, `@channel`, `@everyone` count as pings on both surfaces.
    """
    ours = {f"@{user}" for user in allowed}
    if surface == "mrkdwn":
        strings = [text]
        hrefs: list[str] = []
    else:
        decoded = html.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text))
        tokens = _commonmark_tokens(text)
        hrefs = [
            unquote(t.attrGet("href") or t.attrGet("src") or "")
            for t in tokens
            if t.type in ("link_open", "image")
        ]
        strings = [text, decoded, *hrefs, *(t.content for t in tokens)]
    live = [f"@{m.group(1)}" for s in strings for m in PLAIN_PING.finditer(s)]
    for target in (t for s in strings for t in _angle_targets(s)):
        special = target[:1] in ("!", "@", "#")
        if target not in ours and (special or (surface == "mrkdwn" and not WEB.match(target))):
            live.append(f"<{target}>")
    live += [f"({href})" for href in hrefs if href.strip()[:1] in ("!", "@", "#")]
    return live


def slack_bound(message: SlackMessage) -> list[tuple[str, str]]:
    """(surface, string) for every string of `message` that can reach Slack, blocks refused or not."""
    out = []
    for payload in (message.payload(), message.plain().payload(), message.ephemeral()):
        out.append(("mrkdwn", payload["text"]))
        for block in payload.get("blocks", []):
            if block["type"] == "markdown":
                out.append(("markdown", block["text"]))
            else:
                out.extend(("mrkdwn", element["text"]) for element in block.get("elements", []))
    return out


HOSTILE_TARGETS = [
    "!channel", "!here", "!everyone", "@U0BOSS", "!subteam^S0999", "#C123", "<!channel>", "<@U0BOSS>",
    " !here", "\\!here", "&#33;channel", "%21channel", "!date^1^{date}|x", "https://ok.example/a",
    "https://ok.example/a><!here>", "https://x|!here", "mailto:a@b.example", "docs/guide.md",
]  # fmt: skip
RAW = [
    "<!here>", "<!channel|ch>", "<!everyone>", "<@U123>", "<@W123|bob>", "<!subteam^S1|@x>", f"<@{ASKER}>",
    "&lt;!channel&gt;", "&#60;!everyone&#62;", "&lt;@U0BOSS&gt;", "@here", "@channel", "@Everyone", "&#64;here",
    "\\@here", "\\<!here>", "<\\!here>", "<https://x.example|x>", "<#C123>",
]  # fmt: skip
PIECES = [
    "`", "``", "```", "\n```\n", "\n```python\n", "\n~~~\n", "\n   ```\n", "*", "**", "_", "~~", "\\", "<", ">",
    "|", "[", "]", "(", ")", "]: ", "!", "@", "#", "&", "&lt;", "&gt;", "&amp;", "&#", ";", "\n", "\n\n", "  ",
    "# ", "- ", "> ", "1. ", "word ", "here", "channel", "U0BOSS", "subteam^S1", "^", "https://",
]  # fmt: skip

targets = st.sampled_from(HOSTILE_TARGETS)
labels = st.sampled_from(["click me", "x", "a|b", "**b**", "`c`", "<!here>", "@here", "[n]", ""])
links = st.one_of(
    st.builds("[{}]({})".format, labels, targets),
    st.builds("![{}]({})".format, labels, targets),
    st.builds("[{}](<{}>)".format, labels, targets),
    st.builds('[{}]({} "t")'.format, labels, targets),
    st.builds("[{}][r]\n\n[r]: {}\n".format, labels, targets),
)
model_output = st.lists(
    st.one_of(
        links,
        st.sampled_from(RAW),
        st.sampled_from(PIECES),
        st.text("<>!@#&;|`*_[]()\\ \nabcU0^", max_size=6),
    ),
    max_size=24,
).map("".join)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=model_output, short=model_output)
def test_no_slack_bound_string_ever_pings(text: str, short: str) -> None:
    nobody = frozenset[str]()
    messages = [
        *((m, nobody) for m in answer_messages(text, short, limit=600)),  # finals, footer included
        (streaming_message(text, short, limit=600), nobody),  # interim previews, status included
        (status_message(text), nobody),
        (notice_message(text), nobody),  # failures and refusals, also as ephemeral replies
        (SlackMessage(text), nobody),  # what `Outbox.respond` gets from the app: plain words
        (asked_message(ASKER, text), frozenset({ASKER})),
    ]
    for message, allowed in messages:
        for surface, string in slack_bound(message):
            assert live_markup(string, surface, allowed) == [], (surface, string)


@pytest.mark.parametrize(
    "link", ["[click me](!channel)", "[x](@U0BOSS)", "[x](!subteam^S0999)", "[x](!here)"]
)
def test_links_to_mentions_become_their_label(link: str) -> None:
    label = link[1 : link.index("]")]
    [message] = answer_messages(f"see {link} now", "")
    payload = message.payload()
    assert payload["text"] == f"see {label} now"
    assert payload["blocks"][0]["text"] == f"see {label} now"
    assert live_markup(message.plain().payload()["text"], "mrkdwn") == []


def test_only_web_and_mail_links_stay_links() -> None:
    md = "[a](https://x.example/a|b) [m](mailto:a@b.example) [d](docs/x.md) [h](#C123) [`c()`](https://c.example)"
    [message] = answer_messages(md, "")
    payload = message.payload()
    assert payload["text"] == (
        "<https://x.example/a%7Cb|a> <mailto:a@b.example|m> d h <https://c.example|`c()`>"
    )
    assert payload["blocks"][0]["text"] == (
        "[a](https://x.example/a|b) [m](mailto:a@b.example) d h [`c()`](https://c.example)"
    )


def test_escaped_and_rebuilt_mentions_stay_dead_in_markdown_blocks() -> None:
    md = "&lt;!channel&gt; &#60;@U0BOSS&#62; <\\!here> [x](<!everyone>) [y](\\!here) [r]\n\n[r]: &#64;U1"
    [message] = answer_messages(md, "")
    shown = message.payload()["blocks"][0]["text"]
    assert live_markup(shown, "markdown") == []
    assert shown.startswith(f"&lt;{ZWSP}!channel&gt; &#60;{ZWSP}@U0BOSS&#62;")


def test_angle_bracket_markup_in_plain_text_is_escaped() -> None:
    sent = SlackMessage(
        "<https://ok.example|ok> <!date^1^{date}|x> <#C123> <foo> <@U0BOB> <https://a.example"
    ).payload()
    assert sent["text"] == (
        f"<https://ok.example|ok> &lt;!date^1^{{date}}|x> &lt;#C123> &lt;foo> @{ZWSP}U0BOB &lt;https://a.example"
    )


def test_the_asker_is_the_only_live_mention() -> None:
    message = asked_message(sp.USER_ID, f"ask <@{sp.USER_ID}> and <@U0BOB> [me](@{sp.USER_ID})")
    text = message.payload()["text"]
    assert message.mentions == {sp.USER_ID}
    assert text.startswith(f"<@{sp.USER_ID}> asked: ") and text.count("<@") == 1
    # a mention listed on purpose is left alive only as the bot writes it, and only for a real user id
    assert (
        SlackMessage(f"<@{sp.USER_ID}|x> <@U1>", mentions=frozenset({sp.USER_ID, "U1>"})).payload()["text"]
        == f"@{ZWSP}x @{ZWSP}U1"
    )


async def test_the_outbox_seals_every_message_it_sends() -> None:
    hostile = "[click me](!channel) <!here> <@U0BOSS> &lt;!everyone&gt;"
    message = SlackMessage(
        hostile,
        [
            {"type": "markdown", "text": hostile},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": hostile}]},
        ],
    )
    async with FakeSlack() as slack:
        api = SlackApi(web_client(slack.bot_token, slack.api_url, 5.0), NullObserver())
        outbox = Outbox(api, SlackPacing(), NullObserver())
        ts = await outbox.post(sp.CHANNEL_ID, message)
        posted = dict(slack.message(sp.CHANNEL_ID, ts))
        await outbox.update(sp.CHANNEL_ID, ts, message.plain())
        assert await outbox.respond(slack.new_response_url(), hostile)
        versions = [posted, slack.message(sp.CHANNEL_ID, ts), slack.response_url_posts[-1]["body"]]
    for sent in versions:
        strings = [("mrkdwn", sent["text"])]
        for block in sent.get("blocks") or []:
            if block["type"] == "markdown":
                strings.append(("markdown", block["text"]))
            else:
                strings += [("mrkdwn", e["text"]) for e in block["elements"]]
        assert len(strings) in (1, 3)
        assert all(live_markup(string, surface) == [] for surface, string in strings), strings
