"""Text shaping shared by the chat adapters: splitting long Markdown without breaking code blocks."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
STILL_WRITING = "_…still writing…_"


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


def close_fences(text: str) -> str:
    """Close a code block left open (a stream cut mid-block, or a model that forgot)."""
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if fence is None:
            fence = match.group(1)
        elif _closes(match, fence):
            fence = None
    return text if fence is None else f"{text}\n{fence}"


def _closes(match: re.Match[str], fence: str) -> bool:
    """A closing fence uses the opener's character, at least as many of them, and no info string."""
    marker = match.group(1)
    return marker.startswith(fence[0]) and len(marker) >= len(fence) and not match.group(2).strip()


def _blocks(text: str) -> list[str]:
    """Paragraphs and whole fenced code blocks, in order."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None:
            if match is not None:
                if current:
                    blocks.append("\n".join(current))
                current, fence = [line], match.group(1)
            elif line.strip():
                current.append(line)
            elif current:
                blocks.append("\n".join(current))
                current = []
        else:
            current.append(line)
            if match is not None and _closes(match, fence):
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
    match = _FENCE.match(lines[0])
    if match is None:
        return _pack(lines, limit)
    opener, closer = lines[0], match.group(1)
    body = lines[1:-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else lines[1:]
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
