"""`moa-bot db migrate-to URL`: copy the SQLite database named by MOA_DB into PostgreSQL."""

from __future__ import annotations

import contextlib
import sys

from bot.config import Settings
from moa.errors import ConfigError
from storage import PostgresStore, Store, is_postgres_url
from storage.postgres.connection import PostgresUrl
from storage.postgres.copy import copy_sqlite

COMMAND = "db migrate-to"
LIKE = "postgresql://user:password@host:5432/database"


async def migrate_to(settings: Settings, url: str) -> int:
    """Copy what PostgreSQL lacks; print the rows copied per table. Safe to run again."""
    _check(settings, url)
    source = Store(settings.db_path)
    target = PostgresStore(url, setting=COMMAND)
    async with contextlib.AsyncExitStack() as stack:
        # exclusive: a service writing to the source while it is copied would leave the copy behind it
        stack.push_async_callback(source.aclose)
        await source.start(exclusive=True)
        stack.push_async_callback(target.aclose)
        await target.start()
        schema = await target.schema_status()
        say(f"Copying {settings.db_path} into {target.location} (schema {schema.version})")
        copies = await copy_sqlite(source, target)
    width = max(len(c.table) for c in copies)
    for copy in copies:
        say(f"  {copy.table:<{width}}  {copy.copied:>7,} copied, {copy.already_there:,} already there")
    copied = sum(c.copied for c in copies)
    if copied:
        say(f"Done: {copied:,} rows copied. Set MOA_DB to the PostgreSQL URL and restart the bot.")
    else:
        say(f"Nothing new to copy: {target.location} already has everything in {settings.db_path}.")
    return 0


def _check(settings: Settings, url: str) -> None:
    if not is_postgres_url(url):
        # the argument is not echoed: it may hold a password
        raise ConfigError(f"{COMMAND}: the target is not a PostgreSQL URL; give one like {LIKE}")
    try:
        PostgresUrl.parse(url)
    except ValueError as exc:
        raise ConfigError(f"{COMMAND}: not a usable PostgreSQL URL: {exc}; like {LIKE}") from None
    if settings.db_url is not None:
        raise ConfigError("MOA_DB: names PostgreSQL already; set it to the SQLite file to copy from")
    if not settings.db_path.is_file():
        raise ConfigError(f"MOA_DB: no SQLite database at {settings.db_path} to copy")


def say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
