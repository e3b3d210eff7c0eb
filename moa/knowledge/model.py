"""The shapes of team knowledge, and what the core needs from the index that storage keeps.

A `Document` is one thing to index (a message, a shared file, a local file, a verified answer); storage splits
it into chunks and finds `Passage`s for an `Audience`, the people asking. The core owns these shapes and the
`KnowledgeIndex` protocol; `storage.Store` implements it, and nothing outside `storage/` sees SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Kind(StrEnum):
    MESSAGE = "message"  # a chat message (with its thread replies indexed as messages of their own)
    FILE = "file"  # a file shared in a knowledge channel
    LOCAL = "local"  # a file added with `moa-bot knowledge add`
    VERIFIED = "verified"  # a question and the bot's answer, confirmed with a ✅


class Visibility(StrEnum):
    PUBLIC = "public"  # anyone in the workspace may read it
    PRIVATE = "private"  # only the people in its channel (a private Slack channel, a hidden Discord channel)


class NoSources(StrEnum):
    """What an unprompted question in a knowledge channel gets when no team source matches it."""

    ANSWER = "answer"  # an answer from the models alone, with a note saying so
    SILENT = "silent"  # no reply, a 🤷 reaction on the question


LOCAL = "local"  # the platform of local documents: they belong to the deployment, not to a workspace


@dataclass(frozen=True)
class Document:
    """One thing to index. `source` is stable: indexing the same source again replaces it.

    Sources look like "slack:T1:C1:1700000000.000100", "discord:G:C:123", "local:/abs/path", "verified:RUNID".
    Local documents have platform "local", no workspace, and `channel` "" (the whole deployment may read them)
    or the one channel id they are scoped to.
    """

    source: str
    kind: Kind
    platform: str  # "slack" | "discord" | "local" | the platform of a verified answer
    workspace: str  # Slack team id, Discord guild id; "" for local documents
    channel: str  # where it was posted (a thread's parent channel on Discord); "" for deployment-wide
    text: str
    visibility: Visibility = Visibility.PUBLIC
    title: str = ""  # a file's name, a message's first words; derived from the text when empty
    author: str = ""  # a display name or user id
    created_at: float = 0.0  # unix time
    link: str = ""  # a Slack permalink, a Discord jump URL, a file path
    thread: str = ""  # the thread it belongs to (Slack thread_ts, Discord thread id), "" for top level

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", short_title(self.text))


@dataclass(frozen=True)
class Passage:
    """A chunk found by a search, with what a Sources line shows about its document."""

    chunk_id: int
    source: str
    kind: Kind
    platform: str
    workspace: str
    channel: str
    visibility: Visibility
    title: str
    author: str
    created_at: float
    link: str
    text: str
    score: float  # higher is better: bm25 relevance (sign flipped), cosine similarity, or a fused score
    similarity: float | None = None  # cosine similarity when it came from the vector search

    @property
    def verified(self) -> bool:
        return self.kind is Kind.VERIFIED


@dataclass(frozen=True)
class Audience:
    """Who asks: what decides which passages they may see (`moa.knowledge.privacy`).

    `workspace` None is the deployment's own terminal (`moa-bot ask`, `chat`) or API: public knowledge of every
    workspace and the deployment's local documents, and the channels of an API key's scope. `channels` are the channel the question is in and, for a
    thread that the platform keeps as a channel (Discord), its parent.
    """

    platform: str
    workspace: str | None
    channels: frozenset[str] = frozenset()
    is_dm: bool = False


@dataclass(frozen=True)
class Shelf:
    """A set of documents an audience may read: every field that is not None must match."""

    platform: str | None = None
    workspace: str | None = None
    channels: frozenset[str] | None = None
    visibility: Visibility | None = None

    def holds(self, platform: str, workspace: str, channel: str, visibility: Visibility) -> bool:
        return (
            (self.platform is None or platform == self.platform)
            and (self.workspace is None or workspace == self.workspace)
            and (self.channels is None or channel in self.channels)
            and (self.visibility is None or visibility == self.visibility)
        )


@dataclass(frozen=True)
class Cursor:
    """How far a channel's history has been read back, so a backfill resumes after a restart."""

    platform: str
    workspace: str
    channel: str
    cursor: str = ""  # the platform's paging cursor (or the oldest message id read)
    done: bool = False
    messages: int = 0  # indexed so far by the backfill
    oldest: float = 0.0  # unix time of the oldest message read so far
    updated_at: float = 0.0


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    kind: Kind
    platform: str
    workspace: str
    channel: str
    visibility: Visibility
    title: str
    chunks: int
    chars: int
    indexed_at: float


