"""One way to make any fake fail: `Failure` values, queued per target and consumed one per call.

    llm.fail("p/a", Failure.rate_limit(retry_after=1), Failure.server_error())     # a model
    slack.fail("chat.update", Failure.rate_limit(retry_after=2), times=3)          # a Web API method
    slack.fail("chat.postMessage", Failure.error("msg_too_long"))
    discord.fail("PATCH /channels/{id}/messages/{id}", Failure.http(500))         # a REST route
    discord.fail(ROUTE_CALLBACK, Failure.hang())

A `Failure` says what goes wrong; each fake answers it in its platform's own shape:
- `error(code)`: Slack HTTP 200 `{"ok": false, "error": code}`; Discord 400 `{"code": code, "message"}`;
  the LLM 400 with Together's error body. `status=` sets another HTTP status.
- `http(status)`, `server_error(status)`: that status with the platform's error body (Slack "internal_error",
  Discord code 0 and "503: Service Unavailable", Together's type and code for the status).
- `rate_limit(retry_after)`: 429 with `Retry-After` (Slack: whole seconds, "ratelimited"; Discord:
  `retry_after` and `global` in the body, `is_global=True` for the global limit; Together:
  "rate_limit_exceeded").
- `disconnect()`: the TCP connection dropped before any response byte.
- `hang()`: no answer until the client gives up or the server stops.
- `cut(n)`, `stream_error(n)`, `hang(after_tokens=n)`: mid-stream, after n chunks: the LLM only. The other
  fakes refuse them when they are queued, since nothing of theirs streams.

Injected failures come after authentication and before rate limiting: a call with a bad token still gets the
platform's auth error, and a failed call uses up no rate-limit budget. 429s count in each fake's
`rate_limited`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

FailureKind = Literal["http", "disconnect", "cut", "hang", "stream_error"]


@dataclass(frozen=True)
class Failure:
    """One scripted failure, consumed by the next call to its target. Build with the classmethods."""

    kind: FailureKind
    status: int | None = None  # None: the platform's usual status for an API error (Slack 200, others 400)
    retry_after: float | None = None
    code: str | int | None = None  # Slack's `error` string, Discord's JSON code, Together's `code`
    message: str | None = None
    type: str | None = None  # Together's error `type`; None: the one Together uses for the status
    after_tokens: int | None = None  # streaming: chunks sent before the failure
    is_global: bool = False  # Discord: a global rate limit rather than the route's

    @classmethod
    def http(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        type: str | None = None,
        code: str | int | None = None,
    ) -> Failure:
        """Answer with HTTP `status` and the platform's error body (and `Retry-After` if given)."""
        return cls("http", status=status, retry_after=retry_after, message=message, type=type, code=code)

    @classmethod
    def error(cls, code: str | int, *, status: int | None = None, message: str | None = None) -> Failure:
        """An API error by its platform code: Slack `"msg_too_long"`, Discord `50035`, Together `"..."`."""
        return cls("http", status=status, code=code, message=message)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0, *, is_global: bool = False) -> Failure:
        """429 with `Retry-After`, in the platform's shape; `is_global` makes it Discord's global limit."""
        return cls("http", status=429, retry_after=retry_after, is_global=is_global)

    @classmethod
    def server_error(cls, status: int = 500) -> Failure:
        """500 (or 502/503...) with the platform's error body."""
        return cls("http", status=status)

    @classmethod
    def disconnect(cls) -> Failure:
        """Drop the TCP connection before any response byte."""
        return cls("disconnect")

    @classmethod
    def hang(cls, after_tokens: int | None = None) -> Failure:
        """Never answer (until the client gives up or the server stops).

        With `after_tokens` on a streamed LLM call, stall after that many chunks instead: a stuck stream.
        """
        return cls("hang", after_tokens=after_tokens)

    @classmethod
    def cut(cls, after_tokens: int = 2) -> Failure:
        """LLM streaming: send `after_tokens` chunks, then drop the connection without `[DONE]`.

        Non-streaming: drop the connection before any response byte (as `disconnect`).
        """
        return cls("cut", after_tokens=after_tokens)

    @classmethod
    def stream_error(cls, after_tokens: int = 1, message: str = "Internal server error") -> Failure:
        """LLM streaming: after some chunks, an in-band `data: {"error": ...}` event, as Together sends."""
        return cls("stream_error", after_tokens=after_tokens, message=message)


class FailureQueue:
    """Failures waiting for the next calls to each target, oldest first.

    `check` vets a target and its failures when they are queued (an unknown Slack method, a Discord route that
    does not exist, a stream-only failure on a platform that never streams), so a typo fails the test at once
    instead of never firing; it returns the target's canonical name.
    """

    def __init__(self, check: Callable[[str, Failure], str]) -> None:
        self._check = check
        self._queues: dict[str, deque[Failure]] = {}

    def add(self, target: str, failures: Iterable[Failure], times: int = 1) -> None:
        """Queue `failures` (repeated `times`) for the next calls to `target`."""
        failures = list(failures)
        if not failures:
            raise ValueError("give at least one Failure")
        key = target
        for failure in failures:
            key = self._check(target, failure)
        self._queues.setdefault(key, deque()).extend(failures * times)

    def take(self, key: str) -> Failure | None:
        """The failure the next call to `key` meets, or None."""
        queue = self._queues.get(key)
        return queue.popleft() if queue else None

    def pending(self, key: str) -> int:
        return len(self._queues.get(key, ()))


def refuse_stream_only(target: str, failure: Failure) -> None:
    """For fakes that never stream: a failure after some chunks could never happen, so asking is a mistake."""
    if failure.after_tokens is not None:
        raise ValueError(f"{target}: {failure.kind!r} after chunks needs a streamed response")


def drop_connection(request: web.Request) -> web.Response:
    """Close the TCP connection abruptly: no more bytes, no chunked terminator."""
    if request.transport is not None:
        request.transport.abort()
    # aiohttp will not manage to send this; returning it just ends the handler cleanly.
    return web.Response(status=500)
