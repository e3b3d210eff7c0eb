"""A fake Together/OpenAI-compatible chat-completions server for tests.

It sits at the real network seam: tests point the real `together.AsyncTogether` (or any OpenAI-compatible
client) at `FakeLLM.base_url`, so the SDK's own parsing and error mapping, and ours on top of it, run as in
production.

    async with FakeLLM(models=["m1", "m2"]) as llm:
        llm.script("m1", reply="hi", latency=0.2, tokens_per_s=50)
        llm.fail("m2", Failure.rate_limit(retry_after=1), Failure.server_error())
        client = AsyncTogether(api_key="test", base_url=llm.base_url)
        ...
        assert llm.requests_for("m1")[0].messages[-1]["content"] == "question"

Endpoints (together 3.x appends `/v1/...` to an overridden base URL):
- `POST /v1/chat/completions`: JSON `chat.completion`, or SSE `chat.completion.chunk`s when `stream` is true.
  As Together does, every delta carries `role`, and the chunk with the last token also carries
  `finish_reason` and `usage`; then `data: [DONE]`.
- `GET /v1/models`: Together's model list, a bare JSON array of
  `{"id", "object": "model", "type": "chat", ...}`.
  together 3.1.1 has no typed call for it (`client.models.list()` is the v2 *custom* models API, needing a
  project id), so read it with `await client.get("/v1/models", cast_to=...)`.
- `POST /v1/embeddings`: OpenAI's `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
  "model", "usage"}` for a string or a list of strings. The vectors are deterministic hashed bags of words
  (`embedding_dim` buckets, not normalized), so texts sharing words are near each other. A scripted HTTP failure
  of the model (`fail`) applies here too.

Errors use Together's body shape `{"error": {"message", "type", "param", "code"}}`; 401 when the bearer token
is missing (or differs from `api_key` when one is set), 404 `model_not_available` for a model that was neither
listed nor scripted, 400 for a malformed body. Scripted failures (`fail`) are `tests.fakes.failures.Failure`s,
re-exported here; `cut`, `hang(after_tokens)` and `stream_error` act mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.base import LoopbackServer
from tests.fakes.failures import Failure, drop_connection

Reply = str | Callable[[dict[str, Any]], str | Awaitable[str]]
# Seconds before the first response byte, drawn per request from its JSON body (e.g. a seeded heavy-tailed RNG).
LatencySampler = Callable[[dict[str, Any]], float]

_TOKEN_RE = re.compile(r"\s*\S+(?:\s+$)?")


def tokenize(text: str) -> list[str]:
    """Split text into word-ish tokens that concatenate back to exactly `text`."""
    tokens = _TOKEN_RE.findall(text)
    if not tokens and text:
        return [text]  # whitespace only: one token, so nothing is lost
    return tokens


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def message_text(content: Any) -> str:
    """Text of a message's `content`, which is a string or a list of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def default_reply(model: str, body: dict[str, Any]) -> str:
    """Deterministic reply that shows which model answered and that the question reached it."""
    return f"[{model}] answer to: {last_user_text(body)}"


@dataclass
class ModelScript:
    """How one model behaves. Mutable: tests may change it between calls."""

    reply: Reply | None = None  # None: `default_reply`
    latency: float = 0.0  # seconds before the first response byte
    tokens_per_s: float | None = None  # streaming pace; None: as fast as possible
    failures: deque[Failure] = field(default_factory=deque)  # consumed one per call, oldest first
    latency_sampler: LatencySampler | None = None  # when set, replaces `latency` for each request
    # Token i is sent at first_token + i / tokens_per_s (timer overshoot does not add up over a long stream);
    # off: each token waits 1 / tokens_per_s after the previous one was written.
    steady_pace: bool = False

    def latency_for(self, body: dict[str, Any]) -> float:
        return self.latency if self.latency_sampler is None else max(0.0, self.latency_sampler(body))


Outcome = Literal["pending", "ok", "error", "cut", "hang", "stream_error", "client_gone"]


