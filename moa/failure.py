"""What to tell people when no model could answer: the advice, worded for who reads it.

A failure message ends with one piece of advice. In a chat channel the people reading it cannot fix the bot, so it
speaks of "an operator"; at the command line the reader is the operator, so it says what to check. The core writes
the chat wording (every chat adapter shows the message as it is); a front end whose reader is the operator turns
it into the terminal wording with `readdress`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from moa.errors import ProviderError, ProviderUnreachable


class Audience(StrEnum):
    CHAT = "chat"  # people in a channel: someone else runs the bot
    TERMINAL = "terminal"  # the person who runs it, at the command line


@dataclass(frozen=True)
class Advice:
    chat: str
    terminal: str

    def to(self, audience: Audience) -> str:
        return self.terminal if audience is Audience.TERMINAL else self.chat


CHECK_KEY = Advice(
    "An operator needs to check the API key (TOGETHER_API_KEY or the provider's key).",
    "Check TOGETHER_API_KEY (or the variable named by the provider's api_key_env); `moa-bot doctor` tests it.",
)
CHECK_MODELS = Advice(
    "An operator needs to check the preset's model ids (`moa-bot doctor` lists the missing ones).",
    "Run `moa-bot doctor`: it lists the models that were not found and the presets that use them.",
)
CHECK_CONNECTION = Advice(
    "Please try again later; if it keeps failing, an operator needs to check the connection to the provider.",
    "Check your network and TOGETHER_BASE_URL (or the provider's base_url), then run `moa-bot doctor`.",
)
_OPERATOR_ADVICE = (CHECK_KEY, CHECK_MODELS, CHECK_CONNECTION)


def advice_for(errors: Sequence[ProviderError]) -> Advice:
    """The one thing most worth doing about these failures: fix the setup if that is the cause, else wait."""
    if any(e.status in (401, 403) for e in errors):
        return CHECK_KEY
    if any(e.status == 404 for e in errors):
        return CHECK_MODELS
    if errors and all(isinstance(e, ProviderUnreachable) for e in errors):
        return CHECK_CONNECTION
    waits = [e.retry_after for e in errors if e.retry_after is not None]
    again = f"Please try again {retry_in_words(max(waits) if waits else None)}."
    return Advice(again, again)


def retry_in_words(seconds: float | None) -> str:
    """'in a minute', 'in about 5 minutes', 'in about 1 hour', 'in about 2 days'."""
    if seconds is None or seconds <= 60:
        return "in a minute"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"in about {minutes} minutes"
    hours = max(1, round(seconds / 3600))
    if hours < 36:
        return f"in about {hours} hour{'s' if hours > 1 else ''}"
    days = round(seconds / 86400)
    return f"in about {days} day{'s' if days > 1 else ''}"


def readdress(message: str, audience: Audience) -> str:
    """A failure message written for chat, with its advice worded for `audience` instead."""
    for advice in _OPERATOR_ADVICE:
        if message.endswith(advice.chat):
            return message.removesuffix(advice.chat) + advice.to(audience)
    return message
