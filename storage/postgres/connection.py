"""Reaching PostgreSQL: what a `MOA_DB` URL names, and the connection type every query runs on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

# a string: asyncpg's classes are generic for type checkers only
Connection: TypeAlias = "PoolConnectionProxy[Record]"

SCHEMES = ("postgresql://", "postgres://")
DEFAULT_PORT = 5432

# pg_advisory_lock's two-key form: (this application, what for); "moab" in ASCII
LOCK_SPACE = 0x6D6F6162
MIGRATING = 1  # held while migrations are applied
COPYING = 3  # held by `moa-bot db migrate-to`
# ...and (what for, `lock_key` of whose): "moat", a conversation's turn; "moar", a person's rate
TURNS = 0x6D6F6174
RATES = 0x6D6F6172


def lock_key(name: str) -> int:
    """A 32-bit advisory lock key for `name`, the same in every process (Python's `hash` is not). Two names
    may share one: then their holders wait for each other, which is slower, never wrong."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)


def is_postgres_url(value: str) -> bool:
    return value.startswith(SCHEMES)


@dataclass(frozen=True)
class PostgresUrl:
    """A libpq-style URL, as asyncpg takes it: postgresql://user:password@host:port/database?options."""

    url: str

    @classmethod
    def parse(cls, url: str) -> PostgresUrl:
        """ValueError, in words, for a URL asyncpg could not use."""
        if not is_postgres_url(url):
            raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
        parsed = cls(url)
        for host in parsed._hosts.split(","):
            port = _port_of(host)
            if port and not port.isdigit():
                raise ValueError(f"the port {port!r} is not a number")
        return parsed

    @property
    def _split(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.url)
        return parts.netloc, parts.path, parse_qs(parts.query)

    @property
    def _hosts(self) -> str:
        netloc, _, _ = self._split
        return netloc.rpartition("@")[2]

    @property
    def password(self) -> str | None:
        netloc, _, query = self._split
        userinfo, at, _ = netloc.rpartition("@")
        if at and ":" in userinfo:
            return unquote(userinfo.partition(":")[2]) or None
        return query.get("password", [None])[0]

    @property
    def location(self) -> str:
        """host:port/database, for messages: never the user name or password."""
        _, path, query = self._split
        hosts = self._hosts or query.get("host", ["localhost"])[0]
        if "," not in hosts and not hosts.startswith("/") and not _port_of(hosts):
            hosts = f"{hosts}:{query.get('port', [DEFAULT_PORT])[0]}"
        database = unquote(path.lstrip("/")) or query.get("dbname", [""])[0] or "(the user's database)"
        return f"{hosts}/{database}"


def _port_of(host: str) -> str:
    """The port of "host:port" or "[::1]:port"; "" without one."""
    if host.startswith("["):
        return host.partition("]")[2].removeprefix(":")
    return host.partition(":")[2]
