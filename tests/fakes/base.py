"""What every fake server shares: started and stopped around a test (`async with`), bound on 127.0.0.1.

Also the two pieces of glue the platform fakes are built with: `Forward`, which lets a test reach an attribute
of one of the fake's parts through the fake itself (`slack.calls` is `slack.api.calls`), and `Signal`, which
wakes whoever waits for "something changed".
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self

from aiohttp import web


class LoopbackServer:
    """Subclasses implement `start` (calling `_serve`) and `aclose` (calling `_stop_serving`)."""

    _port: int | None = None
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(
                f"{type(self).__name__} is not started: use `async with {type(self).__name__}()`"
            )
        return self._port

    async def _serve(
        self,
        app: web.Application,
        *,
        port: int = 0,
        handler_cancellation: bool = False,
        shutdown_timeout: float = 60.0,
    ) -> None:
        """Serve `app` on 127.0.0.1:`port` (0: a free one) and remember the port bound.

        `handler_cancellation` cancels a handler when its client goes away, as a real server notices.
        """
        self._runner = web.AppRunner(
            app, handler_cancellation=handler_cancellation, access_log=None, shutdown_timeout=shutdown_timeout
        )
        await self._runner.setup()
        # A fixed port lets a test restart "the same" server: asyncio binds with SO_REUSEADDR on POSIX.
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._port = self._runner.addresses[0][1]

    async def _stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Forward:
    """An attribute of a fake that lives on one of its parts, read and written there.

    class FakeSlack(...):
        calls = Forward("api")        # slack.calls is slack.api.calls; methods forward the same way
    """

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: object, value: Any) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class Signal:
    """Wakes every waiter on each `notify()`: "something in the fake changed, look again"."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return at the next change, or after `timeout` seconds, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
