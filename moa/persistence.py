"""What the core needs from persistence: the `ConversationStore` protocol and the records it keeps. `storage.Store`
and `storage.PostgresStore` implement it; the core never sees SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from moa.conversation import ConversationKey
from moa.events import Message, Usage


@dataclass(frozen=True)
class HistoryBudget:
    """How much earlier conversation goes to the models. Tokens are estimated at four characters each."""

    limit: int = 24_000
    unit: Literal["chars", "tokens"] = "chars"

    def cost(self, text: str) -> int:
        return len(text) if self.unit == "chars" else (len(text) + 3) // 4

    @classmethod
    def parse(cls, value: str) -> HistoryBudget:
        """"24000", "24000 chars" or "6000 tokens"."""
        number, _, unit = value.strip().partition(" ")
        unit = unit.strip() or "chars"
        if not number.isdigit() or unit not in ("chars", "tokens"):
            raise ValueError(f"{value!r} is not like '24000 chars' or '6000 tokens'")
        return cls(int(number), unit)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProposalRecord:
    layer: int
    model: str
    text: str
    latency_s: float
    usage: Usage
    error: str = ""
    straggler: bool = False


@dataclass(frozen=True)
class RunRecord:
    id: str
    key: ConversationKey
    user: str
    question: str
    preset: str
    status: str
    placeholder: dict[str, str]
    created_at: float  # unix time
    event_id: str = ""


class ConversationStore(Protocol):
    async def load_history(self, key: ConversationKey, budget: HistoryBudget) -> list[Message]: ...

    async def has_history(self, key: ConversationKey) -> bool: ...

    async def seed_history(self, key: ConversationKey, messages: Sequence[Message]) -> None: ...

    async def append_turn(self, key: ConversationKey, question: str, answer: str, run_id: str) -> None: ...

    async def forget(self, key: ConversationKey) -> int: ...

    async def create_run(
        self, key: ConversationKey, user: str, question: str, preset: str, event_id: str
    ) -> str: ...

    async def set_placeholder(self, run_id: str, placeholder: dict[str, str]) -> None: ...

    async def move_run(self, run_id: str, key: ConversationKey) -> None:
        """The run belongs to the conversation `key` (a sink created the thread only as it opened)."""
        ...

    async def mark_running(self, run_id: str) -> None: ...

    async def add_proposals(self, run_id: str, proposals: Sequence[ProposalRecord]) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        answer: str = "",
        error: str = "",
        elapsed_s: float = 0.0,
        usage: Usage = Usage(),
    ) -> None: ...

    async def unfinished_runs(self) -> list[RunRecord]: ...

    async def drafts(self, run_id: str) -> tuple[str, list[ProposalRecord]] | None:
        """A run's question and proposals; None for an unknown (or purged) run."""
        ...

    async def record_feedback(self, run_id: str, user: str, value: str) -> bool:
        """A person's 👍 ("up") or 👎 ("down") on a run, replacing their earlier one; False for an unknown run."""
        ...

    async def first_time(self, platform: str, event_id: str) -> bool: ...
