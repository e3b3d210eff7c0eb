"""What only the PostgreSQL store does: choosing it by MOA_DB, its migrations, team knowledge without semantic
search, sources in byte order whatever the database's collation, and PostgreSQL's own failures.

Everything both backends do is in tests/test_store_contract.py and tests/test_knowledge_index.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import sys
from pathlib import Path

import asyncpg
import pytest
from asyncpg.exceptions import DiskFullError

from bot.config import load_settings
from moa.conversation import ConversationKey, Question
from moa.errors import ConfigError, StorageError
from moa.knowledge import Document, Kind
from moa.knowledge.model import Audience
from moa.knowledge.privacy import shelves
from storage import PostgresStore, Store, open_store
from storage.errors import describe_postgres
from storage.migrations import MIGRATIONS
from storage.postgres import migrations as pg_migrations
from storage.postgres.connection import PostgresUrl
from tests import postgres_server as test_server
from tests.core import core_settings, open_test_core
from tests.fakes.llm import FakeLLM
from tests.postgres_server import PostgresServer, free_port
from tests.test_knowledge_answering import Sink

REPO = Path(__file__).resolve().parents[1]
URL = "postgresql://moa:s3cret%21@db.internal:6432/moa"
KEY = ConversationKey("slack", "T1", "C1", "t")


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def database_and_admin(server: PostgresServer) -> tuple[str, asyncpg.Connection]:
    """A new database, and a connection as the server's administrator."""
    url = await server.new_database()
    return url, await asyncpg.connect(server.admin_url, timeout=10)


# choosing the backend ---------------------------------------------------------------------------------------


def test_moa_db_chooses_the_backend() -> None:
    for url in (URL, URL.replace("postgresql://", "postgres://")):
        settings = load_settings({"MOA_DB": url})
        assert settings.database == url
        assert isinstance(open_store(settings.database), PostgresStore)
    settings = load_settings({"MOA_DB": "/data/moa.sqlite3"})
    assert settings.database == Path("/data/moa.sqlite3")
    assert isinstance(open_store(settings.database), Store)
    assert isinstance(open_store(load_settings({}).database), Store)


def test_the_postgresql_password_is_a_secret() -> None:
    assert "s3cret!" in load_settings({"MOA_DB": URL}).secrets


