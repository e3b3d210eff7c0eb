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

Model output never pings anyone, and no caller can forget it: every string leaves through `SlackMessage.payload()`
or `SlackMessage.ephemeral()` (the outbox sends nothing else), which seal it last, on the final text:
- readable first: `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^…>`, `<@U…>` become `@` + a zero-width space
  + the name, plain `@here`/`@channel`/`@everyone` get the zero-width space (what Discord bots do too), so they
  read the same but are no mentions; a Markdown link to anything but `http(s)://` or `mailto:` becomes its label;
- then a net, whatever the text is made of. mrkdwn (`text`, context elements, ephemeral replies): every raw `<`
  that does not open a web/mail link we built becomes `&lt;`. markdown blocks, which CommonMark decodes first
  (entities, backslash escapes): a zero-width space goes after any `<` (or `&lt;`, `&#60;`…) and between `](`
  or `]:` whenever Slack's special markup (`!`, `@`, `#`) would follow.
The one mention the bot makes on purpose, the asker in the `/moa` channel message, is listed in
`SlackMessage.mentions` and is the only one left alive.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from adapters.render import DRAFTS_QUESTION_CHARS, Fence, clipped, close_fences, fence_of, preview, split_markdown
from moa.answering import short_model
from moa.conversation import ModelStatus, SourceRef
from moa.knowledge.citations import SOURCES_HEADING
from moa.persistence import ProposalRecord

