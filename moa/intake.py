"""What a message addressed to the bot asks for, read from its text alone (pure functions, no I/O).

Every platform's messages go through here, so `forget` and `preset:NAME` mean the same in Slack, Discord and
the terminal:
- `forget` (or `forget this thread` / `forget the conversation`) deletes the conversation's stored history;
- `preset:NAME question` answers `question` with the preset NAME;
- anything else is a question. A message with nothing visible in it (only spaces or zero-width characters) is
  no question at all, and is answered with a hint instead of being sent to the models.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

_FORGET = re.compile(r"forget(?: (?:this|the) (?:thread|conversation))?[.!]?", re.IGNORECASE)
_PRESET = re.compile(r"^\s*preset:(\S+)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    kind: Literal["ask", "forget"]
    text: str  # the question without its `preset:` prefix
    preset: str | None = None  # named in the text; None: not named there


def read_request(text: str) -> Request:
    """`forget`, or a question with the preset its text names (if any)."""
    if _FORGET.fullmatch(text.strip()):
        return Request("forget", "")
    match = _PRESET.match(text)
    if match is None:
        return Request("ask", text)
    return Request("ask", text[match.end() :], match.group(1))


def visible(text: str) -> bool:
    """True when the text shows something: not only whitespace and invisible format characters (U+200B…)."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)
