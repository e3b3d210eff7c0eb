"""The connection every part of the store shares, and the rule for using it: one operation at a time; and the
read-only connections that knowledge searches use instead, so that they need not wait for it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from moa.errors import StorageError
from storage.errors import describe

P = ParamSpec("P")
T = TypeVar("T")
D = TypeVar("D", bound="Database")


def operation(
    method: Callable[Concatenate[D, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[D, P], Coroutine[Any, Any, T]]:
    """One database operation: alone on the shared connection, all or nothing, failures as `StorageError`.

    Every answer shares one connection, and sqlite3 opens a transaction at the first write that the next commit
    ends, whoever wrote. Taking turns keeps a failed operation's rollback from undoing another's writes, and its
    half-done writes from being committed by the next one. An operation never calls another (the turn is not
    reentrant).
    """

    @functools.wraps(method)
    async def wrapped(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._turn:
            try:
                return await method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                await self._rollback_quietly()
                raise StorageError(describe(exc, self.path)) from exc

    return wrapped


def reading(
    method: Callable[Concatenate[D, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[D, P], Coroutine[Any, Any, T]]:
    """A read on the store's read-only connections (`Database._read`): failures as `StorageError`."""

    @functools.wraps(method)
    async def wrapped(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(describe(exc, self.path)) from exc

    return wrapped


class Database:
    """The connection and its helpers; `storage.Store` opens and closes it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._turn = asyncio.Lock()
        # Read-only connections by purpose. Each has a thread of its own, and SQLite lets go of Python's lock while
        # it searches: a full-text and a vector search run at once on two cores, and neither waits behind the
        # answers' writes on the shared connection. WAL gives each read a consistent snapshot.
        self._readers: dict[str, aiosqlite.Connection] = {}

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("the store is not open; call start() first")
        return self._db

    async def _rollback_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()

    async def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement and close its cursor; returns the rows it changed.

        Cursors must be closed by aiosqlite's thread: one left to the garbage collector is finalized on the
        event loop's thread while the worker thread may be using the same connection, and under concurrent
        answers sqlite3 then fails with "bad parameter or other API misuse".
        """
        cursor = await self.db.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    async def _execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        cursor = await self.db.executemany(sql, rows)
        await cursor.close()

    async def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def _read(self, reader: str, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows from the read-only connection named `reader`; without one (a database in memory cannot be opened
        twice), from the shared connection, taking its turn."""
        connection = self._readers.get(reader)
        if connection is None:
            async with self._turn:
                return await self._rows(sql, params)
        async with connection.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def _open_reader(self, name: str, *pragmas: str) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            for pragma in ("PRAGMA busy_timeout=5000", *pragmas):
                await connection.execute(pragma)
        except BaseException:
            await connection.close()
            raise
        self._readers[name] = connection
        return connection

    async def _close_readers(self) -> None:
        readers, self._readers = self._readers, {}
        for connection in readers.values():
            with contextlib.suppress(sqlite3.Error):
                await connection.close()
