"""Chat completions through the `together` SDK's async client: Together itself or any OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import httpx
import together
from together import AsyncStream
from together.types.chat import ChatCompletionChunk

from moa.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from moa.events import Message, Usage
from moa.providers.base import Completion, Delta


def _sdk_base_url(base_url: str | None) -> str | None:
    # together 3.x appends "/v1/chat/completions" to an overridden base URL, while OpenAI-compatible servers
    # document theirs with the "/v1" included ("http://localhost:11434/v1"); accept both spellings.
    if base_url is None:
        return None
    trimmed = base_url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def map_error(exc: BaseException, model: str) -> ProviderError:
    """The one place where SDK and transport exceptions become the product's errors."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, together.APIStatusError):
        headers = exc.response.headers
        status = exc.response.status_code
        request_id = headers.get("x-request-id")
        message = _error_message(exc.body) or exc.message
        kind: type[ProviderError]
        if status == 429:
            kind = RateLimited
        elif status >= 500 or status == 408:
            kind = ProviderUnavailable
        else:
            kind = ProviderRejected
        return kind(
            f"{model}: HTTP {status}: {message}"[:500],
            model=model,
            status=status,
            retry_after=_retry_after(headers),
            request_id=request_id,
        )
    if isinstance(exc, (together.APITimeoutError, TimeoutError, httpx.TimeoutException)):
        return ProviderTimeout(f"{model}: timed out", model=model)
    if isinstance(exc, (together.APIConnectionError, httpx.TransportError)):
        return ProviderUnavailable(f"{model}: connection failed ({type(exc).__name__})", model=model)
    if isinstance(exc, together.APIResponseValidationError):
        return ProviderUnavailable(f"{model}: malformed response", model=model)
    return ProviderUnavailable(f"{model}: {type(exc).__name__}: {exc}"[:500], model=model)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from these APIs; fall back to our own backoff


def _error_message(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message", ""))
        return str(error)
    return ""


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    return Usage(int(raw.prompt_tokens or 0), int(raw.completion_tokens or 0))


class TogetherProvider:
    """One configured backend. Retries are the orchestrator's job, so the SDK's own are switched off."""

    def __init__(self, name: str, *, api_key: str | None, base_url: str | None) -> None:
        self.name = name
        # The SDK refuses to start without a key; local servers (Ollama, llama.cpp) need none.
        self._client = together.AsyncTogether(
            api_key=api_key or "unset",
            base_url=_sdk_base_url(base_url),
            max_retries=0,
        )

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Completion:
        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout_s,
            )
        except Exception as exc:
            raise map_error(exc, model) from exc
        if not response.choices:
            raise ProviderUnavailable(f"{model}: the response had no choices", model=model)
        text = response.choices[0].message.content or ""  # type: ignore[union-attr]
        return Completion(text=str(text), usage=_usage(response.usage) or Usage())

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> AsyncIterator[Delta]:
        try:
            created = await self._client.chat.completions.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=temperature,
                max_tokens=max_tokens,
                stream=True,
                # connect and each read of the stream are bounded; the whole answer may take longer
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            )
        except Exception as exc:
            raise map_error(exc, model) from exc
        response = cast(AsyncStream[ChatCompletionChunk], created)  # stream=True always returns a stream
        finished = False
        try:
            async for chunk in response:
                usage = _usage(chunk.usage)
                text = ""
                if chunk.choices:
                    choice = chunk.choices[0]
                    text = (choice.delta.content if choice.delta else None) or ""
                    finished = finished or choice.finish_reason is not None
                if text or usage:
                    yield Delta(text=text, usage=usage)
                finished = finished or usage is not None
        except Exception as exc:
            raise map_error(exc, model) from exc
        finally:
            await response.close()
        if not finished:
            raise ProviderUnavailable(f"{model}: the stream ended before the answer was complete", model=model)

    async def list_models(self, timeout_s: float) -> list[str]:
        # The classic OpenAI-compatible listing: Together answers it with a JSON list, OpenAI-style servers
        # with {"data": [...]}; the SDK's typed model resources cover neither for every backend.
        try:
            body = await self._client.get("/v1/models", cast_to=object, options={"timeout": timeout_s})
        except Exception as exc:
            raise map_error(exc, "models") from exc
        items = body.get("data", []) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProviderUnavailable("models: unexpected listing shape", model="models")
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]

    async def aclose(self) -> None:
        await self._client.close()