def test_a_postgresql_location_never_shows_the_password() -> None:
    assert PostgresUrl.parse(URL).location == "db.internal:6432/moa"
    assert PostgresUrl.parse("postgresql://moa:pw@db.internal/moa").location == "db.internal:5432/moa"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("postgresql://moa:pw@db:port/moa", r"^MOA_DB: not a usable PostgreSQL URL: the port 'port' is not a number"),
        ("mysql://moa:pw@db/moa", r"^MOA_DB: mysql:// is not a database moa-bot uses; give a SQLite file path"),
    ],
)
def test_a_moa_db_that_is_neither_is_one_clear_line(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as raised:
        load_settings({"MOA_DB": value})
    assert "pw" not in str(raised.value)


# team knowledge -------------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_core_on_postgresql_answers_from_team_knowledge_by_full_text_alone(
    fake_llm: FakeLLM, tmp_path: Path, postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    for model in ("p/a", "p/b", "agg/x", "emb/e5"):
        fake_llm.script(model)
    url = await postgres_server.emptied_database()
    settings = core_settings(fake_llm, tmp_path, MOA_DB=url, MOA_EMBEDDING_MODEL="emb/e5")
    with caplog.at_level(logging.WARNING):
        async with open_test_core(settings) as core:  # as `moa-bot run`, `ask` and `chat` build it
            assert core.librarian.embedder is None and core.embedding is None
            await core.librarian.index_message(Document("slack:T1:C1:1", Kind.MESSAGE, "slack", "T1", "C1",
                                                        "Billing deploys run make ship from the bastion."))
            run_id = await core.answerer.answer(Question(KEY, "U1", "How do billing deploys work?"), Sink())
            record = await core.store.get_run(run_id)
            assert await core.store.search_vector([1.0] * 8, shelves(Audience("slack", "T1")), 5) == []
            assert (await core.store.stats()).pending_embeddings == 0
    assert record is not None and [s["source"] for s in record["sources"]] == ["slack:T1:C1:1"]  # type: ignore[attr-defined]
    assert fake_llm.requests_for("emb/e5") == []
    [warning] = [r for r in caplog.records if "MOA_EMBEDDING_MODEL" in r.getMessage()]
    assert "on PostgreSQL team knowledge is searched by full text only" in warning.getMessage()


@pytest.mark.postgres
async def test_sources_keep_byte_order_in_a_database_that_sorts_like_a_language(postgres_server: PostgresServer) -> None:
    # as on SQLite: in en-US "a" comes before "B", in bytes after; a prefix must be a range either way
    url = await postgres_server.new_database("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    sources = ["local:/docs/a.md", "local:/docs/B.md", "local:/docs/sub/c.md", "local:/docs-old/d.md"]
    async with PostgresStore(url) as store:
        await store.upsert_documents([(Document(s, Kind.LOCAL, "local", "", "", s), [s], s) for s in sources])
        assert [d.source for d in await store.documents("local:/docs/")] == sorted(sources[:3])
        assert await store.remove_sources("local:/docs/") == 3


# migrations -------------------------------------------------------------------------------------------------


def test_postgresql_migrations_carry_the_sqlite_names() -> None:
    # one schema version means the same on both backends, and `db migrate-to` copies like to like
    assert pg_migrations.MIGRATIONS == tuple(m.__name__ for m in MIGRATIONS)


@pytest.mark.postgres
async def test_both_backends_have_the_same_tables_and_columns(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = await postgres_server.emptied_database()
    async with Store(tmp_path / "moa.sqlite3") as sqlite:
        # SQLite's own bookkeeping and FTS5's tables stand for what PostgreSQL keeps in the chunks' tsvector column
        async with sqlite.db.execute(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'"
            " AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE 'chunks_fts%'"
        ) as cursor:
            expected = sorted([*[tuple(row) async for row in cursor], ("chunks", "search")])
    async with PostgresStore(url) as store, store.pool.acquire() as conn:
        found = sorted(
            tuple(row)
            for row in await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            )
        )
    assert found == expected


@pytest.mark.postgres
async def test_replicas_starting_together_apply_each_migration_once(postgres_server: PostgresServer) -> None:
    url = await postgres_server.new_database()
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        async with stores[0].pool.acquire() as conn:
            names = [row["name"] for row in await conn.fetch("SELECT name FROM migrations ORDER BY name")]
    finally:
        await asyncio.gather(*(store.aclose() for store in stores))
    assert names == list(pg_migrations.MIGRATIONS)


# failures, in words -----------------------------------------------------------------------------------------


async def test_an_unreachable_server_is_named() -> None:
    port = free_port()
    with pytest.raises(StorageError) as raised:
        await PostgresStore(f"postgresql://moa:pw@127.0.0.1:{port}/moa").start()
    assert str(raised.value) == (
        f"MOA_DB: cannot open PostgreSQL at 127.0.0.1:{port}/moa: cannot connect to PostgreSQL (connection refused)"
    )


@pytest.mark.postgres
async def test_a_wrong_password_is_named(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("postgres", password="wrong")
    try:
        async with PostgresStore(url):
            pytest.skip("the server at MOA_TEST_POSTGRES_URL does not check passwords")
    except StorageError as exc:
        assert str(exc).endswith(": PostgreSQL refused the user name or password (authentication failed)")


@pytest.mark.postgres
async def test_a_missing_database_is_named(postgres_server: PostgresServer) -> None:
    with pytest.raises(StorageError, match=r"^MOA_DB: cannot open PostgreSQL at .+/nowhere: the database does not exist$"):
        await PostgresStore(postgres_server.url("nowhere")).start()


@pytest.mark.postgres
async def test_a_read_only_database_is_named(postgres_server: PostgresServer) -> None:
    url, admin = await database_and_admin(postgres_server)
    try:
        async with PostgresStore(url) as store:
            await admin.execute(f'ALTER DATABASE "{database_of(url)}" SET default_transaction_read_only = on')
            await store.pool.expire_connections()  # the setting applies to new sessions
            with pytest.raises(StorageError, match=r"^the database is read-only \(PostgreSQL refuses writes"):
                await store.create_run(KEY, "U1", "q", "default", "E1")
            assert (await store.health()).startswith("not writable: the database is read-only")
        with pytest.raises(StorageError, match=r"^MOA_DB: cannot open PostgreSQL at .+: the database is read-only"):
            await PostgresStore(url).start()
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_every_statement_has_a_time_limit(postgres_server: PostgresServer) -> None:
    url = await postgres_server.emptied_database()
    async with PostgresStore(url, timeout_s=0.3) as store:
        blocker = await asyncpg.connect(url, timeout=10)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE processed_events IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(StorageError, match=r"^PostgreSQL did not answer within 0.3 s$"):
                    await store.first_time("slack", "Ev1")
        finally:
            await blocker.close()
        assert await store.first_time("slack", "Ev1")



@pytest.mark.postgres
async def test_a_connection_lost_during_an_operation_is_named(postgres_server: PostgresServer) -> None:
    url = await postgres_server.emptied_database()
    admin = await asyncpg.connect(postgres_server.admin_url, timeout=10)
    blocker = await asyncpg.connect(url, timeout=10)
    try:
        async with PostgresStore(url) as store:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE processed_events IN ACCESS EXCLUSIVE MODE")
                waiting = asyncio.create_task(store.first_time("slack", "Ev1"))
                await asyncio.sleep(0.2)
                await terminate(admin, url, sparing=blocker.get_server_pid())
                with pytest.raises(StorageError, match=r"^the connection to PostgreSQL was lost$"):
                    await waiting
            assert await store.first_time("slack", "Ev1")  # the next operation has a new connection
    finally:
        await blocker.close()
        await admin.close()


async def terminate(admin: asyncpg.Connection, url: str, *, sparing: int = 0) -> None:
    """End every session on `url`'s database but `sparing`'s, as an administrator (or a failover) would."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
        database_of(url),
        sparing,
    )


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (DiskFullError("could not extend file"), "the disk is full"),
        (TimeoutError(), "PostgreSQL did not answer within 10 s"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "cannot connect to PostgreSQL (connection refused)"),
        (
            OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), [Errno 111] ..."),
            "cannot connect to PostgreSQL (connection refused)",
        ),
        (socket.gaierror(-2, "Name or service not known"), "cannot connect to PostgreSQL (the host name cannot be resolved)"),
        (asyncpg.InterfaceError("pool is closing"), "the database client refused: pool is closing"),
    ],
)
def test_driver_faults_are_described_in_words(fault: Exception, words: str) -> None:
    assert describe_postgres(fault, 10.0) == words


# the tests' own server --------------------------------------------------------------------------------------

NO_POSTGRES = (
    "import sys, pytest, tests.postgres_server as server; server.newest_binaries = lambda: None; "
    "sys.exit(pytest.main(['-q', 'tests/test_store_contract.py::test_health_commits_a_real_write']))"
)


async def run_without_postgres() -> tuple[int, str]:
    """The suite's PostgreSQL and SQLite runs of one contract test, on a machine with no PostgreSQL at all."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOA_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NO_POSTGRES, cwd=REPO, env={**clean, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_without_postgresql_its_tests_are_skipped_with_one_line_saying_how_to_run_them() -> None:
    code, out = await run_without_postgres()
    assert code == 0, out
    assert "1 passed, 1 skipped in" in out
    [line] = [line for line in out.splitlines() if "PostgreSQL" in line]
    assert line.startswith("PostgreSQL tests skipped: no PostgreSQL under /usr/lib/postgresql/*/bin")
    assert "apt-get install postgresql" in line and "MOA_TEST_POSTGRES_URL=postgresql://" in line


def test_ci_requires_the_postgresql_tests_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOA_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setattr(test_server, "newest_binaries", lambda: None)
    with pytest.raises(BaseException) as raised:  # a skip too, which must not be what happens
        test_server.server_or_skip(test_server.Provider(), required=True)
    assert raised.type is pytest.fail.Exception
    assert re.fullmatch(r"MOA_REQUIRE_POSTGRES=1 but no PostgreSQL under .* to run them", str(raised.value))
