"""Text into chunks of about 800 characters, split at paragraphs, then sentences, then words.

Each chunk after the first starts with the last sentence (or words) of the one before, up to `overlap`
characters, so a fact that straddles a boundary is still found whole in one of them.
"""

from __future__ import annotations

import re

SIZE = 800
OVERLAP = 120
PARAGRAPH_CUT = 0.6  # share of SIZE after which a new paragraph starts a new chunk

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n")


def chunk_text(text: str, size: int = SIZE, overlap: int = OVERLAP) -> list[str]:
    """The chunks of `text`: none for blank text, one for text that fits in `size`."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= size:
        return [text]
    pieces = [p for p in _pieces(text, size) if p]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        starts_paragraph = piece.startswith("\x00")
        joiner = "\n\n" if starts_paragraph else " "
        piece = piece.lstrip("\x00")
        full = current and len(current) + len(joiner) + len(piece) > size
        # a chunk well filled ends where its paragraph ends rather than in the middle of the next one
        if full or (starts_paragraph and len(current) >= size * PARAGRAPH_CUT):
            chunks.append(current)
            tail = _tail(current, overlap)
            current = tail if len(tail) + 1 + len(piece) <= size else ""
            joiner = " "
        current = f"{current}{joiner}{piece}" if current else piece
    if current and (not chunks or current != _tail(chunks[-1], overlap)):
        chunks.append(current)
    return chunks


def _pieces(text: str, size: int) -> list[str]:
    """Sentences (or word runs) no longer than `size`; a piece that starts a paragraph is marked with NUL."""
    out: list[str] = []
    for paragraph in _PARAGRAPHS.split(text):
        first = True
        for sentence in _SENTENCES.split(paragraph.strip()):
            sentence = sentence.strip()
            if not sentence:
                continue
            for part in _words(sentence, size):
                out.append(("\x00" if first else "") + part)
                first = False
    return out


def _words(sentence: str, size: int) -> list[str]:
    """A sentence longer than `size` cut between words (or inside a word longer than `size`)."""
    if len(sentence) <= size:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > size:
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:size])
            word = word[size:]
        if current and len(current) + 1 + len(word) > size:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def _tail(chunk: str, overlap: int) -> str:
    """The end of a chunk to repeat at the start of the next: whole sentences, else whole words."""
    if overlap <= 0:
        return ""
    sentences = [s for s in _SENTENCES.split(chunk) if s.strip()]
    tail = ""
    for sentence in reversed(sentences):
        candidate = f"{sentence.strip()} {tail}".strip()
        if len(candidate) > overlap:
            break
        tail = candidate
    if tail:
        return tail
    words = chunk[-overlap:].split(" ", 1)
    return words[-1].strip() if len(words) > 1 else ""
