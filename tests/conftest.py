"""Shared fixtures, and the PostgreSQL server of the tests marked `postgres`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.fakes.llm import FakeLLM
from tests.postgres_server import ENABLE, PostgresServer, Provider, server_or_skip

_postgres = Provider()
_postgres_required = os.environ.get("MOA_REQUIRE_POSTGRES") == "1"  # in CI: a missing server fails the tests


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A running fake chat-completions server with no models yet: add them with `script()` or `fail()`."""
    async with FakeLLM() as llm:
        yield llm


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (MOA_TEST_POSTGRES_URL or a throwaway server)")


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker("postgres") for item in session.items):
        _postgres.prepare()  # starts the throwaway server in the background


def pytest_sessionfinish(session: pytest.Session) -> None:
    _postgres.stop()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The PostgreSQL server (see tests/postgres_server.py); tests using it carry the `postgres` mark.

    Without one the PostgreSQL tests are skipped, and fail instead when MOA_REQUIRE_POSTGRES=1 (CI).
    """
    return server_or_skip(_postgres, required=_postgres_required)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres.unavailable is not None and not _postgres_required:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {_postgres.unavailable}; {ENABLE}.")
