"""Slack text, both ways: a user's message into a clean question, a Markdown answer into Slack messages.

How answers are shown (the decision): models write standard Markdown, and Slack's `markdown` block renders
standard Markdown itself (headings, bold, italic, lists, links, quotes, fenced code), so the answer goes into a
`markdown` block unchanged. We do not use `markdown_text` because it cannot be combined with other blocks or with
`text`, and we want two more things in the same message:
- a `context` block for the footer (preset, models, seconds), small and grey under the answer;
- a `text` fallback, which Slack uses for notifications, search and clients that cannot render blocks. Slack reads
  `text` as mrkdwn, so the fallback is the same answer converted to mrkdwn (`**b**` -> `*b*`, `[t](u)` -> `<u|t>`,
  `# H` -> `*H*`, `- x` -> `• x`, `&<>` escaped). It is capped below Slack's ~4,000-character `msg_too_long`.
A converter to mrkdwn for the main rendering was the alternative; it loses headings and nested emphasis, and
every model quirk becomes our bug, so it only serves the fallback.

Messages stay under `MESSAGE_CHARS` of Markdown (interim edits show `render.preview` of that size), well inside the
12,000 characters a payload's markdown blocks may hold and Slack's practical `text` limit.

Model output never pings anyone: `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^…>`, `<@U…>` and plain
`@here`/`@channel`/`@everyone` get a zero-width space after the `@` (what Discord bots do too), so they read the
same but are no mentions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.render import preview, split_markdown

MESSAGE_CHARS = 3_500  # Markdown per message, interim or final
FALLBACK_CHARS = 3_900  # the mrkdwn `text` fallback, after escaping; Slack answers msg_too_long near 4,000
ZWSP = "\u200b"

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    """What one chat.postMessage / chat.update sends. `blocks=[]` removes blocks an earlier version had."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}

    def plain(self) -> SlackMessage:
        """The mrkdwn `text` alone, for a workspace that refuses the blocks (the footer is in the text too)."""
        return SlackMessage(self.text)


# ---------------------------------------------------------------------------------------------- incoming

