"""Chat completions through the `together` SDK's async client: Together itself or any OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator, Sequence

import httpx
import together

from moa.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
)
from moa.events import Message, Usage
from moa.providers.base import Completion, Delta

POOL_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)


def _sdk_base_url(base_url: str | None) -> str | None:
    # together 3.x appends "/v1/chat/completions" to an overridden base URL, while OpenAI-compatible servers
    # document theirs with the "/v1" included ("http://localhost:11434/v1"); accept both spellings.
    if base_url is None:
        return None
    trimmed = base_url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def map_error(exc: BaseException, model: str, *, url: str = "") -> ProviderError:
    """The one place where SDK and transport exceptions become the product's errors.

    `url` is the server the call went to; connection failures name it, with the underlying cause found in the
    exception chain (the SDK wraps httpx, which wraps the socket, DNS or TLS error).
    """
    if isinstance(exc, ProviderError):
        return exc
    where = url or "the provider"
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
    chain = _exception_chain(exc)
    if any(isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)) for e in chain):
        cause = _connection_cause(chain)
        message = f"{model}: cannot connect to {where} ({cause})"
        return ProviderUnreachable(message, model=model, url=where, cause=cause)
    if isinstance(exc, (together.APITimeoutError, TimeoutError, httpx.TimeoutException)):
        return ProviderTimeout(f"{model}: timed out waiting for {where}", model=model)
    if isinstance(exc, (together.APIConnectionError, httpx.TransportError)):
        cause = _connection_cause(chain)
        return ProviderUnavailable(f"{model}: the connection to {where} failed ({cause})", model=model)
    if isinstance(exc, together.APIResponseValidationError):
        return ProviderUnavailable(f"{model}: malformed response", model=model)
    return ProviderUnavailable(f"{model}: {type(exc).__name__}: {exc}"[:500], model=model)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connection_cause(chain: Sequence[BaseException]) -> str:
    """Why a connection failed, in words, from the first error in the chain that says it precisely."""
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {error.verify_message or error.reason}"
        if isinstance(error, ssl.SSLError):
            return f"TLS error: {(error.reason or str(error)).replace('_', ' ').lower()}"
        if isinstance(error, socket.gaierror):
            return f"DNS lookup failed: {error.strerror or error}"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, ConnectionResetError):
            return "connection reset"
        if isinstance(error, (httpx.ConnectTimeout, TimeoutError)):
            return "timed out"
    # something else: the innermost error that has a message ("All connection attempts failed", ...)
    described = [e for e in chain if str(e)]
    return str(described[-1]) if described else type(chain[-1]).__name__


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


def _decode_chunk(data: str, model: str) -> tuple[Delta | None, bool]:
    """One `chat.completion.chunk` event: the delta it carries (if any) and whether it ends the answer."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ProviderUnavailable(f"{model}: malformed stream event", model=model) from None
    if not isinstance(chunk, dict):
        raise ProviderUnavailable(f"{model}: malformed stream event", model=model)
    if "error" in chunk:  # an error reported inside the stream, after a 200
        raise ProviderUnavailable(f"{model}: {_error_message(chunk)}"[:500] or f"{model}: stream error", model=model)
    usage = _usage(chunk.get("usage"))
    text = ""
    done = usage is not None
    choices = chunk.get("choices") or []
    if choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta") or {}
        text = str(delta.get("content") or "") if isinstance(delta, dict) else ""
        done = done or choices[0].get("finish_reason") is not None
    return (Delta(text, usage) if text or usage else None), done


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


class OpenAICompatibleProvider:
    """One configured backend. Retries are the orchestrator's job, so the SDK's own are switched off."""

    def __init__(self, name: str, *, api_key: str | None, base_url: str | None) -> None:
        self.name = name
        # The SDK refuses to start without a key; local servers (Ollama, llama.cpp) need none.
        self._client = together.AsyncTogether(
            api_key=api_key or "unset",
            base_url=_sdk_base_url(base_url),
            max_retries=0,
            # The SDK keeps only 20 idle connections; a busy bot has five calls per answer in flight, and every
            # connection beyond 20 would be torn down and set up again (TLS included) for the next call.
            http_client=together.DefaultAsyncHttpxClient(limits=POOL_LIMITS),
        )
        # as the operator wrote it (TOGETHER_BASE_URL, [providers.NAME] base_url), so errors point at their setting
        self.base_url = base_url or str(self._client.base_url).rstrip("/")

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> Completion:
        # Raw response, decoded here: the typed response's pydantic models cost more CPU than the request.
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout_s,
            )
            body = json.loads(await raw.read())
        except ValueError:
            raise ProviderUnavailable(f"{model}: malformed response", model=model) from None
        except Exception as exc:
            raise map_error(exc, model, url=self.base_url) from exc
        choices = body.get("choices") if isinstance(body, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ProviderUnavailable(f"{model}: the response had no choices", model=model)
        message = choices[0].get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        return Completion(text=str(text or ""), usage=_usage(body.get("usage")) or Usage())

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        timeout_s: float,
    ) -> AsyncIterator[Delta]:
        # The SDK's typed stream builds a pydantic model per chunk, half the CPU of a streamed answer; reading
        # the server-sent events through the SDK's streaming response and decoding them here keeps its request
        # building, auth and status errors but costs a json.loads per chunk.
        finished = False
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=temperature,
                max_tokens=max_tokens,
                stream=True,
                # connect and each read of the stream are bounded; the whole answer may take longer
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            ) as response:
                async for line in response.iter_lines():
                    data = line[5:].strip() if line.startswith("data:") else ""
                    if not data:
                        continue  # blank separators, comments, `event:` lines
                    if data == "[DONE]":
                        finished = True
                        break
                    delta, done = _decode_chunk(data, model)
                    finished = finished or done
                    if delta is not None:
                        yield delta
        except ProviderError:
            raise
        except Exception as exc:
            raise map_error(exc, model, url=self.base_url) from exc
        if not finished:
            raise ProviderUnavailable(f"{model}: the stream ended before the answer was complete", model=model)

    async def list_models(self, timeout_s: float) -> list[str]:
        # The classic OpenAI-compatible listing: Together answers it with a JSON list, OpenAI-style servers
        # with {"data": [...]}; the SDK's typed model resources cover neither for every backend.
        try:
            body = await self._client.get("/v1/models", cast_to=object, options={"timeout": timeout_s})
        except Exception as exc:
            raise map_error(exc, "models", url=self.base_url) from exc
        items = body.get("data", []) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProviderUnavailable("models: unexpected listing shape", model="models")
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]

    async def embed(self, model: str, texts: Sequence[str], *, timeout_s: float) -> list[list[float]]:
        # OpenAI's shape, which Together and every OpenAI-compatible server answer: {"data": [{"index",
        # "embedding"}]}; decoded here like the chat calls, without the SDK's typed models.
        try:
            body = await self._client.post(
                "/v1/embeddings",
                body={"model": model, "input": list(texts)},
                cast_to=object,
                options={"timeout": timeout_s},
            )
        except Exception as exc:
            raise map_error(exc, model, url=self.base_url) from exc
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise ProviderUnavailable(f"{model}: the embeddings response did not have one vector per text", model=model)
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            return [[float(x) for x in item["embedding"]] for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ProviderUnavailable(f"{model}: malformed embeddings response", model=model) from None

    async def aclose(self) -> None:
        await self._client.close()
