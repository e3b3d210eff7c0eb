"""What the core needs from persistence: the `ConversationStore` protocol and the records it keeps. `storage.Store`
and `storage.PostgresStore` implement it; the core never sees SQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
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
    owner: str = ""  # the replica answering it; "" once handed over to whichever takes it


class ConversationStore(Protocol):
    async def load_history(self, key: ConversationKey, budget: HistoryBudget) -> list[Message]: ...

    async def has_history(self, key: ConversationKey) -> bool: ...

    async def seed_history(self, key: ConversationKey, messages: Sequence[Message]) -> None: ...

    async def append_turn(self, key: ConversationKey, question: str, answer: str, run_id: str) -> None: ...

    async def forget(self, key: ConversationKey) -> int: ...

    async def create_run(
        self, key: ConversationKey, user: str, question: str, preset: str, event_id: str, *, owner: str = ""
    ) -> str:
        """A new pending run, answered by the replica `owner`; its id."""
        ...

    async def release_run(self, run_id: str) -> None:
        """Hand the run over: no replica owns it now, and the first to look for orphans takes it."""
        ...

    def claim_turn(
        self, key: ConversationKey, on_wait: Callable[[], Awaitable[None]]
    ) -> AbstractAsyncContextManager[None]:
        """Held while an answer in `key` is written, so that answers in one conversation come one at a time in
        every process serving the database; `on_wait()` first when another holds it."""
        ...

    async def admit(self, bucket: str, limit: int, per_s: float) -> float | None:
        """Count one question against `bucket` if fewer than `limit` were counted in the last `per_s` seconds
        (None), in every process serving the database; otherwise the seconds until one may be asked."""
        ...

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

    async def first_time(self, platform: str, *delivery_ids: str) -> bool:
        """Record every id one delivery goes by (its event id, its message id, a slash command's trigger id), all
        at once; False when any was recorded before: a retry, or the same message delivered again under another
        id. Of deliveries offered at once, to one process or several, at most one is told it is new."""
        ...
