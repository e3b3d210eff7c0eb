"""What both backends do the same way once their rows are read: history budgets and the shapes of records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from moa.conversation import ConversationKey
from moa.events import Message, Usage
from moa.store import HistoryBudget, ProposalRecord, RunRecord

# the columns `run_record` reads, in its order (with the conversation's as `c`, the run's as `r`)
RUN_COLUMNS = (
    "r.id, c.platform, c.workspace, c.channel, c.thread, r.user_id, r.question, r.preset, r.status,"
    " r.placeholder, r.created_at, r.event_id, r.owner"
)
# the columns `proposal_record` reads, in its order
PROPOSAL_COLUMNS = "layer, model, text, latency_s, prompt_tokens, completion_tokens, error, straggler"


class Row(Protocol):
    """A row as either driver returns it: sqlite3's tuple, asyncpg's Record."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


async def newest_within(rows: AsyncIterable[Row], budget: HistoryBudget) -> list[Message]:
    """The messages that fit the budget, oldest first, from (role, content) rows read newest first.

    The oldest go first; reading stops at the first message that does not fit.
    """
    kept: list[Message] = []
    spent = 0
    async for role, content in rows:
        spent += budget.cost(content)
        if spent > budget.limit:
            break
        kept.append({"role": role, "content": content})
    kept.reverse()
    # a conversation handed to a model starts with the user speaking
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def run_record(row: Row) -> RunRecord:
    """A `RUN_COLUMNS` row."""
    return RunRecord(
        id=row[0],
        key=ConversationKey(row[1], row[2], row[3], row[4]),
        user=row[5],
        question=row[6],
        preset=row[7],
        status=row[8],
        placeholder=json.loads(row[9] or "{}"),
        created_at=row[10],
        event_id=row[11],
        owner=row[12],
    )


def proposal_record(row: Row) -> ProposalRecord:
    """A `PROPOSAL_COLUMNS` row."""
    return ProposalRecord(row[0], row[1], row[2], row[3], Usage(row[4], row[5]), row[6], bool(row[7]))


def run_dict(
    run: Mapping[str, Any], proposals: Iterable[Mapping[str, Any]], feedback: Iterable[Mapping[str, Any]]
) -> dict[str, object]:
    """`get_run`'s plain data: the run's columns, its placeholder decoded, its proposals and feedback."""
    record: dict[str, object] = dict(run)
    record["placeholder"] = json.loads(str(record["placeholder"]))
    # a bool on both backends (SQLite keeps it as 0 or 1)
    record["proposals"] = [{**p, "straggler": bool(p["straggler"])} for p in proposals]
    record["feedback"] = [dict(f) for f in feedback]
    return record


def proposal_rows(run_id: str, proposals: Iterable[ProposalRecord]) -> list[tuple[object, ...]]:
    """Rows for (run_id, `PROPOSAL_COLUMNS`)."""
    return [
        (
            run_id,
            p.layer,
            p.model,
            p.text,
            p.latency_s,
            p.usage.prompt_tokens,
            p.usage.completion_tokens,
            p.error,
            p.straggler,
        )
        for p in proposals
    ]


def rate_wait(counted: int, oldest: float | None, limit: int, per_s: float, now: float) -> float | None:
    """`admit`'s answer, from how many of a bucket's questions are within the window and when the oldest was:
    None when one more fits, else the seconds until the oldest leaves the window."""
    if counted < limit or oldest is None:
        return None
    return max(0.0, oldest + per_s - now)
