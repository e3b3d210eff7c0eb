"""The boundary between chat platforms and the core: a question in, reply views out.

An adapter turns a platform event into a `Question` and implements a `ReplySink`; `moa.answering.Answerer`
does everything in between (access checks, storage, the MoA run) and drives the sink with `ReplyView`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from moa.events import Message

# Reads the messages a platform thread held before the bot joined it, as context for the models.
ContextLoader = Callable[[], Awaitable[Sequence[Message]]]


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
    """One message addressed to the bot, as the adapter received it; the core decides what to do with it.

    The text may be a question, `forget`, or start with `preset:NAME` (see `moa.intake`).
    """

    key: ConversationKey
    user: str  # platform user id
    text: str
    preset: str | None = None  # None: the configured default (a `preset:NAME` prefix in the text wins)
    # The platform event that delivered it; the core answers each id once (retries, replays, RESUMEs).
    event_id: str = ""
    # Other ids under which the same message may be delivered again (Slack sends a mention both as
    # `app_mention` and as `message`, with different event ids but one message ts).
    also_delivered_as: tuple[str, ...] = ()
    # Reads the thread's earlier messages when the bot is asked inside a thread it has not been part of.
    # Called at most once per conversation, and only while it has no stored history.
    context: ContextLoader | None = None
    # The channel a thread belongs to when the platform keeps threads as channels (Discord), so that an
    # allow-list naming a channel also covers the threads the bot opens in it. "" elsewhere.
    parent_channel: str = ""
    # Where the user id names one person, for the per-user rate: None means the conversation's workspace (a
    # Slack user id belongs to a workspace); "" means everywhere on the platform (a Discord user is the same
    # person in every guild and in DMs, so a DM is no way around the limit).
    user_scope: str | None = None
    # Slack's assistant pane: the channel the user has open beside the thread the question was asked in (what
    # team knowledge the answer may draw on). "" elsewhere.
    context_channel: str = ""

    @property
    def delivery_ids(self) -> tuple[str, ...]:
        return tuple(i for i in (self.event_id, *self.also_delivered_as) if i)


class Phase(StrEnum):
    QUEUED = "queued"
    WORKING = "working"  # asking proposers / synthesizing, nothing streamed yet
    STREAMING = "streaming"  # the aggregator's text is arriving
    DONE = "done"
    STOPPED = "stopped"  # the asker stopped it: `text` is what was written until then, marked as stopped
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ModelStatus:
    """Where one model of the run is, for platforms that show a card per model."""

    model: str  # the model id as the preset names it
    role: str  # "proposer" | "aggregator"
    layer: int  # proposer round (1-based); for the aggregator, the round after the last
    state: str  # drafting | done | failed | cut_off (proposers); synthesizing | writing | done | failed (aggregator)
    seconds: float | None = None  # how long it took, once finished
    tokens: int | None = None  # completion tokens, once finished
    detail: str = ""  # why it failed or was cut off, in a few words


@dataclass(frozen=True)
class ReplyView:
    """Everything the user should see of one answer right now. Later views replace earlier ones."""

    phase: Phase
    status: str  # one line: "Asking 4 models…", "3/4 drafts in, synthesizing…", "Queued, 2 ahead…"
    text: str = ""  # the answer so far in standard Markdown; for FAILED/INTERRUPTED, the message to show
    footer: str = ""  # DONE and STOPPED: "default · 4 models · 12.3 s", plain text; the adapter styles it
    run_id: str = ""  # the run this view belongs to (buttons on it name the run); "" for one-off replies
    models: tuple[ModelStatus, ...] = ()  # every model of the run so far, in the order they started

    @property
    def final(self) -> bool:
        return self.phase in (Phase.DONE, Phase.STOPPED, Phase.FAILED, Phase.INTERRUPTED)

    @property
    def has_answer(self) -> bool:
        """The view carries answer text to deliver as such (done or stopped), not a notice."""
        return self.phase in (Phase.DONE, Phase.STOPPED)


class ReplySink(Protocol):
    """Implemented by each adapter for one answer.

    `open` posts the placeholder and returns where it is, as JSON-able strings, so that the answer can be
    resumed or marked interrupted after a crash. A sink that creates the conversation's thread as it opens (Slack's
    `/moa` posts "… asked: …" and answers under it) returns the new thread as `"thread"`, and the core moves the
    question's conversation there. `show` must return promptly for non-final views (the sink coalesces and paces
    edits); a final view returns only once it is delivered in full, split across messages as the platform
    needs. `refuse` sends a one-off reply that is not an answer (a refusal, the confirmation of a `forget`),
    ephemerally where the platform allows.
    """

    async def open(self, view: ReplyView) -> dict[str, str]: ...

    async def show(self, view: ReplyView) -> None: ...

    async def refuse(self, message: str) -> None: ...
