"""Passages in and out of an answer: the numbered block the models read, and, from an answer citing [n], what
the user sees (linked markers and a Sources list of the cited sources).

Markers inside code (fenced blocks, `inline code`) are left alone, and so is a Markdown link label such as
`[1](https://...)`. Numbers beyond the sources given are not listed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from moa.conversation import SourceRef
from moa.knowledge.model import Kind, Passage
from moa.prompts import SourceText, sources_block

# [1], [1, 2], [1][2]: one bracket with one or more numbers, not a link label (followed by "(")
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\](?!\()")
_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.DOTALL)
SOURCES_HEADING = "**Sources**"


def _where(passage: Passage) -> str:
    channel = f"#{passage.channel} ({passage.platform})"
    if passage.kind is Kind.LOCAL:
        return f"file {passage.link}"
    if passage.kind is Kind.FILE:
        return f"file shared in {channel}"
    if passage.kind is Kind.VERIFIED:
        return f"an answer verified in {channel}"
    return channel


def prompt_sources(passages: Sequence[Passage]) -> str:
    """The team-sources block every proposer and the aggregator get; "" without passages."""
    return sources_block(
        [SourceText(p.author, source_ref(0, p).date, _where(p), p.title, p.text) for p in passages]
    )


def source_ref(number: int, passage: Passage) -> SourceRef:
    return SourceRef(
        number=number,
        title=passage.title,
        author=passage.author,
        created_at=passage.created_at,
        link=passage.link,
        kind=passage.kind.value,
        channel=passage.channel,
    )


def _prose(text: str) -> list[tuple[bool, str]]:
    """The text as (is_code, piece) pieces, in order."""
    pieces: list[tuple[bool, str]] = []
    last = 0
    for match in _CODE.finditer(text):
        pieces.append((False, text[last : match.start()]))
        pieces.append((True, match.group(0)))
        last = match.end()
    pieces.append((False, text[last:]))
    return pieces


def cited_numbers(text: str, given: int) -> list[int]:
    """The source numbers the answer cites, in the order first cited, within 1..given."""
    cited: dict[int, None] = {}
    for is_code, piece in _prose(text):
        if is_code:
            continue
        for match in _MARKER.finditer(piece):
            for number in (int(n) for n in match.group(1).split(",")):
                if 1 <= number <= given:
                    cited.setdefault(number, None)
    return list(cited)


def link_markers(text: str, refs: Sequence[SourceRef]) -> str:
    """Each [n] of a source with a web link becomes a link to it: "[[2]](https://...)"."""
    urls = {ref.number: ref.url for ref in refs if ref.url}
    if not urls:
        return text

    def linked(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(1).split(",")]
        return "".join(f"[[{n}]]({urls[n]})" if n in urls else f"[{n}]" for n in numbers)

    return "".join(piece if is_code else _MARKER.sub(linked, piece) for is_code, piece in _prose(text))


# a marker as cited ([1], [1, 2]) or as linked ([[1]](https://...)), with the space before it
_ANY_MARKER = re.compile(r"[ \t]*(?:\[\[\d{1,3}\]\]\([^)\s]*\)|" + _MARKER.pattern + ")")


def without_citations(text: str) -> str:
    """An answer without its Sources list and [n] markers (numbers that mean nothing outside that answer)."""
    text = text.split(f"\n\n{SOURCES_HEADING}\n", 1)[0]
    return "".join(piece if is_code else _ANY_MARKER.sub("", piece) for is_code, piece in _prose(text)).strip()


def sources_section(refs: Sequence[SourceRef]) -> str:
    """The Markdown list that ends an answer: one line per cited source, in citation order."""
    lines = [SOURCES_HEADING]
    for ref in refs:
        title = ref.title.replace("[", "(").replace("]", ")").replace("\n", " ") or "untitled"
        details = " · ".join(part for part in (ref.author, ref.date) if part)
        if ref.url:
            head = f"[{title}]({ref.url})"
        elif ref.link:
            head = f"{title} (`{ref.link}`)"
        else:
            head = title
        lines.append(f"- [{ref.number}] {head}" + (f" — {details}" if details else ""))
    return "\n".join(lines)


def with_sources(text: str, given: Sequence[Passage]) -> tuple[str, tuple[SourceRef, ...]]:
    """The answer as shown: markers linked and a Sources list appended; and the cited sources, in order."""
    numbers = cited_numbers(text, len(given))
    refs = tuple(source_ref(n, given[n - 1]) for n in numbers)
    if not refs:
        return text, ()
    return f"{link_markers(text, refs).rstrip()}\n\n{sources_section(refs)}", refs
