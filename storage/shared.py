"""What both backends do the same way around their SQL: history budgets, the shapes of records and rows, and the
privacy shelves as a WHERE clause."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from moa.conversation import ConversationKey
from moa.events import Message, Usage
from moa.knowledge.model import Cursor, Document, DocumentInfo, GivenSource, Kind, Passage, Shelf, Visibility
from moa.persistence import HistoryBudget, ProposalRecord, RunRecord

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


# --- team knowledge --------------------------------------------------------------------------------------------

# what a knowledge channel holds, as SQL (verified answers are kept when it goes)
CHAT_KINDS = "('message', 'file')"
# sources starting with a prefix P are those in [P, P + this), in byte order (SQLite's, and PostgreSQL's "C")
PREFIX_END = "\U0010ffff"
# the columns `passage` reads, in its order (with the chunk's as `c`, its document's as `d`)
PASSAGE_COLUMNS = (
    "c.id, d.source, d.kind, d.platform, d.workspace, d.channel, d.visibility, d.title, d.author, d.created_at,"
    " d.link, c.text"
)
# the columns `document_row` fills, in its order
DOCUMENT_COLUMNS = (
    "source, kind, platform, workspace, channel, visibility, title, author, created_at, link, thread, digest, chars,"
    " indexed_at"
)
# the columns `document_info` reads, in its order (the document's as `d`)
DOCUMENT_INFO_COLUMNS = (
    "d.source, d.kind, d.platform, d.workspace, d.channel, d.visibility, d.title,"
    " (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id), d.chars, d.indexed_at"
)
# the columns of `backfill_cursors` that `cursor_row` fills and `cursor_record` reads, in their order
CURSOR_COLUMNS = "platform, workspace, channel, cursor, done, messages, oldest, updated_at"
# the columns `given_rows` fills, in its order
RUN_SOURCE_COLUMNS = "run_id, number, chunk_id, source, title, author, created_at, link, score"
# the columns `RunOrigin` takes, in its order (the run's as `r`, its conversation's as `c`)
RUN_ORIGIN_COLUMNS = "r.id, c.platform, c.workspace, c.channel, c.thread, r.user_id, r.question, r.answer, r.status"


def shelf_filter(shelves: Sequence[Shelf], bind: Callable[[object], str]) -> str:
    """The privacy shelves as a WHERE clause on `documents d`; nothing is readable without a shelf.

    `bind` adds a parameter and returns its placeholder ("?" for SQLite, "$3" for PostgreSQL).
    """
    clauses: list[str] = []
    for shelf in shelves:
        parts: list[str] = []
        for column, value in (("platform", shelf.platform), ("workspace", shelf.workspace),
                              ("visibility", shelf.visibility)):
            if value is not None:
                parts.append(f"d.{column} = {bind(str(value))}")
        if shelf.channels is not None:
            channels = sorted(shelf.channels)
            parts.append(f"d.channel IN ({', '.join(bind(c) for c in channels)})" if channels else "FALSE")
        clauses.append(f"({' AND '.join(parts) or 'TRUE'})")
    return " OR ".join(clauses) or "FALSE"


def passage(row: Row, score: float, similarity: float | None = None) -> Passage:
    """A `PASSAGE_COLUMNS` row."""
    return Passage(
        chunk_id=int(row[0]),
        source=row[1],
        kind=Kind(row[2]),
        platform=row[3],
        workspace=row[4],
        channel=row[5],
        visibility=Visibility(row[6]),
        title=row[7],
        author=row[8],
        created_at=float(row[9]),
        link=row[10],
        text=row[11],
        score=score,
        similarity=similarity,
    )


def document_row(document: Document, digest: str, indexed_at: float) -> tuple[object, ...]:
    """Values for `DOCUMENT_COLUMNS`."""
    d = document
    return (d.source, d.kind.value, d.platform, d.workspace, d.channel, d.visibility.value, d.title, d.author,
            d.created_at, d.link, d.thread, digest, len(d.text), indexed_at)


def document_info(row: Row) -> DocumentInfo:
    """A `DOCUMENT_INFO_COLUMNS` row."""
    return DocumentInfo(row[0], Kind(row[1]), row[2], row[3], row[4], Visibility(row[5]), row[6], int(row[7]),
                        int(row[8]), row[9])


def cursor_row(cursor: Cursor, now: float) -> tuple[object, ...]:
    """Values for `CURSOR_COLUMNS`; updated now unless the cursor says when."""
    c = cursor
    return (c.platform, c.workspace, c.channel, c.cursor, int(c.done), c.messages, c.oldest, c.updated_at or now)


def cursor_record(row: Row) -> Cursor:
    """A `CURSOR_COLUMNS` row."""
    return Cursor(row[0], row[1], row[2], row[3], bool(row[4]), int(row[5]), float(row[6]), float(row[7]))


def given_rows(run_id: str, given: Iterable[GivenSource]) -> list[tuple[object, ...]]:
    """Rows for `RUN_SOURCE_COLUMNS`."""
    return [
        (run_id, g.number, g.passage.chunk_id, g.passage.source, g.passage.title, g.passage.author,
         g.passage.created_at, g.passage.link, g.passage.score)
        for g in given
    ]