@dataclass
class RecordedRequest:
    """One request as the fake saw it. Times are `time.monotonic()`."""

    path: str
    model: str | None
    body: dict[str, Any]
    headers: CIMultiDict[str]
    started: float
    ended: float | None = None
    status: int | None = None  # HTTP status sent; None if the connection was dropped or never answered
    outcome: Outcome = "pending"
    reply: str | None = None  # text actually sent (truncated to max_tokens / cut point)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    def overlaps(self, other: RecordedRequest) -> bool:
        """True when both requests were in flight at the same moment."""
        end_self = self.ended if self.ended is not None else float("inf")
        end_other = other.ended if other.ended is not None else float("inf")
        return self.started < end_other and other.started < end_self


def _error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "error": {"message": message, "type": type_, "param": None, "code": code}}


def _together_error(status: int, model: str) -> tuple[str, str | None, str]:
    """The error (type, code, message) Together sends with an HTTP status."""
    if status == 429:
        message = f"You have reached the rate limit specific to model {model}. Please retry later."
        return "model_rate_limit", "rate_limit_exceeded", message
    if status == 503:
        return "service_unavailable", "service_unavailable", "The server is overloaded or not ready yet."
    if status >= 500:
        return "server_error", "server_error", "Internal server error"
    return "invalid_request_error", None, "Invalid request"


