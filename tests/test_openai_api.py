"""The OpenAI-compatible API in process: the adapter mounted on the service's HTTP app, the real answerer and
store, the fake LLM behind; the official openai SDK and raw HTTP in front.

The real-client tests against a real `moa-bot run` process are in tests/test_run_process.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from adapters.openai_api.app import OpenAIAdapter
from adapters.openai_api.keys import ApiKey
from adapters.openai_api.sink import RESTART_NOTE
from bot.http import build_app, start_site
from bot.metrics import Metrics
from moa.answering import Answerer
from moa.knowledge import Document, Kind, Librarian, Visibility
from moa.policy import UserRate
from storage import Store
from tests.core import core_settings, open_test_core
from tests.fakes.llm import FakeLLM, Failure, count_tokens, message_text
from tests.helpers import eventually, preset
from tests.test_cli import moa_bot

KEY = "team-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
LIMITED_KEY = "limited-key-0123456789abcdef"
SCOPED_KEY = "scoped-key-0123456789abcdef"
KEEPALIVE_S = 0.2
QUESTION = [{"role": "user", "content": "What is WAL?"}]


@dataclass
class Api:
    port: int
    answerer: Answerer
    store: Store
    librarian: Librarian
    llm: FakeLLM
    session: aiohttp.ClientSession
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def openai(self, key: str = KEY) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(api_key=key, base_url=self.url, max_retries=0, timeout=20)
        self.clients.append(client)
        return client

    async def post(self, body: Any, *, key: str | None = KEY) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        sent = {"json": body} if isinstance(body, dict | list) else {"data": body}  # bytes, or pieces of them
        async with self.session.post(f"{self.url}/chat/completions", headers=headers, **sent) as response:
            return response.status, dict(response.headers), await response.json()

    @asynccontextmanager
    async def stream(self, body: dict[str, Any], key: str = KEY) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.post(f"{self.url}/chat/completions", headers=headers,
                                     json={**body, "stream": True}) as response:
            assert response.status == 200, await response.text()
            yield response


@pytest.fixture
async def api(fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[Api]:
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    settings = core_settings(
        fake_llm,
        tmp_path,
        presets={"test": {"retries": 0}, "solo": {"proposers": ["p/a"], "aggregator": "agg/x", "layers": 1}},
        MOA_USER_RATE="off",
        # the allow-lists name chat channels and users: a key is the API's access, they do not apply
        MOA_ALLOWED_CHANNELS="C0SLACK",
        MOA_ALLOWED_USERS="U0SLACK",
    )
    async with open_test_core(settings) as core, aiohttp.ClientSession() as session:
        answerer, store = core.answerer, core.store
        keys = [ApiKey("team", KEY), ApiKey("other", OTHER_KEY), ApiKey("limited", LIMITED_KEY, UserRate(1, 60.0)),
                ApiKey("ops", SCOPED_KEY, scope="CPRIV")]
        adapter = OpenAIAdapter(keys=keys, answerer=answerer, keepalive_s=KEEPALIVE_S)
        app = build_app(store=store, adapters=[adapter], metrics=Metrics(), in_flight=lambda: answerer.in_flight,
                        accepting=lambda: answerer.accepting)
        runner, port = await start_site(app, "127.0.0.1", 0)
        api = Api(port, answerer, store, core.librarian, fake_llm, session)
        try:
            yield api
        finally:
            for client in api.clients:
                await client.close()
            await runner.cleanup()


def expected_usage(llm: FakeLLM) -> dict[str, int]:
    """Every model call's tokens as the fake counted them: what the API's usage must add up to."""
    prompt = sum(count_tokens(message_text(m.get("content"))) for r in llm.completions for m in r.messages)
    completion = sum(count_tokens(r.reply or "") for r in llm.completions)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def sse(response: aiohttp.ClientResponse) -> tuple[list[Any], list[str]]:
    """The data events (JSON, or "[DONE]") and the comment lines of a server-sent event stream."""
    events: list[Any] = []
    comments: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
        elif line.startswith(":"):
            comments.append(line[1:].strip())
    return events, comments


async def run_row(store: Store, run_id: str) -> tuple[Any, ...]:
    async with store.db.execute(
        "SELECT c.platform, c.workspace, c.channel, c.thread, r.user_id, r.status FROM runs r"
        " JOIN conversations c ON c.id = r.conversation_id WHERE r.id = ?", (run_id,)
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


# --- models -----------------------------------------------------------------------------------------------


async def test_every_preset_is_a_model(api: Api) -> None:
    client = api.openai()
    models = [m async for m in client.models.list()]
    served = ["default", "demo", "lite", "seed", "self", "solo", "test"]  # built in, and the file's
    assert [(m.id, m.owned_by, m.object) for m in models] == [(name, "moa-bot", "model") for name in served]
    assert (await client.models.retrieve("test")).id == "test"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-4o")


# --- answers ----------------------------------------------------------------------------------------------


async def test_a_completion_carries_the_answer_the_usage_of_every_call_and_the_moa_object(api: Api) -> None:
    completion = await api.openai().chat.completions.create(model="test", messages=QUESTION)  # type: ignore[arg-type]
    assert completion.object == "chat.completion" and completion.model == "test"
    assert completion.choices[0].message.content == "[agg/x] answer to: What is WAL?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.model_dump(include={
        "prompt_tokens", "completion_tokens", "total_tokens"}) == expected_usage(api.llm)
    moa = (completion.model_extra or {})["moa"]
    assert [(p["model"], p["status"], p["layer"]) for p in moa["proposers"]] == [("p/a", "ok", 1), ("p/b", "ok", 1)]
    assert moa["aggregator"]["model"] == "agg/x" and moa["fallback"] is False
    assert set(moa["usage_by_model"]) == {"p/a", "p/b", "agg/x"}
    assert all("draft" not in p for p in moa["proposers"])
    assert await run_row(api.store, moa["run_id"]) == ("api", "team", "", completion.id, "team", "done")


async def test_a_stream_sends_the_deltas_the_finish_the_usage_then_done(api: Api) -> None:
    api.llm.script("agg/x", reply="one two three four", tokens_per_s=100)
    body = {"model": "test", "messages": QUESTION, "stream_options": {"include_usage": True}}
    async with api.stream(body) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events, _ = await sse(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert contents == ["one", " two", " three", " four"]  # each piece as the aggregator wrote it
    finish, last = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None
    assert last["choices"] == [] and last["usage"] == expected_usage(api.llm)
    assert last["moa"]["aggregator"]["model"] == "agg/x"
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_without_include_usage_the_finish_chunk_is_last_and_carries_the_moa_object(api: Api) -> None:
    async with api.stream({"model": "test", "messages": QUESTION}) as response:
        events, _ = await sse(response)
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "stop" and "usage" not in last
    assert [p["model"] for p in last["moa"]["proposers"]] == ["p/a", "p/b"]


async def test_drafts_are_included_when_asked(api: Api) -> None:
    status, _, body = await api.post({"model": "test", "messages": QUESTION, "moa": {"include_drafts": True}})
    assert status == 200
    assert [p["draft"] for p in body["moa"]["proposers"]] == ["[p/a] answer to: What is WAL?",
                                                              "[p/b] answer to: What is WAL?"]


async def test_the_messages_are_the_conversation_system_first_and_none_is_stored(api: Api) -> None:
    messages = [
        {"role": "user", "content": "What is WAL?"},
        {"role": "assistant", "content": "A log."},
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "in Postgres?"}]},
    ]
    status, _, body = await api.post({"model": "test", "messages": messages, "user": "alice"})
    assert status == 200
    assert api.llm.requests_for("p/a")[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is WAL?"},
        {"role": "assistant", "content": "A log."},
        {"role": "user", "content": "And\nin Postgres?"},
    ]
    aggregator_system = api.llm.requests_for("agg/x")[0].messages[0]["content"]
    assert aggregator_system.startswith("Be brief.\n\n---\n\nBelow are draft answers")
    platform, workspace, channel, thread, user, _ = await run_row(api.store, body["moa"]["run_id"])
    assert (platform, workspace, channel, thread, user) == ("api", "team", "alice", body["id"], "team")
    async with api.store.db.execute("SELECT COUNT(*) FROM messages") as cursor:
        assert (await cursor.fetchone()) == (0,)


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
async def test_temperature_and_max_tokens_apply_to_the_aggregator(api: Api, name: str) -> None:
    status, _, body = await api.post({"model": "test", "messages": QUESTION, "temperature": 0.2, name: 2})
    assert status == 200 and body["choices"][0]["message"]["content"] == "[agg/x] answer"
    aggregator, proposer = api.llm.requests_for("agg/x")[0].body, api.llm.requests_for("p/a")[0].body
    assert (aggregator["temperature"], aggregator["max_tokens"]) == (0.2, 2)
    assert (proposer["temperature"], proposer["max_tokens"]) == (0.7, 512)


async def test_a_failed_aggregator_returns_the_best_draft_with_fallback_true(api: Api) -> None:
    api.llm.fail("agg/x", Failure.http(500))
    status, _, body = await api.post({"model": "test", "messages": QUESTION})
    assert status == 200
    assert body["choices"][0]["message"]["content"].startswith("[p/a] answer to: What is WAL?")
    assert body["moa"]["fallback"] is True and "500" in body["moa"]["aggregator"]["error"]


async def test_failed_and_cut_off_proposers_are_named(api: Api) -> None:
    api.answerer.catalog.presets["test"] = preset(proposers=("p/a", "p/b", "p/c"), retries=0, min_proposers=1,
                                                  straggler_grace_s=0.1)
    api.llm.script("p/b", latency=5)
    api.llm.fail("p/c", Failure.http(503))
    status, _, body = await api.post({"model": "test", "messages": QUESTION})
    assert status == 200
    statuses = {p["model"]: (p["status"], bool(p.get("error"))) for p in body["moa"]["proposers"]}
    assert statuses == {"p/a": ("ok", False), "p/b": ("cut_off", True), "p/c": ("failed", True)}


async def test_a_stream_whose_answer_is_replaced_says_it_restarts(api: Api) -> None:
    api.llm.script("agg/x", reply="partial words that never finish")
    api.llm.fail("agg/x", Failure.cut(after_tokens=2))  # and the preset does not retry: the best draft instead
    async with api.stream({"model": "test", "messages": QUESTION}) as response:
        events, _ = await sse(response)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1])
    before, restarted, after = text.partition(RESTART_NOTE)
    assert (before, restarted) == ("partial words", RESTART_NOTE)
    assert after.startswith("[p/a] answer to: What is WAL?") and "synthesizing model failed" in after
    assert events[-2]["moa"]["fallback"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_no_model_answering_is_an_error_the_sdk_raises(api: Api, stream: bool) -> None:
    for model in ("p/a", "p/b", "agg/x"):
        api.llm.fail(model, Failure.http(401))
    client = api.openai()
    with pytest.raises(openai.APIError) as info:
        response = await client.chat.completions.create(model="test", messages=QUESTION, stream=stream)  # type: ignore[call-overload]
        if stream:
            async for _ in response:
                pass
    assert "No model could answer" in info.value.message
    if not stream:
        assert isinstance(info.value, openai.APIStatusError) and info.value.status_code == 502


# --- errors -----------------------------------------------------------------------------------------------


def assert_openai_error(body: Any, code: str | None) -> str:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"] and error["type"]
    assert error["code"] == code, error
    return str(error["message"])


@pytest.mark.parametrize("header", [None, "Bearer wrong-key-0123456789", f"Basic {KEY}", f"Bearer {KEY}x"])
async def test_a_missing_or_wrong_key_gets_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("GET", "/models"), ("POST", "/chat/completions"), ("GET", "/embeddings")):
        async with api.session.request(method, api.url + path, headers=headers, json={}) as response:
            assert response.status == 401
            assert_openai_error(await response.json(), "invalid_api_key")
    assert api.llm.requests == []


async def test_an_unknown_model_gets_404_naming_the_presets(api: Api) -> None:
    status, _, body = await api.post({"model": "gpt-4o", "messages": QUESTION})
    assert status == 404
    assert "moa-bot serves its presets as models: default, demo, lite, seed, self, solo, test" in assert_openai_error(body, "model_not_found")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({"messages": QUESTION}, "model is required"),
        ({"model": "test", "messages": []}, "messages must be a non-empty list"),
        ({"model": "test", "messages": [{"role": "assistant", "content": "hi"}]}, "last message must be the user's"),
        ({"model": "test", "messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
        ({"model": "test", "messages": [{"role": "user", "content": 5}]}, "content must be a string or a list"),
        ({"model": "test", "messages": QUESTION, "temperature": "hot"}, "temperature must be a number"),
        ({"model": "test", "messages": QUESTION, "temperature": 3}, "temperature must be between 0 and 2"),
        ({"model": "test", "messages": QUESTION, "max_tokens": True}, "max_tokens must be a whole number"),
        ({"model": "test", "messages": QUESTION, "stream": "yes"}, "stream must be true or false"),
        ({"model": "test", "messages": [{"role": "user", "content": " "}]}, "has no text to answer"),
        ({"model": "test", "messages": QUESTION, "user": "u" * 257}, "user must be at most 256 characters"),
    ],
)
async def test_a_malformed_body_gets_400_saying_what_is_wrong(api: Api, body: Any, says: str) -> None:
    status, _, answer = await api.post(json.dumps(body).encode() if not isinstance(body, bytes) else body)
    assert status == 400
    message = assert_openai_error(answer, answer["error"]["code"])
    assert says in message and api.llm.requests == []


@pytest.mark.parametrize(
    ("extra", "feature"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools (function calling)"),
        ({"tool_choice": "required"}, "tools (function calling)"),
        ({"response_format": {"type": "json_object"}}, "response_format 'json_object'"),
        ({"n": 2}, "n > 1"),
        ({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, "images"),
        ({"messages": [*QUESTION, {"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "tools"),
    ],
)
async def test_unsupported_features_get_400_saying_moa_bot_does_not_support_them(
    api: Api, extra: dict[str, Any], feature: str
) -> None:
    status, _, body = await api.post({"model": "test", "messages": QUESTION, **extra})
    assert status == 400
    message = assert_openai_error(body, "unsupported_parameter")
    assert message.startswith(f"moa-bot does not support {feature}") and api.llm.requests == []


async def test_ignored_parameters_are_accepted(api: Api) -> None:
    extra = {"top_p": 0.9, "stop": ["\n\n"], "seed": 1, "presence_penalty": 0.1, "tools": [], "tool_choice": "none",
             "response_format": {"type": "text"}, "n": 1, "logit_bias": {}, "keep_alive": "5m"}
    status, _, _ = await api.post({"model": "test", "messages": QUESTION, **extra})
    assert status == 200


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_1_mb_gets_413(api: Api, chunked: bool) -> None:
    big = json.dumps({"model": "test", "messages": [{"role": "user", "content": "x" * 1024**2}]}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    status, _, body = await api.post(pieces() if chunked else big)
    assert status == 413
    assert "1 MB" in assert_openai_error(body, "request_too_large")


async def test_the_rate_limit_gets_429_with_retry_after(api: Api) -> None:
    assert (await api.post({"model": "test", "messages": QUESTION}, key=LIMITED_KEY))[0] == 200
    status, headers, body = await api.post({"model": "test", "messages": QUESTION}, key=LIMITED_KEY)
    assert status == 429 and 58 <= int(headers["Retry-After"]) <= 60
    assert "limit of 1 questions per 60 seconds" in assert_openai_error(body, "rate_limit_exceeded")
    assert (await api.post({"model": "test", "messages": QUESTION}, key=KEY))[0] == 200  # other keys go on


async def test_while_draining_requests_get_503(api: Api) -> None:
    api.answerer.stop_intake()
    status, _, body = await api.post({"model": "test", "messages": QUESTION})
    assert status == 503 and "restarting" in assert_openai_error(body, "shutting_down")


async def test_other_paths_get_404_in_openai_shape(api: Api) -> None:
    async with api.session.post(f"{api.url}/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                                json={}) as response:
        assert response.status == 404
        assert "POST /v1/chat/completions" in assert_openai_error(await response.json(), "unknown_endpoint")


# --- the connection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["while the proposers work", "while the answer streams", "not streaming"])
async def test_a_client_that_disconnects_cancels_its_run(api: Api, when: str) -> None:
    if when == "while the answer streams":
        api.llm.script("agg/x", reply=" ".join(f"w{i}" for i in range(400)), tokens_per_s=20)
    else:
        api.llm.script("p/a", latency=30)
    if when == "not streaming":
        request = asyncio.create_task(api.post({"model": "test", "messages": QUESTION}))
        await eventually(lambda: api.llm.in_flight > 0, what="the proposers asked")
        request.cancel()  # the client gives up and closes its connection
        await asyncio.wait([request])
        gone = time.monotonic()
    else:
        async with api.stream({"model": "test", "messages": QUESTION}) as response:
            async for raw in response.content:
                if api.llm.in_flight > 0 and (when != "while the answer streams" or b"w1" in raw):
                    break
            response.close()  # the client goes away
            gone = time.monotonic()
    await eventually(lambda: api.llm.in_flight == 0, within=1.0, what="every model call of the run cancelled")
    assert time.monotonic() - gone < 1.0
    assert "client_gone" in {r.outcome for r in api.llm.completions}
    for _ in range(100):  # the record is written as the run ends, a moment after its calls
        async with api.store.db.execute("SELECT status FROM runs") as cursor:
            statuses = [row[0] for row in await cursor.fetchall()]
        if statuses != ["running"]:
            break
        await asyncio.sleep(0.02)
    assert statuses == ["cancelled"]


async def test_keepalive_comments_while_the_proposers_work(api: Api) -> None:
    api.llm.script("p/a", latency=1.2)
    arrivals: list[tuple[float, bytes]] = []
    async with api.stream({"model": "test", "messages": QUESTION}) as response:
        async for raw in response.content:
            if raw.strip():
                arrivals.append((time.monotonic(), raw))
    first_content = next(i for i, (_, raw) in enumerate(arrivals) if b'"content":"[agg' in raw)
    waiting = arrivals[:first_content]
    assert sum(raw.startswith(b": keep-alive") for _, raw in waiting) >= 3
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(waiting)]
    assert max(gaps) < KEEPALIVE_S + 0.3  # never quiet for much more than the interval
    assert b": Asking 2 models" in waiting[1][1]  # the statuses come as comments too


async def test_100_concurrent_streams_arrive_whole_and_unmixed(api: Api) -> None:
    api.llm.script("agg/x", tokens_per_s=200)

    async def ask(i: int) -> tuple[str, str, str, str]:
        key = KEY if i % 2 else OTHER_KEY
        async with api.stream({"model": "test", "messages": [{"role": "user", "content": f"question {i}"}]},
                              key=key) as response:
            events, _ = await sse(response)
        assert events[-1] == "[DONE]"
        chunks = events[:-1]
        assert len({c["id"] for c in chunks}) == 1
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        return key, chunks[0]["id"], text, chunks[-1]["moa"]["run_id"]

    results = await asyncio.wait_for(asyncio.gather(*(ask(i) for i in range(100))), 60)
    assert [text for _, _, text, _ in results] == [f"[agg/x] answer to: question {i}" for i in range(100)]
    assert len({completion for _, completion, _, _ in results}) == 100
    for key, completion, _, run_id in results:  # each run is its own key's, under its own completion id
        _, workspace, _, thread, _, status = await run_row(api.store, run_id)
        assert (workspace, thread, status) == ("team" if key == KEY else "other", completion, "done")


async def test_run_without_adapters_names_the_api_keys_too(tmp_path: Path) -> None:
    code, _, err = await moa_bot("run", env={"MOA_DB": str(tmp_path / "db.sqlite3")}, cwd=tmp_path)
    assert code == 2 and "MOA_API_KEYS" in err


async def test_an_api_run_left_by_a_crash_is_marked_interrupted(fake_llm: FakeLLM, tmp_path: Path) -> None:
    """Its client is gone with the process that answered it: nothing can be resumed, the record says so."""
    from bot.config import load_settings
    from bot.service import Service, build_adapters
    from bot.wiring import open_core
    from moa.conversation import ConversationKey

    config = tmp_path / "moa.toml"
    config.write_text('[presets.default]\nproposers = ["p/a"]\naggregator = "agg/x"\n')
    settings = load_settings({"TOGETHER_API_KEY": "together-key", "TOGETHER_BASE_URL": fake_llm.base_url,
                              "MOA_CONFIG": str(config), "MOA_DB": str(tmp_path / "moa.sqlite3"),
                              "MOA_HTTP_PORT": "0", "MOA_API_KEYS": KEY})
    async with Store(settings.db_path) as store:
        run_id = await store.create_run(ConversationKey("api", "team", "", "chatcmpl-1"), "team", "q", "default", "")
        await store.set_placeholder(run_id, {"completion": "chatcmpl-1"})
    metrics = Metrics()
    async with open_core(settings) as core:
        service = Service(settings, core, build_adapters(settings, core, metrics), metrics)
        assert [adapter.name for adapter in service.adapters] == ["api"]
        task = asyncio.create_task(service.run())
        for _ in range(200):
            record = await core.store.get_run(run_id)
            if record is not None and record["status"] != "running" and record["status"] != "pending":
                break
            await asyncio.sleep(0.02)
        service.stop()
        assert await task == 0
    assert record is not None and record["status"] == "interrupted"


# --- team knowledge -----------------------------------------------------------------------------------------


def _message(channel: str, text: str, visibility: Visibility) -> Document:
    return Document(f"slack:T1:{channel}:1.1", Kind.MESSAGE, "slack", "T1", channel, text, visibility,
                    author="ann", created_at=time.time())


@pytest.mark.parametrize(
    ("key", "user", "sees_private"),
    [(KEY, None, False), (KEY, "CPRIV", False), (SCOPED_KEY, None, True)],
    ids=["a key sees public knowledge", "the user field does not open a private channel",
         "a key scoped to a channel sees its private knowledge"],
)
async def test_api_answers_use_public_team_knowledge_and_the_keys_scope(
    api: Api, key: str, user: str | None, sees_private: bool
) -> None:
    await api.librarian.index_messages([
        _message("CPUB", "The staging deploy runs from the release-train pipeline every Tuesday.", Visibility.PUBLIC),
        _message("CPRIV", "The staging deploy password rotates with the release-train pipeline.", Visibility.PRIVATE),
    ])
    body = {"model": "test", "messages": [{"role": "user", "content": "How does the staging deploy pipeline run?"}]}
    if user is not None:
        body["user"] = user
    status, _, _ = await api.post(body, key=key)
    assert status == 200
    prompt = json.dumps(api.llm.requests_for("p/a")[-1].messages)
    assert "every Tuesday" in prompt
    assert ("password rotates" in prompt) is sees_private
