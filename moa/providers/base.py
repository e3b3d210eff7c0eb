"""The provider protocol: what the orchestrator needs from a chat-completions backend (and team knowledge
from an embeddings one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from moa.events import Message, Usage


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed completion; the last piece carries the usage when the server reports it."""

    text: str
    usage: Usage | None = None


class Provider(Protocol):
    name: str

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Completion:
        """One whole completion. Raises `moa.errors.ProviderError` subclasses only."""
        ...

    def stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> AsyncIterator[Delta]:
        """Deltas as they arrive; `timeout_s` bounds the wait for each piece. Raises `ProviderError` only."""
        ...

    async def list_models(self, timeout_s: float) -> list[str]: ...

    async def embed(self, model: str, texts: Sequence[str], *, timeout_s: float) -> list[list[float]]:
        """One vector per text, in order (an OpenAI-compatible `/v1/embeddings`). Raises `ProviderError` only."""
        ...

    async def aclose(self) -> None: ...