def _failure_response(failure: Failure, model: str) -> web.Response:
    """An injected HTTP failure as Together answers it (what the failure names overrides the defaults)."""
    status = failure.status or 400
    headers = {}
    if failure.retry_after is not None:
        ra = failure.retry_after
        headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
    type_, code, message = _together_error(status, model)
    if failure.code is not None:
        code = str(failure.code)
    body = _error_body(failure.message or message, failure.type or type_, code)
    return web.json_response(body, status=status, headers=headers)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class FakeLLM(LoopbackServer):
    """aiohttp server on 127.0.0.1 (free port) speaking Together's chat-completions API.

    `models` are answered with the default script; `script()`/`fail()` add models. With `any_model=True`
    every model id is accepted. With `api_key` set, only that bearer token is accepted.
    """

    def __init__(
        self,
        models: Iterable[str] = (),
        *,
        any_model: bool = False,
        api_key: str | None = None,
        embedding_dim: int = 64,
    ) -> None:
        self.scripts: dict[str, ModelScript] = {model: ModelScript() for model in models}
        self.embedding_dim = embedding_dim
        self.any_model = any_model
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._stopping = asyncio.Event()

    # --- configuration -------------------------------------------------------------------------------

    def script(
        self,
        model: str,
        *,
        reply: Reply | None = None,
        latency: float = 0.0,
        tokens_per_s: float | None = None,
        failures: Iterable[Failure] = (),
        latency_sampler: LatencySampler | None = None,
        steady_pace: bool = False,
    ) -> ModelScript:
        """Set (replace) how `model` behaves and return its script.

        `latency_sampler(body)`, when given, draws each request's latency instead of the fixed `latency`;
        `steady_pace` schedules streamed tokens against the first one, so a long stream does not drift.
        """
        script = ModelScript(
            reply=reply,
            latency=latency,
            tokens_per_s=tokens_per_s,
            failures=deque(failures),
            latency_sampler=latency_sampler,
            steady_pace=steady_pace,
        )
        self.scripts[model] = script
        return script

    def fail(self, model: str, *failures: Failure, times: int = 1) -> ModelScript:
        """Queue failures (repeated `times`) for the next calls to `model`, keeping the rest of its script."""
        script = self.scripts.setdefault(model, ModelScript())
        script.failures.extend(list(failures) * times)
        return script

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    @property
    def completions(self) -> list[RecordedRequest]:
        """Recorded chat-completion requests only (not `/v1/models`)."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What together 3.x takes as `base_url` (it appends `/v1/chat/completions`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What OpenAI-style clients take as `base_url` (they append `/chat/completions`)."""
        return f"{self.base_url}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        # handler_cancellation: a client that gives up (timeout) cancels its handler, so `ended` is recorded
        # when the client left, as a real server would notice; shutdown_timeout: never wait on hung handlers.
        await self._serve(app, handler_cancellation=True, shutdown_timeout=0.5)

    async def aclose(self) -> None:
        self._stopping.set()  # releases hung handlers
        await self._stop_serving()

    # --- handlers -------------------------------------------------------------------------------------

    def _auth_error(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (self.api_key is not None and token != self.api_key):
            body = _error_body(
                "Invalid API key provided. You can find your API key at "
                "https://api.together.xyz/settings/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
            return web.json_response(body, status=401)
        return None

    def _known(self, model: str) -> bool:
        return self.any_model or model in self.scripts

    async def _models(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            path=request.path,
            model=None,
            body={},
            headers=CIMultiDict(request.headers),
            started=time.monotonic(),
        )
        self.requests.append(record)
        response = self._auth_error(request) or web.json_response(
            [
                {
                    "id": model,
                    "object": "model",
                    "created": 0,
                    "type": "chat",
                    "display_name": model.rsplit("/", 1)[-1],
                    "organization": model.split("/", 1)[0] if "/" in model else "fake",
                    "context_length": 131072,
                    "pricing": {"input": 0.0, "output": 0.0, "hourly": 0, "base": 0, "finetune": 0},
                }
                for model in self.scripts
            ]
        )
        record.status, record.ended = response.status, time.monotonic()
        record.outcome = "ok" if response.status == 200 else "error"
        return response

    def embedding(self, text: str) -> list[float]:
        """The vector this server gives `text`: word counts hashed into `embedding_dim` buckets."""
        vector = [0.0] * self.embedding_dim
        for word in re.findall(r"\w+", text.lower()):
            bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
            vector[bucket % self.embedding_dim] += 1.0
        return vector

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = RecordedRequest(
            path=request.path,
            model=body.get("model") if isinstance(body, dict) else None,
            body=body if isinstance(body, dict) else {},
            headers=CIMultiDict(request.headers),
            started=time.monotonic(),
        )
        self.requests.append(record)
        response = self._embeddings_response(request, body)
        record.status, record.ended = response.status, time.monotonic()
        record.outcome = "ok" if response.status == 200 else "error"
        return response

    def _embeddings_response(self, request: web.Request, body: Any) -> web.Response:
        if (auth_error := self._auth_error(request)) is not None:
            return auth_error
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            error = _error_body("model and input (a string or a list of strings) are required",
                                "invalid_request_error", None)
            return web.json_response(error, status=400)
        if not self._known(model):
            message = f"Unable to access model {model}."
            return web.json_response(_error_body(message, "invalid_request_error", "model_not_available"), status=404)
        script = self.scripts[model] if model in self.scripts else None
        if script is not None and script.failures and script.failures[0].kind == "http":
            return _failure_response(script.failures.popleft(), model)
        tokens = sum(count_tokens(t) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": self.embedding(t)} for i, t in enumerate(texts)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = RecordedRequest(
            path=request.path,
            model=body.get("model") if isinstance(body, dict) else None,
            body=body if isinstance(body, dict) else {},
            headers=CIMultiDict(request.headers),
            started=started,
        )
        self.requests.append(record)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request, record, body)
        except asyncio.CancelledError:
            record.outcome = "client_gone" if record.outcome == "pending" else record.outcome
            raise
        finally:
            self.in_flight -= 1
            record.ended = time.monotonic()

    def _reject(self, record: RecordedRequest, response: web.Response) -> web.Response:
        record.status, record.outcome = response.status, "error"
        return response

    async def _answer(self, request: web.Request, record: RecordedRequest, body: Any) -> web.StreamResponse:
        if (auth_error := self._auth_error(request)) is not None:
            return self._reject(record, auth_error)
        if not isinstance(body, dict):
            return self._reject(
                record,
                web.json_response(
                    _error_body("Request body must be a JSON object", "invalid_request_error", None),
                    status=400,
                ),
            )
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            return self._reject(
                record,
                web.json_response(
                    _error_body("model is required", "invalid_request_error", "invalid_model"), status=400
                ),
            )
        if not isinstance(messages, list) or not messages:
            return self._reject(
                record,
                web.json_response(
                    _error_body("messages must be a non-empty list", "invalid_request_error", None),
                    status=400,
                ),
            )
        if not self._known(model):
            message = (
                f"Unable to access model {model}. Please visit https://api.together.ai/models to view the "
                "list of supported models."
            )
            return self._reject(
                record,
                web.json_response(
                    _error_body(message, "invalid_request_error", "model_not_available"), status=404
                ),
            )

        script = self.scripts.get(model) or ModelScript()
        failure = script.failures.popleft() if script.failures else None
        stream = bool(body.get("stream"))

        latency = script.latency_for(body)
        if latency > 0:
            await self._sleep(latency)

        if failure is not None and failure.kind == "http":
            return self._reject(record, _failure_response(failure, model))

        if failure is not None and (failure.kind == "hang" and (failure.after_tokens is None or not stream)):
            record.outcome = "hang"
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()  # only reached when the server stops

        if failure is not None and (failure.kind == "disconnect" or (failure.kind == "cut" and not stream)):
            record.outcome = "cut"
            return drop_connection(request)

        text = script.reply(body) if callable(script.reply) else script.reply
        if inspect.isawaitable(text):
            text = await text
        if text is None:
            text = default_reply(model, body)
        tokens = tokenize(text)
        finish_reason = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens >= 0 and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        prompt_tokens = sum(
            count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
        }
        completion_id = uuid.uuid4().hex
        headers = {"x-request-id": completion_id}

        if not stream:
            record.reply = "".join(tokens)
            record.status, record.outcome = 200, "ok"
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "prompt": [],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": record.reply, "tool_calls": []},
                            "logprobs": None,
                            "finish_reason": finish_reason,
                            "seed": None,
                        }
                    ],
                    "usage": usage,
                },
                headers=headers,
            )
        return await self._stream(
            request, record, script, model, tokens, finish_reason, usage, completion_id, failure
        )

    async def _stream(
        self,
        request: web.Request,
        record: RecordedRequest,
        script: ModelScript,
        model: str,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int],
        completion_id: str,
        failure: Failure | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-request-id": completion_id,
            },
        )
        await response.prepare(request)
        record.status = 200
        created = int(time.time())
        stop_at = failure.after_tokens if failure is not None and failure.after_tokens is not None else None
        delay = 1.0 / script.tokens_per_s if script.tokens_per_s else 0.0
        # An empty reply still sends one (empty) chunk, which carries finish_reason and usage.
        pieces = tokens or [""]
        sent: list[str] = []
        first_at = time.monotonic()
        try:
            for i, piece in enumerate(pieces):
                if stop_at is not None and i >= stop_at:
                    break
                if i > 0 and delay:
                    wait = first_at + i * delay - time.monotonic() if script.steady_pace else delay
                    if wait > 0:
                        await self._sleep(wait)
                last = i == len(pieces) - 1
                chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "text": piece,
                            "logprobs": None,
                            "finish_reason": finish_reason if last else None,
                            "seed": None,
                            "delta": {
                                "token_id": i,
                                "role": "assistant",
                                "content": piece,
                                "tool_calls": None,
                            },
                        }
                    ],
                    "usage": usage if last else None,
                }
                await response.write(f"data: {_dumps(chunk)}\n\n".encode())
                sent.append(piece)
            record.reply = "".join(sent)

            if failure is not None and failure.kind == "cut":
                record.outcome = "cut"
                drop_connection(request)
                return response
            if failure is not None and failure.kind == "hang":
                record.outcome = "hang"
                await self._stopping.wait()
                drop_connection(request)
                return response
            if failure is not None and failure.kind == "stream_error":
                record.outcome = "stream_error"
                error = _error_body(failure.message or "Internal server error", "server_error", None)
                await response.write(f"data: {_dumps(error)}\n\n".encode())
                await response.write_eof()
                return response

            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            record.outcome = "ok"
        except ConnectionError:
            record.outcome = "client_gone"  # the client stopped reading (cancelled, timed out)
        return response

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return early when the server stops, so shutdown never waits on latency."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