MESSAGE_CHARS = 3_500  # Markdown per message, interim or final
FALLBACK_CHARS = 3_900  # the mrkdwn `text` fallback, after escaping; Slack answers msg_too_long near 4,000
ZWSP = "\u200b"

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    """What one chat.postMessage / chat.update sends. `blocks=[]` removes blocks an earlier version had."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    mentions: frozenset[str] = frozenset()  # user ids this message mentions on purpose: they stay live

    def payload(self) -> dict[str, Any]:
        """`text` and `blocks` as Slack gets them: sealed, so nothing pings but `mentions`."""
        return {
            "text": seal_mrkdwn(self.text, self.mentions),
            "blocks": [_seal_block(block, self.mentions) for block in self.blocks],
        }

    def ephemeral(self) -> dict[str, Any]:
        """The body of an ephemeral reply through a response_url (a slash command's or a click's), sealed the
        same way."""
        payload = self.payload()
        body: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False, "text": payload["text"]}
        if payload["blocks"]:
            body["blocks"] = payload["blocks"]
        return body

    def plain(self) -> SlackMessage:
        """The mrkdwn `text` alone, for a workspace that refuses the blocks (the footer is in the text too)."""
        return SlackMessage(self.text, mentions=self.mentions)


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

_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_WEB = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_PLAIN_PING = r"(?<![\w@])@(?=(?:here|channel|everyone)\b)"


def neutralize(text: str, keep: frozenset[str] = frozenset()) -> str:
    """Model output that reads like a mention but pings nobody (the users in `keep` stay mentioned)."""

    def user(match: re.Match[str]) -> str:
        if match.group(1) in keep and match.group(2) is None:
            return match.group(0)
        return f"@{ZWSP}{match.group(2) or match.group(1)}"

    text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", rf"@{ZWSP}\1", text)
    text = re.sub(r"<!subteam\^[A-Z0-9]+(?:\|@?([^>]*))?>", lambda m: f"@{ZWSP}{m.group(1) or 'group'}", text)
    text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|@?([^>]*))?>", user, text)
    return re.sub(_PLAIN_PING, f"@{ZWSP}", text, flags=re.IGNORECASE)


def seal_mrkdwn(text: str, keep: frozenset[str] = frozenset()) -> str:
    """mrkdwn as it leaves: readable neutralizing, then every raw `<` that does not open a web/mail link or a
    mention of a `keep` user becomes `&lt;` (Slack's own escape: it shows `<` and is never markup)."""
    ours = "|".join(re.escape(u) for u in sorted(keep) if _USER_ID.fullmatch(u))
    mention = rf"|@(?:{ours})>" if ours else ""
    stray = re.compile(rf"<(?!(?:https?://|mailto:)[^<>|\s]+(?:\|[^<>\n]*)?>{mention})", re.IGNORECASE)
    return stray.sub("&lt;", neutralize(text, keep))


# What CommonMark decodes before Slack sees a markdown block's text: one unit is an entity, a %-escape (in a link
# destination) or a single character.
_UNIT = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?|%[0-9a-fA-F]{2}|.", re.DOTALL)


def seal_markdown(text: str, keep: frozenset[str] = frozenset()) -> str:
    """A markdown block's text as it leaves: links only to the web or mail, readable neutralizing, then a
    zero-width space wherever the decoded text would still open Slack's special markup or a plain ping."""
    text = neutralize(_web_links_only(text), keep)
    ours = "|".join(re.escape(u) for u in sorted(keep) if _USER_ID.fullmatch(u))
    mention = rf"(?!@(?:{ours})>)" if ours else ""
    live = re.compile(rf"(?:<{mention}|\]\(|\]:)(?=[\s\\<]*[!@#])|{_PLAIN_PING}", re.IGNORECASE)
    decoded: list[str] = []
    ends: list[int] = []  # for each decoded character, where its unit ends in `text`
    for unit in _UNIT.finditer(text):
        raw = unit.group(0)
        chars = html.unescape(raw) if raw[0] == "&" else unquote(raw) if raw[0] == "%" else raw
        decoded.append(chars)
        ends.extend([unit.end()] * len(chars))
    cuts = sorted({ends[m.start()] for m in live.finditer("".join(decoded))})
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return ZWSP.join(pieces)


def _seal_block(block: Block, keep: frozenset[str]) -> Block:
    """Every text a block holds, sealed by how Slack reads it (markdown blocks, mrkdwn text objects)."""
    sealed: Block = {}
    for key, value in block.items():
        if key == "text" and isinstance(value, str) and block.get("type") in ("markdown", "mrkdwn"):
            value = (seal_markdown if block["type"] == "markdown" else seal_mrkdwn)(value, keep)
        elif isinstance(value, dict):
            value = _seal_block(value, keep)
        elif isinstance(value, list):
            value = [_seal_block(v, keep) if isinstance(v, dict) else v for v in value]
        sealed[key] = value
    return sealed


def escape(text: str) -> str:
    """mrkdwn needs these three escaped; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_QUOTE = re.compile(r"^(\s*)&gt;\s?")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")
_HIDDEN = re.compile("\x01([0-9]+)\x01")
# a label may hold one level of brackets: the core links a cited source as "[[2]](https://...)"
_LINK = re.compile(r"!?\[((?:[^\[\]\n]|\[[^\[\]\n]*\])+)\]\((\S+?)(?:\s+\"[^\"\n]*\")?\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x00"


def _lines(markdown: str) -> Iterator[tuple[str, str]]:
    """Each line with what it is: "fence" (opens or closes a code block), "code" (inside one) or "text"."""
    fence: Fence | None = None
    for line in markdown.split("\n"):
        if fence is None:
            fence = fence_of(line)
            yield line, "text" if fence is None else "fence"
        elif fence.closed_by(line):
            fence = None
            yield line, "fence"
        else:
            yield line, "code"


def _outside_code_spans(line: str, convert: Callable[[str], str], code: Callable[[str], str]) -> str:
    """`convert` applied to a line whose inline code spans are set aside (each shown as `code(span)`), so a
    span inside a link's label or inside emphasis stays part of it."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(code(match.group(0)))
        return f"\x01{len(spans) - 1}\x01"

    hidden = _CODE_SPAN.sub(hide, line.replace("\x01", ""))
    return _HIDDEN.sub(lambda m: spans[int(m.group(1))], convert(hidden))


def _web_links_only(markdown: str) -> str:
    """Markdown links (and images) to anything but the web or mail become their label, code left alone."""
    out = []
    for line, kind in _lines(markdown):
        if kind == "text":
            line = _outside_code_spans(line, lambda text: _LINK.sub(_label_unless_web, text), str)
        out.append(line)
    return "\n".join(out)


def _label_unless_web(link: re.Match[str]) -> str:
    return link.group(0) if _WEB.match(_destination(link)) else link.group(1)


def _destination(link: re.Match[str]) -> str:
    """A link's target without CommonMark's optional angle brackets (raw `<>` or mrkdwn-escaped)."""
    target = link.group(2)
    for opener, closer in (("<", ">"), ("&lt;", "&gt;")):
        if target.startswith(opener) and target.endswith(closer):
            return target[len(opener) : -len(closer)]
    return target


def to_mrkdwn(markdown: str) -> str:
    """Standard Markdown as Slack mrkdwn, for the `text` fallback (good enough to read, not a full parser)."""
    out: list[str] = []
    for line, kind in _lines(markdown):
        if kind == "fence":
            out.append("```")  # mrkdwn has no languages on fences
            continue
        if kind == "code":
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
    return _outside_code_spans(line, _inline_text, escape)  # inline code is literal: only escaped


def _inline_text(text: str) -> str:
    text = _LINK.sub(_mrkdwn_link, escape(text))
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    return _STRIKE.sub(r"~\1~", text)


def _mrkdwn_link(link: re.Match[str]) -> str:
    """`<url|label>` for a web or mail address; any other target (`!here`, `@U…`, `#C…`, a path) is just the label."""
    target = _destination(link)
    if not _WEB.match(target):
        return link.group(1)
    return f"<{target.replace('|', '%7C')}|{link.group(1)}>"


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


def status_message(status: str, stop: str = "") -> SlackMessage:
    """Placeholder and progress: one italic line; with `stop` (a run id), a Stop button under it."""
    line = f"_{escape(neutralize(status))}_"
    if not stop:
        return SlackMessage(line)
    return SlackMessage(line, [{"type": "section", "text": {"type": "mrkdwn", "text": line}}, _stop_block(stop)])


def streaming_message(text: str, status: str, limit: int = MESSAGE_CHARS, stop: str = "") -> SlackMessage:
    """The answer so far (its first `limit` characters while it is longer), with the status under it; with `stop`
    (a run id), a Stop button."""
    shown = preview(neutralize(text), limit)  # neutralized before measuring: the seal then adds nothing
    if not shown.strip():
        return status_message(status, stop)
    blocks = [_markdown_block(shown), _context_block(f"_{escape(status)}_")]
    return SlackMessage(_fallback(shown), [*blocks, _stop_block(stop)] if stop else blocks)


def notice_message(text: str) -> SlackMessage:
    """A failure, an interruption or a refusal: plain words, shown as they are."""
    return SlackMessage(escape(neutralize(text)))


def split_answer(text: str, limit: int = MESSAGE_CHARS) -> list[str]:
    """The final answer, pings neutralized, in pieces of at most `limit` Markdown characters (code blocks closed
    and reopened across pieces, never cut open)."""
    pieces = [p for p in split_markdown(neutralize(text), limit) if p.strip()]  # as in `streaming_message`
    return pieces or [""]


def answer_message(piece: str, footer: str = "", run_id: str = "") -> SlackMessage:
    """One piece of the final answer (from `split_answer`); the last piece carries the footer and, with `run_id`,
    the answer's buttons (`answer_blocks`)."""
    blocks: list[Block] = [_markdown_block(piece)] if piece.strip() else []
    blocks += answer_blocks(footer, run_id)
    text = (
        _fallback(piece, footer)
        if piece.strip()
        else "_(empty answer)_" + (f" _{escape(footer)}_" if footer else "")
    )
    return SlackMessage(text, blocks)


def asked_message(user: str, question: str, limit: int = 2_900) -> SlackMessage:
    """The channel message `/moa` posts: "<@user> asked: …", the question shown but never pinging anyone."""
    shown = neutralize(question)
    if len(shown) > limit:
        shown = shown[:limit].rstrip() + "…"
    return SlackMessage(f"<@{user}> asked: {escape(shown)}", mentions=frozenset({user}))


# ---------------------------------------------------------------------------------------------- sources

SECTION_CHARS = 3_000  # a section block's text
_LINKED_MARKER = re.compile(r"\[\[(\d{1,3})\]\]\(https?://[^)\s]*\)")


def as_written(text: str, sources: Sequence[SourceRef]) -> str:
    """A final answer that cites team sources as its model wrote it, which is what a stream showed: without the
    Sources list the core appended, each [n] the core linked back to plain [n]."""
    if not sources:
        return text
    body = text.split(f"\n\n{SOURCES_HEADING}\n", 1)[0]
    return _LINKED_MARKER.sub(r"[\1]", body)


def sources_blocks(sources: Sequence[SourceRef]) -> list[Block]:
    """The cited sources as a block under a streamed answer: "[n] title — author · date", linked where the source
    has a web address (a file path is shown as code)."""
    if not sources:
        return []
    lines = ["*Sources*"]
    size = len(lines[0])
    for ref in sources:
        title = escape(" ".join(ref.title.split())[:150] or "untitled")
        if ref.url:
            head = f"<{ref.url.replace('|', '%7C').replace('>', '%3E')}|{title}>"
        elif ref.link:
            head = f"{title} (`{escape(ref.link)}`)"
        else:
            head = title
        details = " · ".join(escape(part) for part in (ref.author, ref.date) if part)
        line = f"[{ref.number}] {head}" + (f" — {details}" if details else "")
        size += len(line) + 1
        if size > SECTION_CHARS:
            break
        lines.append(line)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]


