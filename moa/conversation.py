"""The boundary between chat platforms and the core: a question in, reply views out.

An adapter turns a platform event into a `Question` and implements a `ReplySink`; `moa.answering.Answerer`
does everything in between (access checks, storage, the MoA run) and drives the sink with `ReplyView`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from moa.events import AnswerDone, Message, ProposalDone, ProposalFailed, Usage

if TYPE_CHECKING:  # the policy reads questions, so it imports this module; a question only names a rate
    from moa.policy import UserRate

# Reads the messages a platform thread held before the bot joined it, as context for the models.
ContextLoader = Callable[[], Awaitable[Sequence[Message]]]


@dataclass(frozen=True)
class ConversationKey:
    """Where a conversation lives. Workspaces (Slack teams, Discord guilds) never share history."""

    platform: str  # "slack" | "discord" | "console" | "api"
    workspace: str  # Slack team id, Discord guild id ("@dm" for direct messages), "local", the API key's name
    channel: str  # for the API: the request's `user` (the client's end user), "" when it names none
    thread: str = ""  # Slack thread_ts; Discord keeps threads as channels, so "" there; the API's completion id

    def __str__(self) -> str:
        return "/".join((self.platform, self.workspace, self.channel, self.thread))


@dataclass(frozen=True)
class Overrides:
    """Settings one question changes for the aggregator (an API request's temperature and max_tokens)."""

    temperature: float | None = None  # None: the preset's
    max_tokens: int | None = None


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
    # The conversation so far, when the caller holds it (an API request carries its messages): it is used
    # instead of the stored history, the text is taken literally (no `forget`, no `preset:`), and the turn is
    # not stored as history. None: the conversation's stored history.
    history: tuple[Message, ...] | None = None
    # What this question changes in its preset, for the model that writes the answer.
    overrides: Overrides = Overrides()
    # The asker's own rate, instead of the policy's per-user rate (an API key with a rate of its own).
    rate: UserRate | None = None
    # The front end checked the asker's access itself (an API key): the allow-lists, which name platform
    # channels and users, do not apply.
    authorized: bool = False
    # Team knowledge (`moa.knowledge`): a direct message sees public knowledge only; `unprompted` is a message
    # answered without a mention because it was posted in a knowledge channel (with no team source matching, it
    # may get no reply at all: MOA_KNOWLEDGE_NO_SOURCES); `knowledge` False answers from the models alone.
    is_dm: bool = False
    unprompted: bool = False
    knowledge: bool = True
    # The channel whose team knowledge the answer may draw on besides where it is asked: in Slack's assistant pane,
    # the channel the user has open beside it; for the API, the channel its key is scoped to. "" elsewhere.
    context_channel: str = ""
    # The knowledge source of the question's own message when it is indexed too (a knowledge channel's messages
    # are indexed as they arrive): it matches itself best, and is never a source for its own answer.
    source: str = ""

    @property
    def delivery_ids(self) -> tuple[str, ...]:
        return tuple(i for i in (self.event_id, *self.also_delivered_as) if i)


class RefusalReason(StrEnum):
    NO_QUESTION = "no_question"  # nothing visible was asked
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    NOT_ALLOWED = "not_allowed"  # an allow-list
    UNKNOWN_PRESET = "unknown_preset"
    RESTARTING = "restarting"  # the process is shutting down
    UNAVAILABLE = "unavailable"  # the question cannot be stored now


class Refusal(str):
    """A reply that is not an answer, in words for the user, and why it was given.

    It is a str, so that every sink shows it as it is; front ends that answer in codes rather than words (the
    API's HTTP statuses) read `reason` and, for a rate limit, `retry_after_s`.
    """

    reason: RefusalReason
    retry_after_s: float | None

    def __new__(cls, text: str, reason: RefusalReason, retry_after_s: float | None = None) -> Refusal:
        refusal = super().__new__(cls, text)
        refusal.reason = reason
        refusal.retry_after_s = retry_after_s
        return refusal


@dataclass(frozen=True)
class RunReport:
    """What a finished run did, model by model, for front ends that show it (the API's `moa` object)."""

    done: AnswerDone  # the answer, the total and per-model usage, fallback
    # every proposer call of every layer, in the order they ended; errors are redacted, drafts are in `text`
    proposals: tuple[ProposalDone | ProposalFailed, ...]
    aggregator_s: float  # from the aggregator's start to the end of its answer
    first_token_s: float | None  # from the aggregator's start to its first piece of text

    @property
    def aggregator_usage(self) -> Usage:
        """The aggregator's calls alone: the run's total minus every draft's."""
        drafts = sum((p.usage for p in self.proposals if isinstance(p, ProposalDone)), Usage())
        total = self.done.usage
        return Usage(total.prompt_tokens - drafts.prompt_tokens, total.completion_tokens - drafts.completion_tokens)


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
class SourceRef:
    """A team source the answer cited, for an adapter that renders sources natively.

    `number` is the [n] the answer cites it by; `link` is a URL (Slack permalink, Discord jump URL) or, for a
    local document, a file path.
    """

    number: int
    title: str
    author: str
    created_at: float  # unix time
    link: str
    kind: str  # "message" | "file" | "local" | "verified"
    channel: str = ""

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).strftime("%Y-%m-%d") if self.created_at else ""

    @property
    def url(self) -> str:
        """The link when it is a web address ("" for a file path)."""
        return self.link if self.link.startswith(("https://", "http://")) else ""