# Slack's markup in user text: <@U123>, <@U123|name>, <#C123|general>, <!here>, <!subteam^S1|@team>, <url|label>
_ANGLE = re.compile(r"<([^<>\n]+)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_users(text: str) -> set[str]:
    """User ids mentioned without a label (those need a users.info look-up to be shown by name)."""
    return {m.group(1) for m in re.finditer(r"<@([UW][A-Z0-9]+)>", text)}


def mentions(text: str, user_id: str) -> bool:
    return any(m.group(1) == user_id for m in _USER.finditer(text))


def clean_question(text: str, *, bot_user_id: str, names: Mapping[str, str]) -> str:
    """A user's message as the models should read it.

    The bot's own mention goes; other user mentions become `@name` (or stay `<@U…>` when the name is unknown);
    channel links become `#name`, links `label (url)`; Slack's `&lt; &gt; &amp;` escapes are undone last, so
    what the user typed as `<` reads as `<`.
    """

    def token(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            user = target[1:]
            if user == bot_user_id:
                return ""
            name = label or names.get(user)
            return f"@{name.lstrip('@')}" if name else match.group(0)
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!subteam^"):
            return label or "@group"
        if target.startswith("!"):
            return label or f"@{target[1:].split('^', 1)[0]}"
        url = target.removeprefix("mailto:")
        return f"{label} ({url})" if label and label != url else url

    # the bot's mention goes with one space after it, so "hey <@BOT> what" reads "hey what"
    text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[ \t]?", "", text) if bot_user_id else text
    cleaned = _ANGLE.sub(token, text)
    return cleaned.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


# ---------------------------------------------------------------------------------------------- outgoing

_PINGS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>"), lambda m: f"@{ZWSP}{m.group(1)}"),
    (re.compile(r"<!subteam\^[A-Z0-9]+(?:\|@?([^>]*))?>"), lambda m: f"@{ZWSP}{m.group(1) or 'group'}"),
    (re.compile(r"<@([UW][A-Z0-9]+)(?:\|@?([^>]*))?>"), lambda m: f"@{ZWSP}{m.group(2) or m.group(1)}"),
    (re.compile(r"(?<![\w@])@(here|channel|everyone)\b"), lambda m: f"@{ZWSP}{m.group(1)}"),
)


def neutralize(text: str) -> str:
    """Model output that reads like a mention but pings nobody."""
    for pattern, replace in _PINGS:
        text = pattern.sub(replace, text)
    return text


def escape(text: str) -> str:
    """mrkdwn needs these three escaped; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_QUOTE = re.compile(r"^(\s*)&gt;\s?")
_LINK = re.compile(r"\[([^\]\n]+)\]\((\S+?)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x00"


def to_mrkdwn(markdown: str) -> str:
    """Standard Markdown as Slack mrkdwn, for the `text` fallback (good enough to read, not a full parser)."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if match is not None and (fence is None or match.group(1)[0] == fence[0]):
            fence = match.group(1) if fence is None else None
            out.append("```")  # mrkdwn has no languages on fences
            continue
        if fence is not None:
            out.append(escape(line))
            continue
        heading = _HEADING.match(line)
        if heading is not None:
            title = _inline(heading.group(1)).replace(_BOLD_MARK, "").replace("*", "")
            out.append(f"*{title}*" if title else "")
            continue
        line = _BULLET.sub(lambda m: f"{m.group(1)}• ", line)
        converted = _inline(line).replace(_BOLD_MARK, "*")
        out.append(_QUOTE.sub(lambda m: f"{m.group(1)}> ", converted))  # a quote's `>` must stay raw
    return "\n".join(out)


def _inline(line: str) -> str:
    parts = re.split(r"(`[^`\n]+`)", line)  # inline code is literal: only escaped
    for i, part in enumerate(parts):
        if i % 2:
            parts[i] = escape(part)
            continue
        part = escape(part)
        part = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", part)
        part = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", part)
        part = _ITALIC.sub(r"_\1_", part)
        parts[i] = _STRIKE.sub(r"~\1~", part)
    return "".join(parts)


def _fallback(markdown: str, footer: str = "") -> str:
    text = to_mrkdwn(markdown)
    tail = f"\n\n_{escape(footer)}_" if footer else ""
    if len(text) + len(tail) > FALLBACK_CHARS:
        # the blocks carry the whole text; the fallback only has to stay postable
        room = FALLBACK_CHARS - len(tail) - 1
        cut = text.rfind("\n", 0, room)
        text = text[: cut if cut > room // 2 else room].rstrip() + "…"
    return text + tail


def _markdown_block(text: str) -> Block:
    return {"type": "markdown", "text": text}


def _context_block(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def status_message(status: str) -> SlackMessage:
    """Placeholder and progress: one italic line, no blocks."""
    return SlackMessage(f"_{escape(neutralize(status))}_")


def streaming_message(text: str, status: str, limit: int = MESSAGE_CHARS) -> SlackMessage:
    """The answer so far (its first `limit` characters while it is longer), with the status under it."""
    shown = preview(neutralize(text), limit)
    if not shown.strip():
        return status_message(status)
    return SlackMessage(_fallback(shown), [_markdown_block(shown), _context_block(f"_{escape(status)}_")])


def notice_message(text: str) -> SlackMessage:
    """A failure, an interruption or a refusal: plain words, shown as they are."""
    return SlackMessage(escape(neutralize(text)))


def split_answer(text: str, limit: int = MESSAGE_CHARS) -> list[str]:
    """The final answer, pings neutralized, in pieces of at most `limit` Markdown characters (code blocks closed
    and reopened across pieces, never cut open)."""
    pieces = [p for p in split_markdown(neutralize(text), limit) if p.strip()]
    return pieces or [""]


def answer_message(piece: str, footer: str = "") -> SlackMessage:
    """One piece of the final answer (from `split_answer`); the last piece carries the footer."""
    blocks: list[Block] = [_markdown_block(piece)] if piece.strip() else []
    if footer:
        blocks.append(_context_block(escape(footer)))
    text = (
        _fallback(piece, footer)
        if piece.strip()
        else "_(empty answer)_" + (f" _{escape(footer)}_" if footer else "")
    )
    return SlackMessage(text, blocks)


def answer_messages(text: str, footer: str, limit: int = MESSAGE_CHARS) -> list[SlackMessage]:
    pieces = split_answer(text, limit)
    return [answer_message(p, footer if i == len(pieces) - 1 else "") for i, p in enumerate(pieces)]


def asked_message(user: str, question: str, limit: int = 2_900) -> SlackMessage:
    """The channel message `/moa` posts: "<@user> asked: …", the question shown but never pinging anyone."""
    shown = neutralize(question)
    if len(shown) > limit:
        shown = shown[:limit].rstrip() + "…"
    return SlackMessage(f"<@{user}> asked: {escape(shown)}")
