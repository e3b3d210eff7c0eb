"""Which Slack events are questions for the bot, and where their answers go. Pure functions, no I/O.

Entry points (SPEC 4):
- `app_mention` anywhere, or a `message` that mentions the bot (the same message arrives as both when the app
  also subscribes to `message.*`; dedup on team + channel + ts keeps one);
- every `message` in a direct message with the bot (`channel_type: im`);
- in a knowledge channel, every top-level message and every reply in a thread, without a mention (a file shared
  there without a word is team knowledge, not a question).
The answer goes in the message's thread, or in a new thread under it: one conversation per thread, in DMs too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from adapters.slack.formatting import mentions

Kind = Literal["mention", "dm", "knowledge"]


@dataclass(frozen=True)
class Incoming:
    """A human message addressed to the bot, as the adapter needs it."""

    kind: Kind
    team: str
    channel: str
    user: str
    ts: str
    thread_ts: str  # the thread the answer goes in (the message's own ts when it starts one)
    text: str  # as Slack sent it: escaped, with <@U…> mentions
    event_id: str
    in_dm: bool = False  # a direct message with the bot (the assistant pane's too)

    @property
    def in_thread(self) -> bool:
        """The message is a reply inside an existing thread (the bot may not have seen the thread yet)."""
        return self.thread_ts != self.ts

    @property
    def message_key(self) -> str:
        """One key per Slack message, whichever event (app_mention or message) delivered it."""
        return f"msg:{self.team}:{self.channel}:{self.ts}"


# Subtypes that are still a person's new message: a thread reply also sent to the channel, a message with a file.
# Every other subtype (message_changed, message_deleted, channel_join, bot_message…) is not a question.
NEW_MESSAGE_SUBTYPES = frozenset({"thread_broadcast", "file_share"})


def is_human_message(event: Mapping[str, Any]) -> bool:
    """A person's new message: no bot, an author, and no subtype other than `NEW_MESSAGE_SUBTYPES`."""
    return (
        (event.get("subtype") is None or event.get("subtype") in NEW_MESSAGE_SUBTYPES)
        and not event.get("bot_id")
        and not event.get("bot_profile")
        and bool(event.get("user"))
    )


def addressed(
    body: Mapping[str, Any], *, bot_user_id: str, knowledge_channels: Collection[str]
) -> Incoming | None:
    """The question in an `event_callback` body, or None when the message is not for the bot."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") not in ("message", "app_mention"):
        return None
    if not is_human_message(event) or event.get("user") == bot_user_id:
        return None
    channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
    if not channel or not ts:
        return None
    text = str(event.get("text") or "")
    in_dm = event.get("channel_type", "im" if channel.startswith("D") else "") == "im"
    kind: Kind
    if event.get("type") == "app_mention" or (bot_user_id and mentions(text, bot_user_id)):
        kind = "mention"
    elif in_dm:
        kind = "dm"
    elif channel in knowledge_channels and text.strip():
        kind = "knowledge"
    else:
        return None
    team = str(body.get("team_id") or event.get("team") or "")
    return Incoming(
        kind=kind,
        team=team,
        channel=channel,
        user=str(event["user"]),
        ts=ts,
        thread_ts=str(event.get("thread_ts") or ts),
        text=text,
        event_id=str(body.get("event_id") or ""),
        in_dm=in_dm,
    )


def ts_before(a: str, b: str) -> bool:
    """Slack timestamps compare as numbers ("1700000000.000100"); strings would mostly work, numbers always."""
    return _ts(a) < _ts(b)


def _ts(value: str) -> tuple[int, int]:
    seconds, _, fraction = value.partition(".")
    try:
        return int(seconds), int(fraction.ljust(6, "0")[:6] or 0)
    except ValueError:
        return 0, 0
