"""A PostgreSQL server for the tests: MOA_TEST_POSTGRES_URL when given, else a throwaway one of our own.

Tests that need it carry the `postgres` mark (tests/conftest.py): once collection shows there are some, the
throwaway server starts in the background, so its few seconds overlap the tests that run before them.

The throwaway server is Debian's binaries (/usr/lib/postgresql/VERSION/bin, the newest) run by `initdb` and
`pg_ctl` in a temporary folder on a free port of 127.0.0.1, with fsync off: a test database needs no durability.
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (or `nobody`). Host connections need
a password (scram-sha-256), so a wrong one is refused for real. Each test gets a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ENABLE = (
    "install PostgreSQL (Debian: apt-get install postgresql) or set MOA_TEST_POSTGRES_URL=postgresql://user:pass@"
    "host:5432/db (a role that may create databases) to run them"
)
START_TIMEOUT_S = 30


class Unavailable(Exception):
    """No PostgreSQL to test against; the message says why."""


@dataclass
class PostgresServer:
    admin_url: str  # a database to connect to for CREATE DATABASE
    created: list[str] = field(default_factory=list)
    shared: str | None = None  # the URL of the database `emptied_database` hands out

    def url(self, database: str, *, password: str | None = None) -> str:
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc
        if password is not None:
            user = netloc.rpartition("@")[0].partition(":")[0]
            netloc = f"{user}:{password}@{netloc.rpartition('@')[2]}"
        return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))

    async def new_database(self, options: str = "") -> str:
        """A new empty database (`options`: what CREATE DATABASE takes after its name); its URL."""
        name = f"moa_test_{secrets.token_hex(6)}"
        admin = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" {options}')
        finally:
            await admin.close()
        self.created.append(name)
        return self.url(name)

    async def emptied_database(self) -> str:
        """One database for the tests that need no fresh one, its tables emptied for each: faster than a new one.

        The first caller gets it empty and unmigrated (the store it opens migrates it); later callers get it
        migrated, with every table but `migrations` empty (DELETE: on a few rows much faster than TRUNCATE).
        """
        if self.shared is None:
            self.shared = await self.new_database()
            return self.shared
        conn = await asyncpg.connect(self.shared, timeout=10)
        try:
            tables = await conn.fetch(
                "SELECT quote_ident(tablename) AS name FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'migrations'"
            )
            await conn.execute("".join(f"DELETE FROM {t['name']};" for t in tables))
        finally:
            await conn.close()
        return self.shared

    async def drop_created(self) -> None:
        admin = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            for name in self.created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def newest_binaries() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    return Path(max(found, key=version)).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Throwaway:
    """initdb + pg_ctl start in a temporary folder; `stop()` removes it all."""

    def __init__(self, binaries: Path, *, max_connections: int = 100) -> None:
        self.binaries = binaries
        self.max_connections = max_connections  # PostgreSQL's default; the replicas benchmark needs more
        self.user = self._run_as()
        self.folder = Path(tempfile.mkdtemp(prefix="moa-test-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = secrets.token_hex(12)

    @staticmethod
    def _run_as() -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise Unavailable("running as root with neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")

    def _command(self, *args: str) -> list[str]:
        command = [str(self.binaries / args[0]), *args[1:]]
        return ["runuser", "-u", self.user, "--", *command] if self.user else command

    def _check(self, *args: str) -> None:
        done = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()} {tail}")

    def start(self) -> PostgresServer:
        (self.folder / "password").write_text(self.password)
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.folder, self.folder / "password"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._check(
            "initdb", "-D", str(self.data), "-U", "moa", f"--pwfile={self.folder / 'password'}", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
        )
        settings = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={self.max_connections}"
        )
        self._check("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                    "-t", str(START_TIMEOUT_S), "-o", settings, "start")
        return PostgresServer(f"postgresql://moa:{self.password}@127.0.0.1:{self.port}/postgres")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._check("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class Provider:
    """The session's server: MOA_TEST_POSTGRES_URL's, or a throwaway one started at most once."""

    def __init__(self) -> None:
        self.unavailable: str | None = None  # why there is none
        self._server: PostgresServer | None = None
        self._throwaway: Throwaway | None = None
        self._starting: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._prepared = False

    def prepare(self) -> None:
        """Find the server, or start starting one; at most once."""
        if self._prepared:
            return
        self._prepared = True
        url = os.environ.get("MOA_TEST_POSTGRES_URL", "").strip()
        if url:
            self._server = PostgresServer(url)
            return
        try:
            binaries = newest_binaries()
            if binaries is None:
                raise Unavailable("no PostgreSQL under /usr/lib/postgresql/*/bin and MOA_TEST_POSTGRES_URL is not set")
            self._throwaway = Throwaway(binaries)
        except Unavailable as exc:
            self.unavailable = str(exc)
            return
        self._starting = threading.Thread(target=self._start, name="postgres-start", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        assert self._throwaway is not None
        try:
            self._server = self._throwaway.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the first test that needs the server
            self._failure = exc

    def get(self) -> PostgresServer:
        """The server, once it is up; Unavailable when there is none."""
        self.prepare()
        if self._starting is not None:
            self._starting.join()
        if self.unavailable is not None:
            raise Unavailable(self.unavailable)
        if self._failure is not None:
            raise RuntimeError(f"the throwaway PostgreSQL did not start: {self._failure}") from self._failure
        assert self._server is not None
        return self._server

    def stop(self) -> None:
        if self._starting is not None:
            self._starting.join()
        if self._throwaway is not None:
            self._throwaway.stop()
        elif self._server is not None and self._server.created:
            asyncio.run(self._server.drop_created())


def server_or_skip(provider: Provider, *, required: bool) -> PostgresServer:
    """The server; without one, skip the test, or fail it when `required` (MOA_REQUIRE_POSTGRES=1, in CI)."""
    try:
        return provider.get()
    except Unavailable as exc:
        if required:
            pytest.fail(f"MOA_REQUIRE_POSTGRES=1 but {exc}; {ENABLE}")
        pytest.skip(str(exc))