# ---------------------------------------------------------------------------------------------- buttons

STOP_ACTION = "moa_stop"  # value: the run id
FEEDBACK_ACTION = "moa_feedback"  # values: "up:<run id>", "down:<run id>"
DRAFTS_ACTION = "moa_drafts"  # value: the run id


def _button(action_id: str, label: str, value: str, **extra: str) -> Block:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value,
            **extra}  # fmt: skip


def _stop_block(run_id: str) -> Block:
    return {"type": "actions", "elements": [_button(STOP_ACTION, "Stop", run_id, style="danger")]}


def answer_blocks(footer: str, run_id: str) -> list[Block]:
    """What goes under a final answer: the footer, then (naming the run, so a click works after a restart)
    👍/👎 feedback buttons and "Show drafts"."""
    blocks = [_context_block(escape(footer))] if footer else []
    if run_id:
        feedback = {
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION,
            "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": f"up:{run_id}"},
            "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": f"down:{run_id}"},
        }
        blocks.append({"type": "context_actions", "elements": [feedback]})
        blocks.append({"type": "actions", "elements": [_button(DRAFTS_ACTION, "Show drafts", run_id)]})
    return blocks


# ---------------------------------------------------------------------------------------------- streams

STREAM_CHARS = 12_000  # Markdown one streamed message holds (Slack's markdown_text limit); more continues after it
TASK_CHARS = 256  # a task card's title, details and output; the plan's title
Chunk = dict[str, Any]

