"""Text in and out of Discord (pure functions): question text, thread names, and views as message contents.

Discord renders standard Markdown closely enough that answers pass through as they are; only sizes need care:
a message holds 2,000 characters, so long answers are split with `adapters.render` (code blocks closed and
reopened, never cut open) and interim edits show a preview that fits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from discord.utils import escape_markdown

from adapters.render import preview, split_markdown
from moa.conversation import Phase, ReplyView

MAX_CONTENT = 2000
MAX_THREAD_NAME = 100
HANDOVER_NOTE = (
    "-# ↓ continued in the next message (a slash command's reply can only be edited for 15 minutes)"
)

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_SPACES = re.compile(r"\s+")


def question_text(content: str, bot_id: int, names: Mapping[int, str], bot_role_id: int | None = None) -> str:
    """The question in a message: the bot's mention (`<@id>`, `<@!id>`, its role) removed, other users named.

    Other mentions become `@name` so the models read names rather than ids (and nothing can ping later).
    """
    text = re.sub(rf"[ \t]*<@!?{bot_id}>", "", content)
    if bot_role_id is not None:
        text = re.sub(rf"[ \t]*<@&{bot_role_id}>", "", text)

    def name(match: re.Match[str]) -> str:
        found = names.get(int(match.group(1)))
        return f"@{found}" if found else match.group(0)

    return _USER_MENTION.sub(name, text).strip()


def thread_name(question: str, fallback: str) -> str:
    """A thread name from the question's first line: 1 to 100 characters, as Discord requires."""
    first = next((line for line in question.splitlines() if line.strip()), "")
    name = _SPACES.sub(" ", first).strip()
    if not name:
        name = _SPACES.sub(" ", fallback).strip() or "Question"
    if len(name) > MAX_THREAD_NAME:
        cut = name.rfind(" ", MAX_THREAD_NAME // 2, MAX_THREAD_NAME - 1)
        name = name[: cut if cut > 0 else MAX_THREAD_NAME - 1].rstrip() + "…"
    return name


def progress(status: str) -> str:
    return f"⏳ {status}"


def interim(view: ReplyView, limit: int = MAX_CONTENT) -> str:
    """An edit while the answer is in progress: the status line, or the streamed text so far."""
    if view.phase is Phase.STREAMING and view.text.strip():
        return preview(view.text, limit)
    return progress(view.status)[:limit]


def notice(text: str, limit: int = MAX_CONTENT) -> str:
    """A failure, an interruption or a refusal: plain words, cut to one message."""
    text = text.strip() or "Something went wrong."
    return text if len(text) <= limit else text[: limit - 1] + "…"


def answer_pieces(view: ReplyView, limit: int = MAX_CONTENT) -> list[str]:
    """An answer's text split into message contents, leaving room on each for the footer line."""
    room = limit - len(footer_line(view.footer)) - 1
    return split_markdown(view.text.strip() or "_(the models returned an empty answer)_", room)


def footer_line(footer: str) -> str:
    """The footer as Discord subtext (small and grey), or "" for none."""
    return f"-# {escape_markdown(footer)}" if footer else ""


def with_footer(piece: str, footer: str) -> str:
    line = footer_line(footer)
    return f"{piece}\n{line}" if line else piece


def failure(view: ReplyView, limit: int = MAX_CONTENT) -> str:
    """A failed or interrupted answer: what went wrong, in one message."""
    return notice(f"⚠️ {view.text}", limit)


def handover(view: ReplyView | None) -> str:
    """The last edit of a slash command's reply before the answer moves to ordinary messages."""
    if view is None:
        return HANDOVER_NOTE
    return f"{interim(view, MAX_CONTENT - len(HANDOVER_NOTE) - 1)}\n{HANDOVER_NOTE}"
