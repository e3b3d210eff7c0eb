"""The Librarian: the one object that adds to, changes and reads the team knowledge.

Adapters (live messages, edits, deletions, shared files, backfill cursors, ✅ reactions) and the CLI (`moa-bot
knowledge ...`) call it; none of them touches storage. The answerer calls `find` before a run, and records which
passages were given and cited.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from moa.errors import ProviderError
from moa.events import Message
from moa.knowledge.chunking import chunk_text
from moa.knowledge.citations import without_citations
from moa.knowledge.embedding import Embedder, EmbeddingWorker
from moa.knowledge.extract import MB, Skipped, extract, too_large, unsupported
from moa.knowledge.model import (
    LOCAL,
    Audience,
    Cursor,
    Document,
    DocumentInfo,
    GivenSource,
    IndexStats,
    Kind,
    KnowledgeIndex,
    Passage,
    Shelf,
    Upsert,
    Visibility,
    short_title,
)
from moa.knowledge.privacy import can_see, shelves
from moa.knowledge.retrieval import Query, RetrievalPolicy, build_query, rank

log = logging.getLogger("moa.knowledge")

VERIFIED_PREFIX = "verified:"
LOCAL_PREFIX = "local:"
CHAT_KINDS = (Kind.MESSAGE, Kind.FILE)
ANSWERED = ("done", "fallback")  # run statuses whose answer can be verified


class Verification(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    NOT_AN_ANSWER = "not_an_answer"  # the message is not the bot's finished answer
    NOT_ALLOWED = "not_allowed"  # neither the asker nor a curator


@dataclass
class AddReport:
    """What `moa-bot knowledge add` did, file by file."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # gone from a folder added again
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def local_source(path: Path) -> str:
    return f"{LOCAL_PREFIX}{path}"


def digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\x00")
    return hasher.hexdigest()


def document_digest(document: Document) -> str:
    """What makes a document differ from its last indexing: its text and everything a Sources line shows."""
    d = document
    return digest(d.text, d.title, d.author, d.link, d.channel, d.visibility.value, d.thread, repr(d.created_at))