@dataclass(frozen=True)
class IndexStats:
    documents: dict[str, int]  # by kind
    chunks: int
    chars: int
    database_bytes: int
    embedded: int  # chunks with a vector
    pending_embeddings: int
    cursors: tuple[Cursor, ...] = ()


@dataclass(frozen=True)
class GivenSource:
    """A passage as the models were given it, numbered from 1, for the run record."""

    number: int
    passage: Passage


@dataclass(frozen=True)
class PendingChunk:
    chunk_id: int
    text: str


class Upsert(StrEnum):
    ADDED = "added"
    REPLACED = "replaced"  # the source was indexed before with another text
    UNCHANGED = "unchanged"  # same content hash: nothing was written
    REMOVED = "removed"  # a message edited down to nothing


@dataclass(frozen=True)
class RunOrigin:
    """The run a bot message answered, as a ✅ reaction needs it."""

    run_id: str
    platform: str
    workspace: str
    channel: str
    thread: str
    user: str
    question: str
    answer: str
    status: str


class KnowledgeIndex(Protocol):
    """What the core needs from the index. Every method raises `moa.errors.StorageError` on failure."""

    async def upsert_documents(self, items: Sequence[tuple[Document, Sequence[str], str]]) -> list[Upsert]:
        """Index each (document, its chunks, its digest) in one transaction, replacing what its source held; a
        source indexed before with the same digest (a hash of its content, computed by the core) is left as is."""
        ...

    async def remove_source(self, source: str) -> int:
        """Remove a document and its chunks; returns how many documents were removed (0 or 1)."""
        ...

    async def remove_sources(self, prefix: str) -> int:
        """Remove every document whose source starts with `prefix` (a folder, a message with its files)."""
        ...

    async def remove_channel(self, platform: str, workspace: str, channel: str) -> int:
        """Remove every document of a channel and its backfill cursor; returns how many documents."""
        ...

    async def indexed_channels(self) -> list[tuple[str, str, str]]:
        """(platform, workspace, channel) of every chat channel with documents or a cursor."""
        ...

    async def search_text(self, terms: Sequence[str], shelves: Sequence[Shelf], limit: int) -> list[Passage]:
        """Full-text search for any of `terms`, best first, only on `shelves`."""
        ...

    async def search_vector(
        self, vector: Sequence[float], shelves: Sequence[Shelf], limit: int
    ) -> list[Passage]:
        """Nearest chunks to `vector`, best first, only on `shelves`; [] when vectors are off."""
        ...

    async def documents(self, prefix: str = "") -> list[DocumentInfo]: ...

    async def document_hash(self, source: str) -> str | None: ...

    async def stats(self) -> IndexStats: ...

    async def get_cursor(self, platform: str, workspace: str, channel: str) -> Cursor | None: ...

    async def set_cursor(self, cursor: Cursor) -> None: ...

    async def pending_embeddings(self, limit: int) -> list[PendingChunk]:
        """Chunks that have no vector yet, oldest first; [] when vectors are off."""
        ...

    async def store_embeddings(self, vectors: Sequence[tuple[int, Sequence[float]]]) -> None: ...

    async def record_sources(self, run_id: str, given: Sequence[GivenSource]) -> None: ...

    async def mark_cited(self, run_id: str, numbers: Sequence[int]) -> None: ...

    async def run_for_message(self, platform: str, channel: str, message: str) -> RunOrigin | None:
        """The run whose answer is the bot's message `message` in `channel` (its placeholder)."""
        ...


def short_title(text: str, words: int = 8) -> str:
    """The first words of a text, for a Sources line."""
    parts = text.split()
    title = " ".join(parts[:words])
    return f"{title}…" if len(parts) > words else title
