"""The boundary between chat platforms and the core: a question in, reply views out.

An adapter turns a platform event into a `Question` and implements a `ReplySink`; `moa.answering.Answerer`
does everything in between (access checks, storage, the MoA run) and drives the sink with `ReplyView`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from moa.events import Message


@dataclass(frozen=True)
class ConversationKey:
    """Where a conversation lives. Workspaces (Slack teams, Discord guilds) never share history."""

    platform: str  # "slack" | "discord" | "console"
    workspace: str  # Slack team id, Discord guild id ("@dm" for direct messages), "local"
    channel: str
    thread: str = ""  # Slack thread_ts; Discord keeps threads as channels, so "" there

    def __str__(self) -> str:
        return "/".join((self.platform, self.workspace, self.channel, self.thread))


@dataclass(frozen=True)
class Question:
    key: ConversationKey
    user: str  # platform user id
    text: str
    preset: str | None = None  # None: the configured default
    event_id: str = ""  # the platform event that asked it, for logs and records
    # Context read from the platform when the bot joins an existing conversation; used only while the stored
    # history is empty, so the platform is never read again for this conversation.
    seed_history: tuple[Message, ...] = field(default=())
    # The channel a thread belongs to when the platform keeps threads as channels (Discord), so that an
    # allow-list naming a channel also covers the threads the bot opens in it. "" elsewhere.
    parent_channel: str = ""


class Phase(StrEnum):
    QUEUED = "queued"
    WORKING = "working"  # asking proposers / synthesizing, nothing streamed yet
    STREAMING = "streaming"  # the aggregator's text is arriving
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ReplyView:
    """Everything the user should see of one answer right now. Later views replace earlier ones."""

    phase: Phase
    status: str  # one line: "Asking 4 models…", "3/4 drafts in, synthesizing…", "Queued, 2 ahead…"
    text: str = ""  # the answer so far in standard Markdown; for FAILED/INTERRUPTED, the message to show
    footer: str = ""  # DONE only: "default · 4 models · 12.3 s", plain text; the adapter styles it

    @property
    def final(self) -> bool:
        return self.phase in (Phase.DONE, Phase.FAILED, Phase.INTERRUPTED)


class ReplySink(Protocol):
    """Implemented by each adapter for one answer.

    `open` posts the placeholder and returns where it is, as JSON-able strings, so that the answer can be
    resumed or marked interrupted after a crash. `show` must return promptly for non-final views (the sink
    coalesces and paces edits); a final view returns only once it is delivered in full, split across messages
    as the platform needs. `refuse` answers a question that was not accepted (limits, access), ephemerally
    where the platform allows.
    """

    async def open(self, view: ReplyView) -> dict[str, str]: ...

    async def show(self, view: ReplyView) -> None: ...

    async def refuse(self, message: str) -> None: ...