_TASK_STATUS = {"done": "complete", "failed": "error", "cut_off": "error"}  # anything else is under way


def seal_plain(text: str, limit: int = TASK_CHARS) -> str:
    """A plain-text field (a task card, the thread's status, a title, a suggested prompt) as it leaves: sealed
    like Markdown (zero-width spaces where a ping could form; nothing visible changes), at most `limit` long."""
    sealed = seal_markdown(text)
    return sealed if len(sealed) <= limit else sealed[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Task:
    """One task card of a streamed message (`task_update`): one per model of the run."""

    id: str
    title: str
    status: str  # pending | in_progress | complete | error


def model_tasks(models: Sequence[ModelStatus]) -> tuple[Task, ...]:
    """A card per model, in the order they started: "Llama-3.3-70B-Instruct-Turbo: done in 3.1 s, 412 tokens"."""
    rounds = any(m.role == "proposer" and m.layer > 1 for m in models)
    tasks = []
    for i, model in enumerate(models):
        name = short_model(model.model)
        if rounds and model.role == "proposer":
            name = f"Round {model.layer} · {name}"
        tasks.append(Task(f"model-{i}", f"{name}: {_model_state(model)}", _TASK_STATUS.get(model.state, "in_progress")))
    return tuple(tasks)


def _model_state(model: ModelStatus) -> str:
    if model.state == "done":
        took = f"done in {model.seconds:.1f} s" if model.seconds is not None else "done"
        return took if model.tokens is None else f"{took}, {model.tokens} tokens"
    if model.state == "cut_off":
        return f"cut off: {model.detail or 'too slow'}"
    if model.state == "failed":
        why = "error" if model.role == "proposer" else "failed"
        return f"{why}: {model.detail}" if model.detail else why
    if model.state == "synthesizing" and model.detail:
        detail = model.detail
        return f"synthesizing {detail}" if detail.endswith("drafts") else f"synthesizing ({detail})"
    return model.state


@dataclass(frozen=True)
class StreamFrame:
    """What a streamed message shows at one moment: its Markdown, a card per model, the plan's title."""

    markdown: str = ""
    tasks: tuple[Task, ...] = ()
    plan: str = ""

    def sealed(self) -> StreamFrame:
        """The frame as Slack may see it: the Markdown sealed as a whole (each call sends a part of it), the
        cards and the plan's title sealed and within Slack's 256 characters."""
        tasks = tuple(replace(task, title=seal_plain(task.title)) for task in self.tasks)
        return StreamFrame(seal_markdown(self.markdown), tasks, seal_plain(self.plan))

    def chunks_since(self, shown: StreamFrame) -> list[Chunk] | None:
        """The chunks that turn the message from `shown` into this frame (both sealed): the Markdown added, the
        cards that changed, a new plan title. None when this Markdown does not extend `shown`'s: a stream cannot
        take back what it showed."""
        if not self.markdown.startswith(shown.markdown):
            return None
        chunks: list[Chunk] = []
        if self.plan and self.plan != shown.plan:
            chunks.append({"type": "plan_update", "title": self.plan})
        before = {task.id: task for task in shown.tasks}
        for task in self.tasks:
            if before.get(task.id) != task:
                chunks.append({"type": "task_update", "id": task.id, "title": task.title, "status": task.status})
        added = self.markdown[len(shown.markdown) :]
        if added:
            chunks.append({"type": "markdown_text", "text": added})
        return chunks


def stream_cut(text: str) -> int:
    """How much of a growing answer is settled: everything up to its last whitespace (the last word may still
    grow, and a mention or link is only whole once followed by a space)."""
    match = re.search(r"\S*\Z", text)
    return match.start() if match is not None else len(text)


def open_fence(markdown: str) -> str:
    """The line that opened a code block still open at the end of `markdown` ("" when none is)."""
    opener, fence = "", None
    for line in markdown.split("\n"):
        if fence is None:
            fence = fence_of(line)
            opener = line if fence is not None else ""
        elif fence.closed_by(line):
            fence, opener = None, ""
    return opener


def stream_split(text: str, start: int, limit: int, fits: Callable[[str], bool]) -> int:
    """Where a streamed message of at most about `limit` characters that cannot hold all of `text` ends: at the last
    paragraph break, else line break, else space between `start` (what it shows already) and `limit` where `fits`
    accepts what it would hold (any open code block closed); `start` when none does."""
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, start, limit)
        while at >= start:
            if at > 0 and fits(close_fences(text[:at])):
                return at
            at = text.rfind(separator, start, at)
    return start