class Librarian:
    def __init__(
        self,
        index: KnowledgeIndex,
        *,
        curators: Collection[str] = (),
        max_file_bytes: int = 10 * MB,
        policy: RetrievalPolicy = RetrievalPolicy(),
        embedder: Embedder | None = None,
        worker: EmbeddingWorker | None = None,
    ) -> None:
        self.index = index
        self.curators = frozenset(curators)
        self.max_file_bytes = max_file_bytes
        self.policy = policy
        self.embedder = embedder
        self.worker = worker

    # --- chat messages and files (adapters) ------------------------------------------------------------

    async def index_message(self, document: Document) -> Upsert:
        """Index a message as it arrives, or after an edit (same source: replaced).

        A message edited down to nothing is removed.
        """
        if not document.text.strip():
            await self.index.remove_source(document.source)
            return Upsert.REMOVED
        return (await self.index_messages([document]))[0]

    async def index_messages(self, documents: Sequence[Document]) -> list[Upsert]:
        """Index a page of messages at once (a backfill): one transaction, unchanged ones left as they are.
        Messages without text are skipped (UNCHANGED)."""
        items = [(d, chunk_text(d.text), document_digest(d)) for d in documents if d.text.strip()]
        outcomes = iter(await self.index.upsert_documents(items) if items else [])
        result = [next(outcomes) if d.text.strip() else Upsert.UNCHANGED for d in documents]
        self._wake(result)
        return result

    def accepts_file(self, name: str, size: int) -> Skipped | None:
        """Why a shared file will not be indexed (so it is not even downloaded), or None."""
        return unsupported(name) or too_large(size, self.max_file_bytes)

    async def index_file(self, document: Document, data: bytes) -> Upsert | Skipped:
        """Index a file shared in a knowledge channel; `document.title` is its name, its text is ignored.

        Give it the source of its message followed by "/file:ID" so deleting the message removes it too.
        Unsupported or oversized files are logged and skipped, never raised.
        """
        result = await asyncio.to_thread(extract, document.title, data, max_bytes=self.max_file_bytes)
        if isinstance(result, Skipped):
            log.info("knowledge: skipped file %r in %s: %s", document.title, document.channel, result.reason)
            return result
        indexed = replace(document, kind=Kind.FILE, text=f"{document.title}\n\n{result.text}")
        return await self._upsert(indexed, document_digest(indexed))

    async def delete(self, source: str) -> int:
        """A deleted message (and the files shared with it) leaves the index at once."""
        return await self.index.remove_source(source) + await self.index.remove_sources(f"{source}/")

    async def purge_channel(self, platform: str, workspace: str, channel: str) -> int:
        removed = await self.index.remove_channel(platform, workspace, channel)
        log.info("knowledge: purged %d documents of %s channel %s", removed, platform, channel)
        return removed

    async def purge_unconfigured(self, configured: Collection[str]) -> int:
        """Purge every chat channel that is no longer a knowledge channel (the maintenance job)."""
        removed = 0
        for platform, workspace, channel in await self.index.indexed_channels():
            if channel not in configured:
                removed += await self.purge_channel(platform, workspace, channel)
        return removed

    async def cursor(self, platform: str, workspace: str, channel: str) -> Cursor | None:
        return await self.index.get_cursor(platform, workspace, channel)

    async def save_cursor(self, cursor: Cursor) -> None:
        await self.index.set_cursor(replace(cursor, updated_at=time.time()))
        if cursor.done:
            log.info("knowledge: backfill of %s channel %s done: %d messages", cursor.platform, cursor.channel,
                     cursor.messages)
        else:
            log.info("knowledge: backfill of %s channel %s: %d messages so far", cursor.platform, cursor.channel,
                     cursor.messages)

    # --- verified answers (✅ reactions) -----------------------------------------------------------------

    async def verify(
        self,
        platform: str,
        channel: str,
        message: str,
        user: str,
        *,
        private: bool,
        scope_channel: str = "",
        link: str = "",
    ) -> Verification:
        """A ✅ on the bot's answer `message` in `channel` by `user`: saved as a verified entry if `user` asked
        the question or is a curator. `private`: the channel is private (its members only); `scope_channel`: the
        channel whose questions may see it when that is not `channel` (a Discord thread's parent)."""
        run = await self.index.run_for_message(platform, channel, message)
        if run is None or run.status not in ANSWERED or not run.answer.strip():
            return Verification.NOT_AN_ANSWER
        if user != run.user and user not in self.curators:
            return Verification.NOT_ALLOWED
        answer = without_citations(run.answer)
        document = Document(
            source=f"{VERIFIED_PREFIX}{run.run_id}",
            kind=Kind.VERIFIED,
            platform=platform,
            workspace=run.workspace,
            channel=scope_channel or run.channel,
            visibility=Visibility.PRIVATE if private else Visibility.PUBLIC,
            title=short_title(run.question),
            author=user,
            created_at=time.time(),
            link=link,
            text=f"Q: {run.question}\n\nA: {answer}",
        )
        await self._upsert(document, digest(document.text, document.channel, document.visibility.value, link))
        log.info("knowledge: answer %s verified by %s", run.run_id, user)
        return Verification.VERIFIED

    async def unverify(self, platform: str, channel: str, message: str, user: str) -> Verification:
        """The ✅ was taken away (by the asker or a curator): the entry is no longer verified."""
        run = await self.index.run_for_message(platform, channel, message)
        if run is None:
            return Verification.NOT_AN_ANSWER
        if user != run.user and user not in self.curators:
            return Verification.NOT_ALLOWED
        await self.index.remove_source(f"{VERIFIED_PREFIX}{run.run_id}")
        return Verification.UNVERIFIED

    # --- local documents (the CLI) ---------------------------------------------------------------------------

    async def add_paths(self, paths: Iterable[Path], *, scope: str = "") -> AddReport:
        """Index files and folders (recursively). An unchanged file does nothing; a changed one is replaced; a
        file gone from a folder added again is removed. `scope`: the one channel whose questions may see them."""
        report = AddReport()
        for given in paths:
            path = await asyncio.to_thread(_absolute, given)
            if await asyncio.to_thread(path.is_dir):
                seen = set()
                for file in await asyncio.to_thread(_files_under, path):
                    seen.add(local_source(file))
                    await self._add_file(file, scope, report)
                for info in await self.index.documents(local_source(path) + os.sep):
                    if info.source not in seen:
                        await self.index.remove_source(info.source)
                        report.removed.append(info.source.removeprefix(LOCAL_PREFIX))
            elif await asyncio.to_thread(path.is_file):
                await self._add_file(path, scope, report)
            else:
                report.skipped.append((str(path), "no such file or folder"))
        return report

    async def _add_file(self, path: Path, scope: str, report: AddReport) -> None:
        read = await asyncio.to_thread(self._read_local, path)
        if isinstance(read, Skipped):
            report.skipped.append((str(path), read.reason))
            return
        data, modified = read
        source = local_source(path)
        file_digest = digest(data, scope)
        if await self.index.document_hash(source) == file_digest:
            report.unchanged.append(str(path))
            return
        result = await asyncio.to_thread(extract, path.name, data, max_bytes=self.max_file_bytes)
        if isinstance(result, Skipped):
            report.skipped.append((str(path), result.reason))
            return
        document = Document(
            source=source,
            kind=Kind.LOCAL,
            platform=LOCAL,
            workspace="",
            channel=scope,
            visibility=Visibility.PRIVATE if scope else Visibility.PUBLIC,
            title=path.name,
            created_at=modified,
            link=str(path),
            text=f"{path.name}\n\n{result.text}",
        )
        outcome = await self._upsert(document, file_digest)
        {Upsert.ADDED: report.added, Upsert.REPLACED: report.replaced, Upsert.UNCHANGED: report.unchanged}[
            outcome
        ].append(str(path))

    def _read_local(self, path: Path) -> tuple[bytes, float] | Skipped:
        """A local file's bytes and modification time, unless it is of a type or size never indexed."""
        try:
            status = path.stat()
            refused = unsupported(path.name) or too_large(status.st_size, self.max_file_bytes)
            return refused if refused is not None else (path.read_bytes(), status.st_mtime)
        except OSError as exc:
            return Skipped(exc.strerror or str(exc))

    async def remove(self, source_or_path: str) -> int:
        """Remove a source ("slack:T:C:ts", "local:/abs/file"), or a local file or folder given as a path."""
        if not source_or_path.strip():
            return 0  # not the current folder: an empty argument is a mistake, not a request
        if await self.index.remove_source(source_or_path):
            return 1
        path = await asyncio.to_thread(_absolute, Path(source_or_path))
        source = local_source(path)
        return await self.index.remove_source(source) + await self.index.remove_sources(source + os.sep)

    async def documents(self, prefix: str = "") -> list[DocumentInfo]:
        return await self.index.documents(prefix)

    async def stats(self) -> IndexStats:
        return await self.index.stats()

    # --- answering -------------------------------------------------------------------------------------------

    async def find(self, question: str, window: Sequence[Message], audience: Audience) -> list[Passage]:
        """The passages for a question (with a short window of its thread), for this audience only."""
        return await self._find(question, window, audience, self.policy)

    async def search(self, text: str, audience: Audience, limit: int) -> list[Passage]:
        """What `find` gives a question, up to `limit` passages (`moa-bot knowledge search`)."""
        policy = replace(self.policy, top_k=limit, candidates=max(self.policy.candidates, 4 * limit))
        return await self._find(text, (), audience, policy)

    async def _find(
        self, question: str, window: Sequence[Message], audience: Audience, policy: RetrievalPolicy
    ) -> list[Passage]:
        query = build_query(question, window, policy)
        if query.empty:
            return []
        text_hits, vector_hits = await self._search(query, shelves(audience), policy)
        ranked = rank(query, text_hits, vector_hits, policy)
        # the shelves already filtered the search; checking again costs nothing and guards the rule
        return [p for p in ranked if can_see(audience, p)]

    async def _search(
        self, query: Query, allowed: Sequence[Shelf], policy: RetrievalPolicy
    ) -> tuple[list[Passage], list[Passage]]:
        """Full-text and (with an embedding model) vector hits. The two run at once: the full-text search while
        the question is embedded and its vector searched."""
        if self.embedder is None:
            return await self.index.search_text(query.terms, allowed, policy.candidates), []
        nearest = asyncio.create_task(self._nearest(self.embedder, query.text, allowed, policy.vector_candidates))
        try:
            text_hits = await self.index.search_text(query.terms, allowed, policy.candidates)
        except BaseException:
            nearest.cancel()
            await asyncio.gather(nearest, return_exceptions=True)
            raise
        return text_hits, await nearest

    async def _nearest(self, embedder: Embedder, text: str, allowed: Sequence[Shelf], limit: int) -> list[Passage]:
        """The passages nearest `text` in meaning; none when the embedding model fails."""
        try:
            vector = await embedder.embed_query(text)
            return await self.index.search_vector(vector, allowed, limit)
        except ProviderError as exc:
            log.warning("knowledge: semantic search unavailable, full-text only: %s", exc)
            return []

    async def record_given(self, run_id: str, passages: Sequence[Passage]) -> None:
        given = [GivenSource(n, p) for n, p in enumerate(passages, start=1)]
        await self.index.record_sources(run_id, given)

    async def record_cited(self, run_id: str, numbers: Sequence[int]) -> None:
        if numbers:
            await self.index.mark_cited(run_id, numbers)

    async def _upsert(self, document: Document, content_digest: str) -> Upsert:
        [outcome] = await self.index.upsert_documents([(document, chunk_text(document.text), content_digest)])
        self._wake([outcome])
        return outcome

    def _wake(self, outcomes: Sequence[Upsert]) -> None:
        if self.worker is not None and any(o in (Upsert.ADDED, Upsert.REPLACED) for o in outcomes):
            self.worker.wake()


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


def _files_under(folder: Path) -> list[Path]:
    """Every file under `folder`, hidden folders (.git, .venv) left out, in a stable order."""
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / name for name in sorted(names) if not name.startswith("."))
    return files
