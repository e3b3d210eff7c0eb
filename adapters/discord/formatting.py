"""Text in and out of Discord (pure functions): question text, thread names, and views as message contents.

Discord renders standard Markdown closely enough that answers pass through as they are; only sizes need care:
a message holds 2,000 characters, so long answers are split with `adapters.render` (code blocks closed and
reopened, never cut open), interim edits show a preview that fits, and a run's drafts ("Show drafts") are split
the same way across a few messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from discord.utils import escape_markdown

from adapters.render import DRAFTS_QUESTION_CHARS, clipped, close_fences, preview, split_markdown
from moa.answering import Drafts, short_model
from moa.conversation import ModelStatus, Phase, ReplyView
from moa.persistence import ProposalRecord

MAX_CONTENT = 2000
MAX_THREAD_NAME = 100
MAX_DRAFT_MESSAGES = 6  # "Show drafts" replies with at most this many messages; longer drafts are cut
MAX_DRAFT_ERROR = 150  # characters of a failed draft's error shown with it
DRAFTS_CUT = "_…the drafts go on, but that is as much as fits here._"
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
    """An edit while the answer is in progress: the status line and a line per model, or the streamed text."""
    if view.phase is Phase.STREAMING and view.text.strip():
        return preview(view.text, limit)
    lines = [f"-# {model_line(m)}" for m in current_models(view.models)]
    return _first_lines(progress(view.status)[:limit], lines, limit)


def _first_lines(first: str, lines: list[str], limit: int) -> str:
    """`first`, then as many of `lines` as fit in `limit`; the rest are counted on a last line."""
    for shown in range(len(lines), -1, -1):
        hidden = len(lines) - shown
        text = "\n".join([first, *lines[:shown], *([f"-# … and {hidden} more"] if hidden else [])])
        if len(text) <= limit:
            return text
    return first


def current_models(models: tuple[ModelStatus, ...]) -> list[ModelStatus]:
    """The proposers of the latest round, and the synthesizing model once it has begun."""
    rounds = [m.layer for m in models if m.role == "proposer"]
    latest = max(rounds, default=0)
    return [m for m in models if m.role != "proposer" or m.layer == latest]


_MARKS = {"drafting": "⏳", "synthesizing": "⏳", "writing": "✍️", "done": "✓", "failed": "✗", "cut_off": "✂"}
_STATES = {"drafting": "drafting", "synthesizing": "synthesizing", "writing": "writing", "cut_off": "cut off",
           "failed": "failed"}


def model_line(model: ModelStatus) -> str:
    """One model's progress in a few words: "✓ Qwen2.5-72B · 2.4 s · 312 tokens", "✗ Mistral · failed (rate
    limited) · 3.1 s", "⏳ DeepSeek-V3 · drafting"."""
    parts = [f"{_MARKS.get(model.state, '•')} {escape_markdown(short_model(model.model))}"]
    state = _STATES.get(model.state, "")
    if state or model.detail:
        parts.append(f"{state} ({model.detail})" if state and model.detail else state or model.detail)
    if model.seconds is not None:
        parts.append(f"{model.seconds:.1f} s")
    if model.tokens is not None and model.state == "done":
        parts.append(f"{model.tokens} tokens")
    return " · ".join(parts)


def notice(text: str, limit: int = MAX_CONTENT) -> str:
    """A failure, an interruption or a refusal: plain words, cut to one message."""
    text = text.strip() or "Something went wrong."
    return clipped(text, limit)


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


def draft_pieces(drafts: Drafts, limit: int = MAX_CONTENT, most: int = MAX_DRAFT_MESSAGES) -> list[str]:
    """What "Show drafts" replies: each proposer's draft with its model, time and tokens (or why it is missing),
    in at most `most` messages of `limit` characters."""
    question = _SPACES.sub(" ", drafts.question).strip()
    question = clipped(question, DRAFTS_QUESTION_CHARS)
    sections = [f"**Drafts for:** {escape_markdown(question)}"]
    if not drafts.proposals:
        sections.append("_No drafts: this answer came from one model alone._")
    rounds = len({p.layer for p in drafts.proposals}) > 1
    for number, proposal in enumerate(drafts.proposals, 1):
        sections.append(_draft_heading(number, proposal, rounds))
        if not proposal.error:
            # a draft's open code block must not swallow the next draft's heading
            sections.append(close_fences(proposal.text.strip()) or "_(an empty draft)_")
    pieces = split_markdown("\n\n".join(sections), limit)
    if len(pieces) > most:
        pieces = [*pieces[: most - 1], DRAFTS_CUT]
    return pieces


def _draft_heading(number: int, proposal: ProposalRecord, rounds: bool) -> str:
    parts = [f"**{number}. {escape_markdown(short_model(proposal.model))}**"]
    if rounds:
        parts.append(f"round {proposal.layer}")
    if proposal.straggler:
        parts.append(f"✂ cut off after {proposal.latency_s:.1f} s (too slow)")
    elif proposal.error:
        error = clipped(_SPACES.sub(" ", proposal.error).strip(), MAX_DRAFT_ERROR)
        parts.append(f"✗ failed after {proposal.latency_s:.1f} s: {escape_markdown(error)}")
    else:
        parts.append(f"{proposal.latency_s:.1f} s")
        parts.append(f"{proposal.usage.completion_tokens} tokens")
    return " · ".join(parts)
