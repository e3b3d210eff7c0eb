"""What the orchestrator reports while it works.

A run yields these in the order they happen; a terminal, Slack or Discord renders them. Every event is a frozen
dataclass so that consumers can pattern-match on the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ProposalStarted:
    model: str
    layer: int  # 1 = first proposer layer
    index: int  # position of the model in the preset's proposer list
    total: int  # proposers in this layer


@dataclass(frozen=True)
class ProposalDone:
    model: str
    layer: int
    index: int
    text: str
    latency_s: float
    usage: Usage
    attempts: int = 1


@dataclass(frozen=True)
class ProposalFailed:
    model: str
    layer: int
    index: int
    error: str
    latency_s: float
    straggler: bool = False  # cut off by the straggler grace, not failed by itself
    attempts: int = 1


@dataclass(frozen=True)
class AggregationStarted:
    model: str
    drafts: int  # drafts handed to the aggregator
    proposers: int  # proposers asked in the last layer


@dataclass(frozen=True)
class AggregationRetrying:
    """The aggregator's attempt failed (stalled, cut off, rate limited); another one starts after `delay_s`."""

    model: str
    attempt: int  # the attempt about to start, 2 = the first retry
    reason: str  # short, safe to show: "stalled", "stream cut", "rate limited", "unavailable"
    delay_s: float


@dataclass(frozen=True)
class AnswerDelta:
    text: str  # the new piece only
    reset: bool = False  # the aggregator was retried: this piece starts the answer over


@dataclass(frozen=True)
class AnswerDone:
    text: str
    aggregator: str
    contributors: tuple[str, ...]  # proposer models whose drafts reached the aggregator (last layer)
    elapsed_s: float
    usage: Usage
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    fallback: bool = False  # the aggregator failed: `text` is the longest draft, labelled as such
    aggregator_error: str = ""


@dataclass(frozen=True)
class RunFailed:
    message: str  # safe to show to a user: what failed and what to do
    elapsed_s: float = 0.0


Event = (
    ProposalStarted
    | ProposalDone
    | ProposalFailed
    | AggregationStarted
    | AggregationRetrying
    | AnswerDelta
    | AnswerDone
    | RunFailed
)