# ---------------------------------------------------------------------------------------------- drafts

DRAFTS_MARKDOWN = 11_000  # of the 12,000 characters of markdown blocks one message may hold
DRAFTS_BLOCKS = 45  # of Slack's 50 blocks


def drafts_messages(question: str, proposals: Sequence[ProposalRecord]) -> list[SlackMessage]:
    """"Show drafts": each proposer's draft with its model, time and tokens, and which were cut off or failed, in
    as many ephemeral messages as Slack's limits need."""
    rounds = any(p.layer > 1 for p in proposals)
    heading = f"Drafts for: {escape(neutralize(clipped(question, DRAFTS_QUESTION_CHARS)))}"
    blocks: list[Block] = [_context_block(heading)]
    for proposal in proposals:
        blocks.append(_context_block(_draft_line(proposal, rounds)))
        for piece in split_markdown(neutralize(proposal.text), MESSAGE_CHARS) if proposal.text.strip() else []:
            blocks.append(_markdown_block(piece))
    messages: list[list[Block]] = [[]]
    markdown = 0
    for block in blocks:
        size = len(block["text"]) if block["type"] == "markdown" else 0
        if messages[-1] and (markdown + size > DRAFTS_MARKDOWN or len(messages[-1]) >= DRAFTS_BLOCKS):
            messages.append([])
            markdown = 0
        messages[-1].append(block)
        markdown += size
    return [SlackMessage(heading, part) for part in messages]


def _draft_line(proposal: ProposalRecord, rounds: bool) -> str:
    parts = [f"*{escape(short_model(proposal.model))}*"]
    if rounds:
        parts.append(f"round {proposal.layer}")
    if proposal.straggler:
        parts.append(f"cut off after {proposal.latency_s:.1f} s (too slow)")
    elif proposal.error:
        parts.append(f"failed after {proposal.latency_s:.1f} s: {escape(proposal.error[:300])}")
    else:
        parts.append(f"{proposal.latency_s:.1f} s")
        if proposal.usage.completion_tokens:
            parts.append(f"{proposal.usage.completion_tokens} tokens")
    return " · ".join(parts)