@dataclass(frozen=True)
class ReplyView:
    """Everything the user should see of one answer right now. Later views replace earlier ones."""

    phase: Phase
    status: str  # one line: "Asking 4 models…", "3/4 drafts in, synthesizing…", "Queued, 2 ahead…"
    text: str = ""  # the answer so far in standard Markdown; for FAILED/INTERRUPTED, the message to show
    # DONE: "self · Qwen2.5-72B-Instruct-Turbo ×4 → Qwen2.5-72B-Instruct-Turbo · 12.3 s"; STOPPED: "default · stopped
    # after 4.2 s". Plain text; the adapter styles it.
    footer: str = ""
    run_id: str = ""  # the run this view belongs to (buttons on it name the run); "" for one-off replies
    models: tuple[ModelStatus, ...] = ()  # every model of the run so far, in the order they started
    report: RunReport | None = None  # DONE: usage, timings and drafts of the run
    # DONE: the team sources the answer cited, in citation order (the text already ends with a Sources list)
    sources: tuple[SourceRef, ...] = ()

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
    resumed or marked interrupted after a crash. Where the answer is a message of its own, the dict names it with
    `"channel"` and `"message"` (the message id: a Slack ts, a Discord snowflake), so that a ✅ reaction on the
    answer finds its run (`moa.knowledge.Librarian.verify`). A sink that creates the conversation's thread as it opens (Slack's
    `/moa` posts "… asked: …" and answers under it) returns the new thread as `"thread"`, and the core moves the
    question's conversation there. `show` must return promptly for non-final views (the sink coalesces and paces
    edits); a final view returns only once it is delivered in full, split across messages as the platform
    needs. `refuse` sends a one-off reply that is not an answer (a refusal, the confirmation of a `forget`),
    ephemerally where the platform allows; a refusal is a `Refusal`, which says why.
    """

    async def open(self, view: ReplyView) -> dict[str, str]: ...

    async def show(self, view: ReplyView) -> None: ...

    async def refuse(self, message: str) -> None: ...


@runtime_checkable
class Reacting(Protocol):
    """A sink that can also put an emoji reaction on the question (its platform has reactions).

    The core uses it to say "seen, but nothing to answer" (🤷, name "shrug") where it posts no reply.
    """

    async def react(self, name: str) -> None: ...


async def react(sink: ReplySink, name: str) -> None:
    """React on the question where the sink can; a no-op for sinks that cannot."""
    if isinstance(sink, Reacting):
        await sink.react(name)
