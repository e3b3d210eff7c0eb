"""Text shaping shared by the chat adapters: splitting long Markdown without breaking code blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A fence line at any indentation (a code block inside a list item is indented like the item's text); a backtick
# opener's info string has no backtick, so "```x```" is inline code, not a fence.
FENCE = re.compile(r"^([ \t]*)(`{3,}(?=[^`]*$)|~{3,})(.*)$")
STILL_WRITING = "_…still writing…_"
DRAFTS_QUESTION_CHARS = 200  # how much of the question heads "Show drafts"


@dataclass(frozen=True)
class Fence:
    """An open fenced code block: the indentation and the marker (```` ``` ````, `~~~`, or longer) it opened with."""

    indent: str
    marker: str

    @property
    def closer(self) -> str:
        return self.indent + self.marker

    def closed_by(self, line: str) -> bool:
        """A closing fence uses the opener's character, at least as many of them, and no info string."""
        match = FENCE.match(line)
        return (
            match is not None
            and match.group(2)[0] == self.marker[0]
            and len(match.group(2)) >= len(self.marker)
            and not match.group(3).strip()
        )


def fence_of(line: str) -> Fence | None:
    """The code block `line` opens, when it is a fence line."""
    match = FENCE.match(line)
    return None if match is None else Fence(match.group(1), match.group(2))


def split_markdown(text: str, limit: int) -> list[str]:
    """Split `text` into pieces of at most `limit` characters.

    Pieces break between paragraphs where possible, then between lines, then at spaces. A code block that must be
    split is closed at the end of one piece and reopened (with its language) at the start of the next, so no piece
    leaves a fence open.
    """
    if limit < 20:
        raise ValueError("limit is too small to split Markdown sensibly")
    parts = [part for block in _blocks(text.strip("\n")) for part in _fit(block, limit)]
    return _join_up_to(parts, limit, "\n\n") or [""]


def preview(text: str, limit: int) -> str:
    """What an interim edit shows of a growing answer: all of it while it fits, else its first piece, marked."""
    closed = close_fences(text)
    if len(closed) <= limit:
        return closed
    return split_markdown(text, limit - len(STILL_WRITING) - 2)[0] + "\n\n" + STILL_WRITING


def clipped(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut, the last of them an ellipsis, when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def close_fences(text: str) -> str:
    """Close a code block left open (a stream cut mid-block, or a model that forgot)."""
    fence: Fence | None = None
    for line in text.split("\n"):
        if fence is None:
            fence = fence_of(line)
        elif fence.closed_by(line):
            fence = None
    return text if fence is None else f"{text}\n{fence.closer}"


def _blocks(text: str) -> list[str]:
    """Paragraphs and whole fenced code blocks, in order."""
    blocks: list[str] = []
    current: list[str] = []
    fence: Fence | None = None
    for line in text.split("\n"):
        if fence is None:
            fence = fence_of(line)
            if fence is not None:
                if current:
                    blocks.append("\n".join(current))
                current = [line]
            elif line.strip():
                current.append(line)
            elif current:
                blocks.append("\n".join(current))
                current = []
        else:
            current.append(line)
            if fence.closed_by(line):
                blocks.append("\n".join(current))
                current, fence = [], None
    if current:
        block = "\n".join(current)
        blocks.append(close_fences(block) if fence is not None else block)
    return blocks


def _fit(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    lines = block.split("\n")
    fence = fence_of(lines[0])
    if fence is None:
        return _pack(lines, limit)
    opener, closer = lines[0], fence.closer  # `_blocks` closed it: the last line is its closer
    if len(opener) + len(closer) > limit // 2:  # an absurd info string or indentation: reopen it bare
        opener = closer = fence.marker[0] * 3
    body = lines[1:-1]
    room = limit - len(opener) - len(closer) - 2
    return [f"{opener}\n{chunk}\n{closer}" for chunk in _pack(body, room)]


def _pack(lines: list[str], limit: int) -> list[str]:
    """Greedily join lines up to `limit`; a line longer than that is cut, at a space when there is one."""
    return _join_up_to([part for line in lines for part in _cut(line, limit)], limit, "\n")


def _join_up_to(parts: list[str], limit: int, separator: str) -> list[str]:
    """Consecutive parts joined by `separator` into pieces of at most `limit` (each part already fits)."""
    out: list[str] = []
    current: str | None = None
    for part in parts:
        if current is None:
            current = part
        elif len(current) + len(separator) + len(part) <= limit:
            current = f"{current}{separator}{part}"
        else:
            out.append(current)
            current = part
    if current is not None:
        out.append(current)
    return out


def _cut(line: str, limit: int) -> list[str]:
    parts: list[str] = []
    while len(line) > limit:
        at = line.rfind(" ", limit // 2, limit)
        at = limit if at <= 0 else at
        parts.append(line[:at].rstrip())
        line = line[at:].lstrip(" ")
    parts.append(line)
    return parts
