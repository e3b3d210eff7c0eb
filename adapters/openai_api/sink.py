"""One chat completion as the core answers it: one JSON body at the end, or server-sent events as it is written.

Both watch their client while the run goes on: a client that went away (its connection closed, or a write to
it failed or stalled) has its run stopped as cancelled, which cancels every model call of the run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from adapters.openai_api.errors import ApiError, outcome_error, refusal_error
from adapters.openai_api.schema import ChatRequest, Completion, moa_body
from moa.conversation import Phase, ReplyView
from moa.events import Usage

WATCH_INTERVAL_S = 0.2  # a client that went away has its run stopped within about this long
KEEPALIVE_S = 5.0  # a stream with nothing else to send gets a comment line this often
WRITE_STALL_S = 30.0  # a client that reads nothing for this long is treated as gone (it holds a run's slot)
RESTART_NOTE = "\n\n_(the answer restarts)_\n\n"

# Stops the run `run_id` as cancelled; True once it did, False while the run is not (or no longer) running.
StopRun = Callable[[str], bool]


class CompletionSink:
    """What both kinds share: the run's id, a refusal or the final view, and the watch on the client."""

    def __init__(self, request: web.Request, chat: ChatRequest, completion: Completion, stop: StopRun) -> None:
        self.request = request
        self.chat = chat
        self.completion = completion
        self._stop = stop
        self.run_id = ""
        self.refusal: str | None = None
        self.final: ReplyView | None = None
        self.gone = False  # a write found the client gone

    async def open(self, view: ReplyView) -> dict[str, str]:
        self.run_id = view.run_id
        return {"completion": self.completion.id}

    async def show(self, view: ReplyView) -> None:
        if view.final:
            self.final = view

    async def refuse(self, message: str) -> None:
        self.refusal = message

    async def response(self) -> web.StreamResponse:
        raise NotImplementedError

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Watch the client while inside (the run is answered inside)."""
        watch = asyncio.create_task(self._watch(), name=f"watch-{self.completion.id}")
        try:
            yield
        finally:
            watch.cancel()
            await asyncio.wait([watch])
            await self._close()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if not self._client_gone():
                await self._idle()
            elif self.run_id and self._stop(self.run_id):
                return
            # gone before the run began: stopped as soon as it is running

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return self.gone or transport is None or transport.is_closing() or self._stalled()

    def _stalled(self) -> bool:
        """A write to the client has waited longer than WRITE_STALL_S."""
        return False

    async def _idle(self) -> None:
        """Called on every watch tick while the client is there."""

    async def _close(self) -> None:
        """The run is over: end what the sink still runs."""

    def _outcome(self) -> tuple[ReplyView, Usage, dict[str, Any]]:
        """The final view of an answered run, its usage and its `moa` object; `ApiError` for anything else."""
        if self.refusal is not None:
            raise refusal_error(self.refusal)
        view = self.final
        if view is None:  # the run ended without a final view: only a cancellation does that
            raise ApiError(503, "The answer was interrupted. Please ask again.", code="shutting_down")
        if view.phase is not Phase.DONE or view.report is None:
            raise outcome_error(view)
        moa = moa_body(view.report, run_id=self.run_id, include_drafts=self.chat.include_drafts)
        return view, view.report.done.usage, moa


class JsonSink(CompletionSink):
    """`stream: false`: one `chat.completion` once the answer is done."""

    async def response(self) -> web.StreamResponse:
        view, usage, moa = self._outcome()
        return web.json_response(self.completion.whole(view.text, usage, moa), dumps=_dumps)


class StreamSink(CompletionSink):
    """`stream: true`: `chat.completion.chunk` events carrying the answer's new text as it arrives.

    The stream opens once the question is accepted (refusals before that get their HTTP status); until the
    answer begins, each status ("3/4 drafts in, synthesizing…") is a comment line, and a keep-alive comment
    follows whenever nothing was sent for `keepalive_s`. A run that fails after the stream opened ends it with
    an `{"error": …}` event, which the OpenAI SDKs raise as an error.

    Writes are what a stream costs (a system call each, the client woken each time), so events are queued and
    a flusher writes all that is queued at once: pieces that arrive together (a burst from the aggregator) leave
    in one write, and statuses wait for the next write or the watch's next tick. `show` never waits on the
    client but for the answer's first piece, which leaves at once, and the final view, which returns once
    written.
    """

    def __init__(
        self,
        request: web.Request,
        chat: ChatRequest,
        completion: Completion,
        stop: StopRun,
        *,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        super().__init__(request, chat, completion, stop)
        self._keepalive_s = keepalive_s
        self._response: web.StreamResponse | None = None
        self._queued: list[bytes] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one write at a time: the flusher's, or the final view's
        self._ended = False
        self._last_write = time.monotonic()
        self._writing_since: float | None = None
        self._sent = ""  # the answer's text as the client has it
        self._status = ""

    async def open(self, view: ReplyView) -> dict[str, str]:
        placeholder = await super().open(view)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                     "X-Accel-Buffering": "no"}  # proxies such as nginx: pass each event on at once
        )
        try:
            await response.prepare(self.request)
        except ConnectionError:
            self.gone = True
            return placeholder
        self._response = response
        self._flusher = asyncio.create_task(self._flush_when_woken(), name=f"flush-{self.completion.id}")
        self._event(self._chunk({"role": "assistant", "content": ""}))
        self._comment(view.status)
        return placeholder

    async def show(self, view: ReplyView) -> None:
        await super().show(view)
        if view.phase in (Phase.STREAMING, Phase.DONE):
            first = not self._sent
            self._text(view.text)
            if first and not view.final:
                await self._flush()  # the first piece leaves at once, whatever burst it came in
        if not view.final:
            self._comment(view.status)
            return
        if view.phase is Phase.DONE:
            self._finish()
        elif view.phase is not Phase.STOPPED:  # a stopped run's client is gone
            self._event(outcome_error(view).body())
        await self._flush(last=True)

    @property
    def _writable(self) -> bool:
        return self._response is not None and not self.gone and not self._ended

    async def response(self) -> web.StreamResponse:
        if self._response is not None:
            return self._response
        self._outcome()  # raises: refused, or ended before the stream opened
        raise ApiError(500, "The stream ended before it began.")

    def _text(self, text: str) -> None:
        if text.startswith(self._sent):
            piece = text[len(self._sent) :]
        else:  # the aggregator was retried, or the best draft replaced it: what was sent cannot be taken back
            piece = RESTART_NOTE + text
        self._sent = text
        if piece:
            self._event(self._chunk({"content": piece}))

    def _finish(self) -> None:
        _, usage, moa = self._outcome()
        if self.chat.include_usage:
            self._event(self._chunk({}, "stop"))
            self._event(self.completion.usage_chunk(usage, moa=moa))
        else:
            self._event(self._chunk({}, "stop", moa=moa))
        self._queue(b"data: [DONE]\n\n")

    def _chunk(self, delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        if self.chat.include_usage:
            extra.setdefault("usage", None)  # as OpenAI does: every chunk but the last has usage null
        return self.completion.chunk(delta, finish_reason, **extra)

    def _comment(self, status: str) -> None:
        if status and status != self._status:
            self._status = status
            self._queue(f": {' '.join(status.splitlines())}\n\n".encode(), soon=False)

    async def _idle(self) -> None:
        if not self._queued and time.monotonic() - self._last_write >= self._keepalive_s:
            self._queue(b": keep-alive\n\n")
        elif self._queued:
            self._wake.set()

    def _stalled(self) -> bool:
        since = self._writing_since
        return since is not None and time.monotonic() - since > WRITE_STALL_S

    def _event(self, body: dict[str, Any]) -> None:
        self._queue(f"data: {_dumps(body)}\n\n".encode())

    def _queue(self, data: bytes, *, soon: bool = True) -> None:
        """Queue `data`; `soon`: wake the flusher (else it leaves with the next write, or the watch's tick)."""
        if self._writable:
            self._queued.append(data)
            if soon:
                self._wake.set()

    async def _flush_when_woken(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self, *, last: bool = False) -> None:
        """Write everything queued, in one piece. `last`: and end the response, so that the client is done (and
        may reuse its connection) while the run's record is still being written."""
        async with self._lock:
            if not self._writable or not (self._queued or last):
                return
            assert self._response is not None
            data = b"".join(self._queued)
            self._queued.clear()
            self._ended = last
            self._writing_since = time.monotonic()  # the watch stops the run if this write stalls
            try:
                await (self._response.write_eof(data) if last else self._response.write(data))
            except ConnectionError:
                self.gone = True  # the watch stops the run
                return
            finally:
                self._writing_since = None
            self._last_write = time.monotonic()

    async def _close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait([self._flusher])
        await self._flush()  # what a run that ended without a final view still queued


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
