"""One database operation on a connection of the pool, and what it did: what every part of the PostgreSQL store
shares."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg

from moa.errors import StorageError
from storage.errors import describe_postgres
from storage.postgres.connection import Connection

P = ParamSpec("P")
T = TypeVar("T")

# what the driver raises for the database's or the network's faults (TimeoutError is an OSError)
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class Pooled(Protocol):
    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def timeout_s(self) -> float: ...


S = TypeVar("S", bound=Pooled)


def operation(
    method: Callable[Concatenate[S, Connection, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """One database operation on a connection of the pool, failures as `StorageError`.

    A statement is all or nothing by itself; an operation of several writes runs them in a transaction it opens
    (every transaction costs two more round trips, so single statements do without).
    """

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with self.pool.acquire(timeout=self.timeout_s) as conn:
                return await method(self, conn, *args, **kwargs)
        except DRIVER_ERRORS as exc:
            raise StorageError(describe_postgres(exc, self.timeout_s)) from exc

    return run


def count(status: str) -> int:
    """The rows a command changed, from its status ("DELETE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])
