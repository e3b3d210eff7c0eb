"""What `bot/` needs from every chat adapter, and the hooks an adapter reports through."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from moa.conversation import ReplySink


class ApiObserver(Protocol):
    """Counts platform API calls for /metrics: outcome is "ok", "ratelimited" or "error"."""

    def api_call(self, platform: str, method: str, outcome: str) -> None: ...


class NullObserver:
    def api_call(self, platform: str, method: str, outcome: str) -> None:
        return None


# How long a stopping adapter lets the events it took last finish before cancelling them: answers in flight were
# drained before, so these are questions being handed over to another replica, or refused for the restart; each
# is a few writes and one post.
SETTLE_S = 5.0


class Adapter(Protocol):
    name: str  # "slack" | "discord"

    async def start(self) -> None:
        """Connect and begin taking events; returns once connected. Raises on bad credentials."""
        ...

    async def aclose(self) -> None:
        """Stop taking events and close every connection and background task."""
        ...

    @property
    def connected(self) -> bool:
        """True while events can arrive (for /healthz)."""
        ...

    def mount(self, app: web.Application) -> None:
        """Add HTTP routes to the process's server (Slack's /slack/events in HTTP mode); most adapters add none."""
        ...

    async def reopen(self, placeholder: dict[str, str]) -> ReplySink | None:
        """A sink that edits an existing placeholder, for crash recovery; None if it is not this adapter's."""
        ...
