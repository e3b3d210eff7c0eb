"""The fake chat-completions server, driven by the real `together.AsyncTogether` client (never patched).

These tests pin down what the SDK does with each scripted behaviour, so the project's error mapping can rely
on it: notably, a stream cut or stalled mid-way surfaces as a raw *httpx* error, not a `together` one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import together

from tests.fakes.llm import Failure, FakeLLM, count_tokens, tokenize

MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
OTHER = "Qwen/Qwen2.5-72B-Instruct-Turbo"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
async def client(fake_llm: FakeLLM) -> AsyncIterator[together.AsyncTogether]:
    fake_llm.script(MODEL)
    async with together.AsyncTogether(
        api_key="test", base_url=fake_llm.base_url, max_retries=0, timeout=2.0
    ) as c:
        yield c


async def collect(stream: together.AsyncStream[Any]) -> tuple[str, list[Any]]:
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_tokenize_round_trips() -> None:
    for text in ["", "one", "  two words ", "a\nb  c\n", "   "]:
        assert "".join(tokenize(text)) == text
    assert count_tokens("the quick  brown fox") == 4


async def test_non_streamed_reply_and_usage(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        *QUESTION,
    ]
    response = await client.chat.completions.create(model=MODEL, messages=messages)

    assert response.object == "chat.completion"
    assert response.model == MODEL
    assert response.choices[0].message is not None
    reply = response.choices[0].message.content
    assert reply == f"[{MODEL}] answer to: What is the capital of France?"  # the last user message
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == 2 + 2 + 1 + 6  # words in every message
    assert response.usage.completion_tokens == count_tokens(reply)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens

    [recorded] = fake_llm.requests
    assert recorded.model == MODEL
    assert recorded.messages == messages
    assert recorded.authorization == "Bearer test"
    assert recorded.status == 200 and recorded.outcome == "ok"
    assert recorded.ended is not None and recorded.ended >= recorded.started


async def test_streamed_reply_with_usage_in_last_chunk(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.script(MODEL, reply="Paris is the capital of France.")
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    text, chunks = await collect(stream)

    assert text == "Paris is the capital of France."
    assert len(chunks) == 6  # one word-ish token per chunk
    assert all(c.object == "chat.completion.chunk" and c.choices[0].delta.role == "assistant" for c in chunks)
    assert [c.usage for c in chunks[:-1]] == [None] * 5
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].usage.prompt_tokens == 6
    assert fake_llm.requests[0].stream and fake_llm.requests[0].outcome == "ok"


async def test_max_tokens_truncates_with_finish_reason_length(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.script(MODEL, reply="one two three four five")
    response = await client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=2)
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "one two"
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 2


async def test_callable_replies_see_the_request(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    fake_llm.script(MODEL, reply=lambda body: f"{len(body['messages'])} messages, t={body['temperature']}")

    async def slow_reply(body: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return body["messages"][0]["content"].upper()

    fake_llm.script(OTHER, reply=slow_reply)
    a = await client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0.7)
    b = await client.chat.completions.create(model=OTHER, messages=QUESTION)
    assert a.choices[0].message is not None and a.choices[0].message.content == "1 messages, t=0.7"
    assert (
        b.choices[0].message is not None and b.choices[0].message.content == "WHAT IS THE CAPITAL OF FRANCE?"
    )


async def test_latency_and_token_rate(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    fake_llm.script(MODEL, reply="a b c d e f", latency=0.1, tokens_per_s=50)
    start = time.monotonic()
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    first = None
    async for chunk in stream:
        first = first or time.monotonic()
        assert chunk.choices
    end = time.monotonic()
    assert first is not None
    assert first - start >= 0.1  # latency before the first byte
    assert end - first >= 5 / 50 * 0.9  # five gaps between six tokens at 50 tokens/s


async def test_rate_limit_is_a_429_with_retry_after(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.rate_limit(retry_after=3))
    with pytest.raises(together.RateLimitError) as info:
        await client.chat.completions.create(model=MODEL, messages=QUESTION)
    err = info.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "3"
    # The SDK keeps the whole JSON body (it does not unwrap "error").
    assert isinstance(err.body, dict) and err.body["error"]["code"] == "rate_limit_exceeded"
    # Failures are consumed one per call: the next call succeeds.
    ok = await client.chat.completions.create(model=MODEL, messages=QUESTION)
    assert ok.choices[0].message is not None
    assert [r.status for r in fake_llm.requests] == [429, 200]


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(fake_llm: FakeLLM, client: together.AsyncTogether, status: int) -> None:
    fake_llm.fail(MODEL, Failure.server_error(status))
    with pytest.raises(together.InternalServerError) as info:
        await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    assert info.value.status_code == status


async def test_cut_stream_raises_httpx_remote_protocol_error(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.script(MODEL, reply="one two three four five", failures=[Failure.cut(after_tokens=2)])
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    received: list[str] = []
    # The SDK only wraps errors raised while *sending* the request; while iterating a stream, httpx's own
    # exception escapes unwrapped: httpx.RemoteProtocolError ("peer closed connection without sending complete
    # message body (incomplete chunked read)"), a subclass of httpx.TransportError, not of together.APIError.
    with pytest.raises(httpx.RemoteProtocolError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["one", " two"]  # tokens carry their leading space, as BPE tokens do
    assert fake_llm.requests[0].outcome == "cut"
    assert fake_llm.requests[0].reply == "one two"


async def test_cut_before_response_is_a_connection_error(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.cut())
    # No response byte at all: the SDK maps httpx's error while sending to APIConnectionError.
    with pytest.raises(together.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION)


async def test_disconnect_drops_even_a_streamed_call_before_any_byte(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.disconnect())
    with pytest.raises(together.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    assert (fake_llm.requests[0].outcome, fake_llm.requests[0].status) == ("cut", None)


async def test_failures_repeat_times_then_calls_succeed(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.error("model_overloaded", status=400), times=2)
    for _ in range(2):
        with pytest.raises(together.BadRequestError) as info:
            await client.chat.completions.create(model=MODEL, messages=QUESTION)
        assert isinstance(info.value.body, dict)
        assert info.value.body["error"]["code"] == "model_overloaded"
    await client.chat.completions.create(model=MODEL, messages=QUESTION)
    assert [r.status for r in fake_llm.requests] == [400, 400, 200]


async def test_in_band_stream_error_is_an_api_error(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.stream_error(after_tokens=1, message="model crashed"))
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    with pytest.raises(together.APIError, match="model crashed") as info:
        await collect(stream)
    assert not isinstance(info.value, together.APIStatusError)  # status was 200; the error came in the body
    assert info.value.body == {
        "message": "model crashed",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_hang_times_out(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    fake_llm.fail(MODEL, Failure.hang())
    start = time.monotonic()
    with pytest.raises(together.APITimeoutError):
        await client.chat.completions.create(model=MODEL, messages=QUESTION, timeout=0.2)
    assert time.monotonic() - start < 1.0
    await asyncio.sleep(0.05)  # let the server notice the client left
    [recorded] = fake_llm.requests
    assert recorded.outcome == "hang" and recorded.status is None
    assert recorded.ended is not None and recorded.ended - recorded.started < 1.0


async def test_stalled_stream_raises_httpx_read_timeout(
    fake_llm: FakeLLM, client: together.AsyncTogether
) -> None:
    fake_llm.fail(MODEL, Failure.hang(after_tokens=1))
    stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True, timeout=0.2)
    # Like a cut, a read timeout while iterating escapes as httpx's own exception.
    with pytest.raises(httpx.ReadTimeout):
        await collect(stream)


async def test_unknown_model_is_a_404(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    with pytest.raises(together.NotFoundError) as info:
        await client.chat.completions.create(model="nobody/no-such-model", messages=QUESTION)
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["code"] == "model_not_available"
    assert "Unable to access model nobody/no-such-model" in info.value.body["error"]["message"]
    assert fake_llm.requests[0].status == 404


async def test_missing_or_wrong_api_key_is_a_401(fake_llm: FakeLLM) -> None:
    fake_llm.script(MODEL)
    # The SDK cannot send an empty key (httpx refuses the header value "Bearer "), so go without the SDK.
    async with httpx.AsyncClient(base_url=fake_llm.base_url) as http:
        response = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"

    async with FakeLLM([MODEL], api_key="right") as strict:
        async with together.AsyncTogether(api_key="wrong", base_url=strict.base_url, max_retries=0) as c:
            with pytest.raises(together.AuthenticationError) as info:
                await c.chat.completions.create(model=MODEL, messages=QUESTION)
        assert isinstance(info.value.body, dict) and info.value.body["error"]["code"] == "invalid_api_key"
        assert strict.requests[0].authorization == "Bearer wrong"


async def test_concurrent_requests_overlap(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    models = [MODEL, OTHER, "mistralai/Mixtral-8x22B-Instruct-v0.1"]
    for model in models:
        fake_llm.script(model, latency=0.2)
    start = time.monotonic()
    replies = await asyncio.gather(
        *(client.chat.completions.create(model=m, messages=QUESTION) for m in models)
    )
    assert time.monotonic() - start < 0.5  # not 3 x 0.2 s: the server answers in parallel
    assert [r.model for r in replies] == models
    a, b, c = fake_llm.requests
    assert a.overlaps(b) and b.overlaps(c) and a.overlaps(c)
    assert fake_llm.peak_in_flight == 3 and fake_llm.in_flight == 0


class ModelInfo(together.BaseModel):
    id: str
    object: str
    type: str


async def test_models_endpoint_parses_with_the_sdk(fake_llm: FakeLLM, client: together.AsyncTogether) -> None:
    fake_llm.script(OTHER)
    # together 3.1.1 has no typed call for Together's /v1/models (models.list() is the v2 custom-models API),
    # so the generic client.get is the way; Together returns a bare JSON array.
    models = await client.get("/v1/models", cast_to=list[ModelInfo])
    assert [(m.id, m.object, m.type) for m in models] == [(MODEL, "model", "chat"), (OTHER, "model", "chat")]
    assert fake_llm.completions == []


async def test_any_model_and_openai_base_url() -> None:
    async with FakeLLM(any_model=True) as llm:
        assert llm.openai_base_url == f"{llm.base_url}/v1"
        async with httpx.AsyncClient(base_url=llm.openai_base_url) as http:
            response = await http.post(
                "/chat/completions",
                json={"model": "local:llama3.1", "messages": QUESTION},
                headers={"Authorization": "Bearer x"},
            )
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"].startswith("[local:llama3.1] answer to:")
