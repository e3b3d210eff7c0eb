"""What every fake server shares: started and stopped around a test (`async with`), bound on 127.0.0.1."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class LoopbackServer:
    """Subclasses implement `start` (which sets `_port`) and `aclose`."""

    _port: int | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started: use `async with {type(self).__name__}()`")
        return self._port

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
