"""Delivering one answer on a chat platform: the part every platform's sink shares.

A sink supplies a `Surface`: how to post and edit on its platform, and how to read two of its errors (a piece too
long, a placeholder gone). `Delivery` does the rest, the same way everywhere:
- the placeholder is posted within the platform's posting budgets;
- interim views become coalesced, paced edits of it (`PacedMessage`: the newest text wins);
- the final answer arrives as Markdown pieces: the first replaces the placeholder, the others are posted after it,
  the last one carrying the footer; a piece the platform still refuses as too long is split smaller (down to
  `MIN_PIECE` characters); a placeholder someone deleted is replaced by a new message;
- every write that must land spends its budgets and is retried when the platform says "later" (`send_within`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from adapters.pacing import PacedMessage, RateBudget, send_within
from adapters.render import split_markdown

log = logging.getLogger("adapters.delivery")

M = TypeVar("M")
T = TypeVar("T")

# Below this, a piece the platform refuses as too long is not about a length we control: the error stands.
MIN_PIECE = 200


class Surface(Protocol[M]):
    """How one answer's messages are written on a platform. Methods raise the platform's errors (or
    `RetryLater` for "try again later"); `too_long` and `gone` tell two of them apart."""

    async def post(self, message: M) -> str:
        """A new message where the answer goes (its thread or channel); returns its id."""
        ...

    async def edit(self, message_id: str, message: M) -> None: ...

    def too_long(self, error: Exception) -> bool:
        """The platform refused the message for its length (its count differs from ours)."""
        ...

    def gone(self, error: Exception) -> bool:
        """The message cannot be edited any more (deleted, too old)."""
        ...


@dataclass(frozen=True)
class Budgets:
    """The shared budgets an answer's writes spend, and how hard a write that must land is tried."""

    edits: Sequence[RateBudget]
    posts: Sequence[RateBudget]
    edit_interval_s: float  # one message is edited at most this often
    attempts: int  # tries of a write that must land, when the platform keeps saying "later"


class Delivery(Generic[M]):
    def __init__(self, surface: Surface[M], budgets: Budgets, *, placeholder: str | None = None) -> None:
        """`placeholder`: the id of a placeholder that exists already (an answer resumed after a restart)."""
        self.surface = surface
        self._budgets = budgets
        self.placeholder: str | None = None
        self._paced: PacedMessage[M] | None = None
        if placeholder is not None:
            self.attach(placeholder)

    async def send(self, write: Callable[[], Awaitable[T]]) -> T:
        """Any write that must land and spends the posting budgets (the placeholder, a notice, "… asked: …")."""
        return await send_within(self._budgets.posts, write, attempts=self._budgets.attempts)

    async def open(self, message: M) -> str:
        """Post the placeholder; its edits follow."""
        self.attach(await self.send(lambda: self.surface.post(message)))
        assert self.placeholder is not None
        return self.placeholder

    def interim(self, message: M) -> None:
        """Show `message` in the placeholder soon (coalesced with the next ones; dropped if none is posted)."""
        if self._paced is not None:
            self._paced.submit(message)

    async def replace(self, message: M) -> None:
        """The placeholder becomes `message`; posted instead when there is no placeholder (or it is gone)."""
        if self._paced is None:
            self.placeholder = await self.send(lambda: self.surface.post(message))
            return
        await self._paced.finish(message)

    async def deliver(self, pieces: Sequence[str], render: Callable[[str, bool], M]) -> None:
        """The final answer: Markdown `pieces`, rendered by `render(piece, is_last)`."""
        pending = deque(pieces)
        first = True
        while pending:
            piece = pending.popleft()
            message = render(piece, not pending)
            try:
                if first:
                    await self.replace(message)
                else:
                    await self.send(lambda message=message: self.surface.post(message))  # type: ignore[misc]
            except Exception as exc:
                if not self.surface.too_long(exc) or len(piece) < 2 * MIN_PIECE:
                    raise
                log.info("%d characters refused as too long; splitting smaller", len(piece))
                pending.extendleft(reversed(split_markdown(piece, max(MIN_PIECE, len(piece) // 2))))
                continue
            first = False

    async def aclose(self) -> None:
        """Stop the interim-edit flusher (a final view may still be delivered afterwards)."""
        if self._paced is not None:
            await self._paced.aclose()

    def attach(self, message_id: str) -> None:
        """Edits go to the placeholder `message_id` from now on."""
        self.placeholder = message_id

        async def edit(message: M) -> None:
            assert self.placeholder is not None
            try:
                await self.surface.edit(self.placeholder, message)
            except Exception as exc:
                if not self.surface.gone(exc):
                    raise
                # someone deleted the placeholder: the answer goes on in a new message, edited from now on
                log.info("placeholder %s is gone; the answer continues in a new message", self.placeholder)
                self.placeholder = await self.surface.post(message)

        self._paced = PacedMessage(
            edit,
            min_interval=self._budgets.edit_interval_s,
            budgets=self._budgets.edits,
            max_final_attempts=self._budgets.attempts,
        )
