"""The adapter: `/v1/models` and `/v1/chat/completions` on the process's HTTP server, for OpenAI's clients.

Every request needs a bearer key; every error is in OpenAI's shape. A chat completion becomes one `Question`
whose conversation is the request's messages (nothing is stored as history beyond the run record), answered by
the same `Answerer` as the chat platforms: the same policy, concurrency cap and queue, run records (platform
`api`, workspace the key's name), metrics and drain.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from adapters.openai_api.errors import ApiError
from adapters.openai_api.keys import ApiKey, Caller, Keyring
from adapters.openai_api.schema import Completion, model_body, models_body, parse_chat_request
from adapters.openai_api.sink import KEEPALIVE_S, CompletionSink, JsonSink, StreamSink
from moa.answering import Answerer, StopResult
from moa.conversation import ConversationKey, Overrides, Question
from moa.knowledge.privacy import API

log = logging.getLogger("adapters.openai_api")

PLATFORM = API  # the privacy rule reads this platform as the deployment's own, like the terminal
CALLER = web.RequestKey("caller", Caller)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpenAIAdapter:
    """Implements `adapters.base.Adapter`; it has no connection of its own, so it is always "connected"."""

    name = PLATFORM

    def __init__(self, *, keys: Sequence[ApiKey], answerer: Answerer, keepalive_s: float = KEEPALIVE_S) -> None:
        self._keyring = Keyring(keys)
        self._answerer = answerer
        self._keepalive_s = keepalive_s
        self._created = int(time.time())

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return True

    def mount(self, app: web.Application) -> None:
        app.add_subapp("/v1", self.v1_app())

    def v1_app(self) -> web.Application:
        """The routes under /v1 (a sub-application, so that its error handling and keys apply there only)."""
        v1 = web.Application(middlewares=[_openai_errors, _authenticate(self._keyring)])
        v1.router.add_get("/models", self._models)
        v1.router.add_get("/models/{model}", self._model)
        v1.router.add_post("/chat/completions", self._chat_completions)
        v1.router.add_route("*", "/{tail:.*}", _no_such_endpoint)
        return v1

    async def reopen(self, placeholder: dict[str, str]) -> None:
        return None  # a client that lost its connection cannot be answered later: its run is marked interrupted

    async def check(self) -> tuple[bool, str]:
        return True, f"{len(self._keyring)} keys; models: {', '.join(sorted(self._answerer.catalog.presets))}"

    async def _models(self, request: web.Request) -> web.StreamResponse:
        names = sorted(self._answerer.catalog.presets)
        return web.json_response(models_body(names, self._created))

    async def _model(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        if name not in self._answerer.catalog.presets:
            raise ApiError(404, f"The model {name!r} does not exist.", code="model_not_found", param="model")
        return web.json_response(model_body(name, self._created))

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        caller = request[CALLER]
        chat = parse_chat_request(await _json_body(request), self._answerer.catalog.presets)
        completion = Completion(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), chat.model)

        def stop(run_id: str) -> bool:
            return self._answerer.stop(run_id, by=caller.name, status="cancelled") is StopResult.STOPPED

        sink: CompletionSink
        if chat.stream:
            sink = StreamSink(request, chat, completion, stop, keepalive_s=self._keepalive_s)
        else:
            sink = JsonSink(request, chat, completion, stop)
        question = Question(
            ConversationKey(PLATFORM, caller.name, chat.user, completion.id),
            caller.name,
            chat.question,
            preset=chat.model,
            history=chat.history,
            overrides=Overrides(chat.temperature, chat.max_tokens),
            rate=caller.rate,
            context_channel=caller.scope,  # the one channel whose team knowledge this key's answers may use
            authorized=True,  # the key is the access; the allow-lists name chat channels and users
        )
        async with sink.watching():
            await self._answerer.answer(question, sink)
        return await sink.response()


async def _json_body(request: web.Request) -> Any:
    limit = request.client_max_size
    too_large = ApiError(413, f"The request body is larger than {limit / 1024**2:g} MB, the most moa-bot takes.",
                         code="request_too_large")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    except Exception:  # a bug must still answer in the shape clients parse (and is logged)
        log.exception("%s %s failed", request.method, request.path)
        error = ApiError(500, "moa-bot failed to handle this request; the operator can find why in its log.")
        return web.json_response(error.body(), status=500)


def _authenticate(keyring: Keyring) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        caller = keyring.find(token.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise ApiError(401, "Missing or wrong API key: send the header Authorization: Bearer KEY, with a key "
                           "the operator set in MOA_API_KEYS.", code="invalid_api_key")
        request[CALLER] = caller
        return await handler(request)

    return authenticate


async def _no_such_endpoint(request: web.Request) -> web.StreamResponse:
    raise ApiError(404, f"moa-bot has no {request.method} {request.path}; it serves GET /v1/models and "
                   "POST /v1/chat/completions.", code="unknown_endpoint")
