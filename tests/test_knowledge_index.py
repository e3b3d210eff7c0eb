"""The team-knowledge index's contract, through the Librarian, on SQLite and PostgreSQL alike (the databases of
tests/test_store_contract.py): full-text search, updates, removal, cursors, verified answers, local documents, the
privacy shelves. Then what only SQLite does: vectors (sqlite-vec) with the fake LLM's embeddings.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from moa.conversation import ConversationKey
from moa.errors import StorageError
from moa.knowledge import Audience, Cursor, Document, Kind, Librarian, Upsert, Verification, Visibility
from moa.knowledge.embedding import Embedder, EmbeddingWorker
from moa.knowledge.privacy import shelves
from moa.providers.registry import ProviderRegistry
from storage import Storage, Store, open_store
from tests.fakes.llm import FakeLLM
from tests.test_store_contract import BACKENDS, database_for

CHANNEL = Audience("slack", "T1", frozenset({"C1"}))
EMBEDDING_MODEL = "emb/hash-64"


def message(ts: str, text: str, *, channel: str = "C1", author: str = "ann", created_at: float = 1_700_000_000,
            visibility: Visibility = Visibility.PUBLIC) -> Document:
    return Document(f"slack:T1:{channel}:{ts}", Kind.MESSAGE, "slack", "T1", channel, text, visibility,
                    author=author, created_at=created_at, link=f"https://t1.slack.com/archives/{channel}/p{ts}")


@pytest.fixture(params=BACKENDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    return await database_for(request.param, request, tmp_path)


@pytest.fixture
async def store(target: str | Path):  # type: ignore[no-untyped-def]
    async with open_store(target) as opened:
        yield opened


@pytest.fixture
def librarian(store: Storage) -> Librarian:
    return Librarian(store, curators={"UCURATOR"})


async def test_full_text_search_ranks_the_best_match_first(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "Lunch is at noon on Fridays."))
    await librarian.index_message(message("2", "The billing service deploys with make ship; rollback with make back."))
    await librarian.index_message(message("3", "Billing questions go to the finance channel."))
    found = await librarian.find("How does billing deploy?", [], CHANNEL)
    assert [p.source for p in found] == ["slack:T1:C1:2", "slack:T1:C1:3"]
    assert found[0].score > found[1].score and found[0].author == "ann"


async def test_stemming_finds_other_forms_of_a_word(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "We are deploying the new billing release tonight."))
    assert [p.source for p in await librarian.find("billing deploys", [], CHANNEL)] == ["slack:T1:C1:1"]


async def test_question_text_is_never_read_as_search_syntax(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "NEAR and OR are words here: deploy"))
    for question in ('deploy" OR "x', "deploy* NEAR(a b)", "^deploy -x AND (", '"'):
        await librarian.find(question, [], CHANNEL)  # no StorageError from a malformed MATCH


async def test_a_backfill_page_is_indexed_at_once_and_again_without_change(librarian: Librarian) -> None:
    page = [message(str(i), f"Deploy note number {i}.") for i in range(5)]
    page.append(message("5", "  "))  # a message with no text (only a file, say) adds nothing
    assert await librarian.index_messages(page) == [Upsert.ADDED] * 5 + [Upsert.UNCHANGED]
    page[2] = message("2", "Deploy note number 2, edited.")
    assert await librarian.index_messages(page) == [Upsert.UNCHANGED] * 2 + [Upsert.REPLACED] + [Upsert.UNCHANGED] * 3
    assert (await librarian.stats()).documents == {"message": 5}


async def test_indexing_an_unchanged_message_writes_nothing(librarian: Librarian) -> None:
    assert await librarian.index_message(message("1", "Deploys are on Tuesdays.")) is Upsert.ADDED
    before = (await librarian.documents())[0]
    assert await librarian.index_message(message("1", "Deploys are on Tuesdays.")) is Upsert.UNCHANGED
    assert (await librarian.documents())[0].indexed_at == before.indexed_at


async def test_an_edited_message_replaces_its_old_text(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "Deploys are on Tuesdays."))
    assert await librarian.index_message(message("1", "Deploys moved to Thursdays.")) is Upsert.REPLACED
    assert all("Tuesdays" not in p.text for p in await librarian.find("Tuesdays deploys", [], CHANNEL))
    assert [p.text for p in await librarian.find("deploys", [], CHANNEL)] == ["Deploys moved to Thursdays."]
    assert (await librarian.stats()).chunks == 1


async def test_a_deleted_message_leaves_with_its_files_at_once(librarian: Librarian) -> None:
    note = message("1", "Deploy checklist attached.")
    await librarian.index_message(note)
    file = Document(f"{note.source}/file:F1", Kind.FILE, "slack", "T1", "C1", "", title="checklist.md")
    assert await librarian.index_file(file, b"# Deploy checklist\n\n1. freeze merges") is Upsert.ADDED
    await librarian.index_message(message("2", "Unrelated deploy chatter."))
    assert len(await librarian.find("deploy checklist", [], CHANNEL)) == 3
    assert await librarian.delete(note.source) == 2
    assert [p.source for p in await librarian.find("deploy checklist", [], CHANNEL)] == ["slack:T1:C1:2"]


async def test_an_unsupported_shared_file_is_skipped_not_indexed(librarian: Librarian) -> None:
    file = Document("slack:T1:C1:1/file:F2", Kind.FILE, "slack", "T1", "C1", "", title="diagram.png")
    assert librarian.accepts_file("diagram.png", 10) is not None
    assert librarian.accepts_file("notes.md", 11 * 1024 * 1024) is not None
    assert librarian.accepts_file("notes.md", 1000) is None
    result = await librarian.index_file(file, b"\x89PNG")
    assert not isinstance(result, Upsert) and "not a supported type" in result.reason
    assert await librarian.documents() == []


async def test_purging_a_channel_keeps_other_channels_and_verified_answers(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "deploy note", channel="C1"))
    await librarian.index_message(message("2", "deploy note", channel="C2"))
    await librarian.index.upsert_documents(
        [(Document("verified:R1", Kind.VERIFIED, "slack", "T1", "C1", "Q: deploy? A: yes"), ["Q: deploy? A: yes"], "d")])
    await librarian.save_cursor(Cursor("slack", "T1", "C1", "abc", messages=1))
    assert await librarian.purge_unconfigured({"C2"}) == 1
    assert [d.source for d in await librarian.documents()] == ["slack:T1:C2:2", "verified:R1"]
    assert await librarian.cursor("slack", "T1", "C1") is None


async def test_a_backfill_cursor_survives_a_restart(target: str | Path) -> None:
    async with open_store(target) as store:
        librarian = Librarian(store)
        await librarian.save_cursor(Cursor("discord", "G1", "100", "9876", messages=200, oldest=1_690_000_000))
        await librarian.save_cursor(Cursor("discord", "G1", "100", "5432", messages=400, oldest=1_680_000_000))
    async with open_store(target) as store:
        cursor = await Librarian(store).cursor("discord", "G1", "100")
        stats = await store.stats()
    assert cursor is not None and (cursor.cursor, cursor.messages, cursor.done) == ("5432", 400, False)
    assert cursor.updated_at > 0 and stats.cursors == (cursor,)


async def test_a_private_channel_is_searched_only_from_itself(librarian: Librarian) -> None:
    await librarian.index_message(message("1", "The deploy password rotates monthly.", channel="CP",
                                          visibility=Visibility.PRIVATE))
    assert await librarian.find("deploy password", [], CHANNEL) == []
    assert await librarian.find("deploy password", [], Audience("slack", "T1", frozenset({"D1"}), True)) == []
    assert len(await librarian.find("deploy password", [], Audience("slack", "T1", frozenset({"CP"})))) == 1


async def test_readable_matches_are_found_behind_many_better_unreadable_ones(librarian: Librarian) -> None:
    for i in range(12):  # short and dense: they rank above the public one
        await librarian.index_message(message(f"p{i}", "deploy deploy", channel="CP", visibility=Visibility.PRIVATE))
    await librarian.index_message(message("1", "A long public note that mentions how we deploy, once, among others."))
    found = await librarian.index.search_text(["deploy"], shelves(CHANNEL), 2)
    assert [p.source for p in found] == ["slack:T1:C1:1"]


async def test_search_terms_are_never_read_as_query_syntax(store: Storage) -> None:
    # neither FTS5's syntax nor PostgreSQL's tsquery: each term is words to find, and "nothing" is in no text
    await store.upsert_documents([(message("1", "Deploy notes"), ["Deploy notes"], "d1")])
    readable = shelves(CHANNEL)
    for term in ('nothing" OR "deploy', "nothing' | 'deploy", "nothing | deploy:*", "!nothing", "nothing <-> deploy",
                 "nothing NEAR deploy", "(", "'"):
        assert await store.search_text([term], readable, 5) == [], term
    assert [p.source for p in await store.search_text(["nothing", "deploy"], readable, 5)] == ["slack:T1:C1:1"]


async def test_one_source_indexed_from_several_places_at_once_is_one_document(store: Storage) -> None:
    for ts in ("1", "2", "3"):  # new sources: every writer of one finds it missing, and all but one wait
        versions = [message(ts, f"Deploy note, version {i}.") for i in range(8)]
        await asyncio.gather(*(store.upsert_documents([(d, [d.text], f"digest {i}")]) for i, d in enumerate(versions)))
    assert [d.chunks for d in await store.documents()] == [1, 1, 1]
    found = await store.search_text(["version"], shelves(CHANNEL), 10)
    assert sorted([await store.document_hash(p.source) for p in found]) == sorted(
        [f"digest {p.text[-2]}" for p in found])
    assert len(found) == 3


async def test_a_page_that_fails_leaves_nothing_behind(store: Storage) -> None:
    good, bad = message("1", "Deploy notes."), message("2", "Rollback notes.")
    with pytest.raises(StorageError):  # the second document's chunk breaks NOT NULL, after the first is written
        await store.upsert_documents([(good, [good.text], "d1"), (bad, [None], "d2")])  # type: ignore[list-item]
    assert await store.documents() == []


async def test_a_nul_character_in_a_text_is_no_failure(librarian: Librarian) -> None:
    assert await librarian.index_message(message("1", "Deploy\x00 notes for billing.")) is Upsert.ADDED
    assert [p.source for p in await librarian.find("billing deploy notes", [], CHANNEL)] == ["slack:T1:C1:1"]


async def test_documents_are_listed_in_byte_order_and_removed_by_a_literal_prefix(store: Storage) -> None:
    sources = ["local:/docs/a_b.md", "local:/docs/a%b.md", "local:/docs/B.md", "local:/docs/sub/c.md",
               "local:/docs/é.md", "local:/docsX/d.md"]
    await store.upsert_documents(
        [(Document(s, Kind.LOCAL, "local", "", "", f"text of {s}"), [f"text of {s}"], s) for s in sources])
    assert [d.source for d in await store.documents("local:/docs/")] == sorted(sources[:-1])
    assert await store.remove_sources("local:/docs/a_") == 1  # "_" is no wildcard
    assert await store.remove_sources("local:/docs/") == 4
    assert [d.source for d in await store.documents()] == ["local:/docsX/d.md"]


async def test_stats_count_documents_by_kind_chunks_characters_and_cursors(librarian: Librarian,
                                                                         store: Storage) -> None:
    await librarian.index_message(message("1", "Deploy notes."))
    await store.upsert_documents([(Document("local:/a.md", Kind.LOCAL, "local", "", "", "abc"), ["a", "bc"], "d")])
    await librarian.save_cursor(Cursor("slack", "T1", "C1", "abc"))
    stats = await store.stats()
    assert (stats.documents, stats.chunks, stats.chars, stats.embedded, stats.pending_embeddings) == (
        {"local": 1, "message": 1}, 3, 16, 0, 0)
    assert stats.database_bytes > 0 and [(c.channel, c.cursor) for c in stats.cursors] == [("C1", "abc")]


async def test_indexed_channels_are_chat_channels_with_documents_or_a_cursor(librarian: Librarian,
                                                                           store: Storage) -> None:
    await librarian.index_message(message("1", "deploy note", channel="C2"))
    await librarian.save_cursor(Cursor("discord", "G1", "100", "abc"))
    await store.upsert_documents([
        (Document("verified:R1", Kind.VERIFIED, "slack", "T1", "C3", "Q: deploy? A: yes"), ["Q: deploy? A: yes"], "d"),
        (Document("local:/a.md", Kind.LOCAL, "local", "", "C4", "deploy"), ["deploy"], "d"),
    ])
    assert await store.indexed_channels() == [("discord", "G1", "100"), ("slack", "T1", "C2")]


# --- verified answers ------------------------------------------------------------------------------------------


async def _answered(store: Storage, question: str, answer: str, *, user: str = "UASKER") -> str:
    run_id = await store.create_run(ConversationKey("slack", "T1", "C1", "1.1"), user, question, "default", "")
    await store.set_placeholder(run_id, {"platform": "slack", "channel": "C1", "message": "1700.0001"})
    await store.finish_run(run_id, status="done", answer=f"{answer}\n\n**Sources**\n- [1] old")
    return run_id


async def test_a_check_mark_by_the_asker_or_a_curator_verifies_an_answer(librarian: Librarian, store: Storage) -> None:
    run_id = await _answered(store, "How do we rotate the vault token?", "Run vault-rotate on the bastion.")
    assert await librarian.verify("slack", "C1", "1700.0001", "USOMEONE", private=False) is Verification.NOT_ALLOWED
    assert await librarian.verify("slack", "C1", "9999.0001", "UASKER", private=False) is Verification.NOT_AN_ANSWER
    assert await librarian.verify("slack", "C1", "1700.0001", "UCURATOR", private=False) is Verification.VERIFIED
    [found] = await librarian.find("rotate vault token", [], CHANNEL)
    assert found.source == f"verified:{run_id}" and found.verified
    assert found.text == "Q: How do we rotate the vault token?\n\nA: Run vault-rotate on the bastion."
    assert await librarian.unverify("slack", "C1", "1700.0001", "UASKER") is Verification.UNVERIFIED
    assert await librarian.find("rotate vault token", [], CHANNEL) == []


async def test_a_verified_answer_ranks_above_an_ordinary_message_with_the_same_match(
    librarian: Librarian, store: Storage
) -> None:
    await librarian.index_message(message("1", "Rotate the vault token with vault-rotate on the bastion host."))
    run_id = await _answered(store, "How do we rotate the vault token?", "vault-rotate on the bastion host.")
    await librarian.verify("slack", "C1", "1700.0001", "UASKER", private=False)
    assert [p.source for p in await librarian.find("rotate vault token", [], CHANNEL)] == [
        f"verified:{run_id}", "slack:T1:C1:1"]


async def test_the_run_a_message_answered_is_found_by_platform_channel_and_message(store: Storage) -> None:
    run_id = await _answered(store, "How do we ship?", "With make ship.")
    origin = await store.run_for_message("slack", "C1", "1700.0001")
    assert origin is not None and origin.answer.startswith("With make ship.")
    assert (origin.run_id, origin.workspace, origin.channel, origin.thread, origin.user, origin.question,
            origin.status) == (run_id, "T1", "C1", "1.1", "UASKER", "How do we ship?", "done")
    for elsewhere in (("discord", "C1", "1700.0001"), ("slack", "C2", "1700.0001"), ("slack", "C1", "1700.0002")):
        assert await store.run_for_message(*elsewhere) is None


async def test_the_sources_given_to_a_run_and_those_cited_are_kept_with_it(librarian: Librarian,
                                                                         store: Storage) -> None:
    await librarian.index_messages([message("1", "Deploys run make ship."), message("2", "Deploys need a build.")])
    found = await librarian.find("deploys", [], CHANNEL)
    run_id = await _answered(store, "How do deploys work?", "See [2].")
    await librarian.record_given(run_id, found)
    await librarian.record_cited(run_id, [2])
    record = await store.get_run(run_id)
    assert record is not None
    assert [(s["number"], s["source"], s["cited"]) for s in record["sources"]] == [  # type: ignore[attr-defined]
        (1, found[0].source, 0), (2, found[1].source, 1)]
    first = record["sources"][0]  # type: ignore[index]
    assert (first["title"], first["author"], first["created_at"], first["link"]) == (
        found[0].title, "ann", 1_700_000_000, found[0].link)
    assert first["score"] == pytest.approx(found[0].score)
    await librarian.record_given(run_id, found)  # given again: not yet cited
    record = await store.get_run(run_id)
    assert record is not None and [s["cited"] for s in record["sources"]] == [0, 0]  # type: ignore[attr-defined]


# --- local documents ---------------------------------------------------------------------------------------


async def test_local_folders_are_indexed_recursively_and_kept_in_step(librarian: Librarian, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "ops").mkdir(parents=True)
    (docs / "ops" / "deploy.md").write_text("# Deploy\n\nShip with make ship.")
    (docs / "owners.csv").write_text("service,owner\nbilling,ann\n")
    (docs / "logo.png").write_bytes(b"\x89PNG")
    (docs / ".git").mkdir()
    (docs / ".git" / "config").write_text("[core]")
    first = await librarian.add_paths([docs])
    assert sorted(Path(p).name for p in first.added) == ["deploy.md", "owners.csv"]
    assert [(Path(p).name, "not a supported type" in r) for p, r in first.skipped] == [("logo.png", True)]
    again = await librarian.add_paths([docs])
    assert again.added == again.replaced == [] and len(again.unchanged) == 2
    (docs / "ops" / "deploy.md").write_text("# Deploy\n\nShip with make release.")
    os.utime(docs / "ops" / "deploy.md")
    (docs / "owners.csv").unlink()
    changed = await librarian.add_paths([docs])
    assert [Path(p).name for p in changed.replaced] == ["deploy.md"]
    assert [Path(p).name for p in changed.removed] == ["owners.csv"]
    [passage] = await librarian.find("how do we ship?", [], CHANNEL)
    assert "make release" in passage.text and passage.link == str(docs / "ops" / "deploy.md")
    assert passage.title == "deploy.md" and passage.kind is Kind.LOCAL
    assert await librarian.remove(str(docs)) == 1 and await librarian.documents() == []


async def test_a_scoped_local_document_is_seen_in_its_channel_only(librarian: Librarian, tmp_path: Path) -> None:
    (tmp_path / "runbook.md").write_text("Incident runbook: page the on-call first.")
    await librarian.add_paths([tmp_path / "runbook.md"], scope="C9")
    assert await librarian.find("incident runbook", [], CHANNEL) == []
    assert len(await librarian.find("incident runbook", [], Audience("slack", "T1", frozenset({"C9"})))) == 1
    assert len(await librarian.find("incident runbook", [], Audience("discord", "G", frozenset({"C9"})))) == 1


async def test_a_search_does_not_wait_behind_an_operation_on_the_shared_connection(tmp_path: Path) -> None:
    async with Store(tmp_path / "moa.sqlite3") as store:
        librarian = Librarian(store)
        await librarian.index_message(message("1", "kubernetes cluster upgrade"))
        async with store._turn:  # what an answer's write holds while it runs
            found = await asyncio.wait_for(librarian.find("cluster upgrade", [], CHANNEL), 5)
        assert [p.source for p in found] == ["slack:T1:C1:1"]


# --- vectors -------------------------------------------------------------------------------------------------


async def test_semantic_search_with_sqlite_vec_merges_with_full_text(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script(EMBEDDING_MODEL)
    registry = ProviderRegistry({}, together_api_key="k", together_base_url=fake_llm.base_url)
    provider, model = registry.resolve(EMBEDDING_MODEL)
    embedder = Embedder(provider, model, EMBEDDING_MODEL)
    path = tmp_path / "moa.sqlite3"
    try:
        async with Store(path, vectors=True) as store:
            await store.prepare_vectors(EMBEDDING_MODEL)
            worker = EmbeddingWorker(store, embedder, batch=2)
            librarian = Librarian(store, embedder=embedder, worker=worker)
            await librarian.index_message(message("1", "kubernetes cluster upgrade window saturday"))
            await librarian.index_message(message("2", "lunch menu pizza"))
            await librarian.index_message(message("3", "cluster upgrade notes", channel="CP",
                                                  visibility=Visibility.PRIVATE))
            assert (await store.stats()).pending_embeddings == 3
            assert await worker.run_once() == 2 and await worker.run_once() == 1 and await worker.run_once() == 0
            assert (await store.stats()).embedded == 3
            # "window saturday" shares no key term with the question's floor, but its vector is close
            found = await librarian.find("upgrade saturday kubernetes", [], CHANNEL)
            assert [p.source for p in found] == ["slack:T1:C1:1"]
            assert found[0].score == pytest.approx(1 / 61 + 1 / 61)  # first in both rankings
            near = await store.search_vector(await embedder.embed_query("cluster upgrade"), shelves(CHANNEL), 10)
            assert [p.source for p in near][:1] == ["slack:T1:C1:1"]  # the private one is not among them
            assert "slack:T1:CP:3" not in [p.source for p in near]
            assert await librarian.delete("slack:T1:C1:1") == 1
        async with Store(path) as store:  # without MOA_EMBEDDING_MODEL: nothing loads sqlite-vec, nothing breaks
            librarian = Librarian(store)
            await librarian.index_message(message("4", "cluster upgrade again"))
            await librarian.delete("slack:T1:C1:4")
            assert [p.source for p in await librarian.find("lunch pizza", [], CHANNEL)] == ["slack:T1:C1:2"]
            await store.maintain()
        async with Store(path, vectors=True) as store:
            await store.prepare_vectors("another/model")  # another model: every chunk is embedded again
            assert (await store.stats()).pending_embeddings == 2
    finally:
        await registry.aclose()


async def test_semantic_search_falls_back_to_full_text_when_embeddings_fail(fake_llm: FakeLLM, tmp_path: Path) -> None:
    from tests.fakes.llm import Failure

    fake_llm.script(EMBEDDING_MODEL, failures=[Failure.http(503)])
    registry = ProviderRegistry({}, together_api_key="k", together_base_url=fake_llm.base_url)
    provider, model = registry.resolve(EMBEDDING_MODEL)
    try:
        async with Store(tmp_path / "moa.sqlite3", vectors=True) as store:
            librarian = Librarian(store, embedder=Embedder(provider, model, EMBEDDING_MODEL))
            await librarian.index_message(message("1", "kubernetes cluster upgrade"))
            assert [p.source for p in await librarian.find("cluster upgrade", [], CHANNEL)] == ["slack:T1:C1:1"]
    finally:
        await registry.aclose()
