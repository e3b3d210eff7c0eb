"""sqlite-vec, the vector index for semantic search, loaded only when MOA_EMBEDDING_MODEL is set.

The index is a `vec0` virtual table (`chunk_vectors`, rowid = the chunk's id) of binary-quantized vectors,
created once the model's dimension is known (see `storage.knowledge`). Python's `sqlite3` can load an extension only when CPython was built with
`--enable-loadable-sqlite-extensions`, which many builds (pyenv's default among them) are not; for those, the
extension's entry point is registered with `sqlite3_auto_extension` in the very SQLite library that `_sqlite3`
uses, so every connection opened afterwards has it. Either way the extension is the `sqlite-vec` package's.
"""

from __future__ import annotations

import ctypes
import sqlite3
import struct
from collections.abc import Sequence

import aiosqlite

from moa.errors import StorageError

_registered: list[ctypes.CDLL] = []  # kept alive: SQLite calls into the library for the process's lifetime

VEC_TABLE = "chunk_vectors"
MAX_K = 4096  # sqlite-vec's limit on k in one KNN query


def _loadable_path() -> str:
    try:
        import sqlite_vec  # type: ignore[import-untyped]
    except ImportError:
        raise StorageError(
            "MOA_EMBEDDING_MODEL is set but the sqlite-vec package is missing: python3 -m pip install sqlite-vec"
        ) from None
    return str(sqlite_vec.loadable_path())


def register_for_new_connections() -> None:
    """Where CPython cannot load extensions per connection, make sqlite-vec part of every new one."""
    if _registered or hasattr(sqlite3.Connection, "enable_load_extension"):
        return
    import _sqlite3

    path = _loadable_path()
    try:
        library = ctypes.CDLL(f"{path}.so")
        # dlsym on the module's handle also searches the SQLite library it is linked with
        sqlite = ctypes.CDLL(_sqlite3.__file__)
        entry = ctypes.cast(library.sqlite3_vec_init, ctypes.c_void_p)
        code = sqlite.sqlite3_auto_extension(entry)
    except (OSError, AttributeError) as exc:
        raise StorageError(f"cannot load sqlite-vec ({exc}); unset MOA_EMBEDDING_MODEL to run without it") from exc
    if code != 0:
        raise StorageError(f"cannot load sqlite-vec (SQLite error {code})")
    _registered.append(library)


async def load(db: aiosqlite.Connection) -> str:
    """Load sqlite-vec into `db` (if `register_for_new_connections` did not already); returns its version."""
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        await db.enable_load_extension(True)
        try:
            await db.load_extension(_loadable_path())
        finally:
            await db.enable_load_extension(False)
    async with db.execute("SELECT vec_version()") as cursor:
        row = await cursor.fetchone()
    return str(row[0]) if row else "unknown"


def pad(vector: Sequence[float]) -> list[float]:
    """Zeros up to a multiple of 8 dimensions: a binary-quantized vector is whole bytes."""
    return [*vector, *[0.0] * (-len(vector) % 8)]


def pack(vector: Sequence[float]) -> bytes:
    """A vector as sqlite-vec takes it: little-endian float32."""
    return struct.pack(f"<{len(vector)}f", *vector)
