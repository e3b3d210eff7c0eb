"""The fake Slack behaves like Slack for the real slack_sdk / slack_bolt clients.

Every test drives the unpatched libraries over real HTTP and WebSocket connections, so what passes here is what
the Slack adapter's tests can rely on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import slack_payloads as sp
from tests.fakes.slack import Failure, FakeSlack

SIGNING_SECRET = "fake-signing-secret"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll until `check()` holds: the app reacts asynchronously to what the fake pushed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---------------------------------------------------------------- Web API


async def test_auth_test_identifies_the_bot(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["ok"] is True
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == (sp.TEAM_ID, sp.BOT_USER_ID, sp.BOT_ID)
    assert resp["url"].startswith("https://") and resp["team"] and resp["user"]
    assert slack.calls_to("auth.test", ok=True)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("xoxb-wrong", "invalid_auth"),
        (None, "not_authed"),
        ("xapp-1-A0FAKEAPP-1-fake-app-token", "not_allowed_token_type"),
    ],
)
async def test_bad_tokens_are_refused(slack: FakeSlack, token: str | None, error: str) -> None:
    bad = AsyncWebClient(token=token, base_url=slack.api_url)
    exc = await api_error(bad.chat_postMessage(channel=sp.CHANNEL_ID, text="hi"))
    assert exc.response["error"] == error
    assert slack.messages(sp.CHANNEL_ID) == []


async def test_post_update_and_replies_round_trip(slack: FakeSlack, client: AsyncWebClient) -> None:
    question = slack.add_message(sp.CHANNEL_ID, "<@U0FAKEBOT> what is MoA?")
    posted = await client.chat_postMessage(
        channel=sp.CHANNEL_ID, thread_ts=question["ts"], text="Asking 4 models..."
    )
    assert posted["channel"] == sp.CHANNEL_ID
    assert posted["message"]["bot_id"] == sp.BOT_ID and posted["message"]["thread_ts"] == question["ts"]
    for text in ("3/4 drafts in, synthesizing...", "Mixture", "Mixture of Agents is..."):
        updated = await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text=text)
        assert (updated["ts"], updated["text"]) == (posted["ts"], text)
    second = await client.chat_postMessage(
        channel=sp.CHANNEL_ID, thread_ts=question["ts"], markdown_text="**more**"
    )
    assert second["ts"] > posted["ts"]  # unique and increasing, Slack-style "1700000000.000100"
    assert second["message"]["blocks"] == [{"type": "markdown", "text": "**more**"}]

    replies = await client.conversations_replies(channel=sp.CHANNEL_ID, ts=question["ts"])
    texts = [m["text"] for m in replies["messages"]]
    assert texts == ["<@U0FAKEBOT> what is MoA?", "Mixture of Agents is...", "**more**"]
    assert replies["messages"][0]["reply_count"] == 2 and replies["has_more"] is False

    stored = slack.message(sp.CHANNEL_ID, posted["ts"])
    assert stored["text"] == "Mixture of Agents is..."
    assert [e["text"] for e in stored["edits"]] == [
        "Asking 4 models...",
        "3/4 drafts in, synthesizing...",
        "Mixture",
    ]
    assert len(slack.bot_messages(sp.CHANNEL_ID, thread_ts=question["ts"])) == 2
    assert [c.method for c in slack.calls].count("chat.update") == 3


async def test_form_and_json_bodies_give_the_same_blocks(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]
    # slack_sdk sends chat.postMessage as JSON; `data=` forces a form body with blocks as a JSON string.
    as_json = await client.chat_postMessage(
        channel=sp.CHANNEL_ID, text="fallback", blocks=blocks, mrkdwn=False
    )
    as_form = await client.api_call(
        "chat.postMessage", data={"channel": sp.CHANNEL_ID, "text": "fallback", "blocks": json.dumps(blocks)}
    )
    for resp in (as_json, as_form):
        assert slack.message(sp.CHANNEL_ID, resp["ts"])["blocks"] == blocks
    assert slack.message(sp.CHANNEL_ID, as_json["ts"])["mrkdwn"] is False
    assert slack.calls[-1].params["blocks"] == json.dumps(blocks)


async def test_ephemeral_delete_and_lookups(slack: FakeSlack, client: AsyncWebClient) -> None:
    eph = await client.chat_postEphemeral(channel=sp.CHANNEL_ID, user=sp.USER_ID, text="only you")
    assert eph["message_ts"] and slack.ephemerals[-1]["text"] == "only you"
    posted = await client.chat_postMessage(channel=sp.CHANNEL_ID, text="oops")
    deleted = await client.chat_delete(channel=sp.CHANNEL_ID, ts=posted["ts"])
    assert deleted["ts"] == posted["ts"] and slack.messages(sp.CHANNEL_ID) == []
    info = await client.conversations_info(channel=sp.DM_CHANNEL_ID)
    assert info["channel"]["is_im"] is True and info["channel"]["user"] == sp.USER_ID
    user = await client.users_info(user=sp.USER_ID)
    assert user["user"]["name"] == sp.USER_NAME and user["user"]["is_bot"] is False


async def test_errors_match_slack() -> None:
    async with FakeSlack(post_burst=100) as slack:  # many calls on one channel: keep the post limit out of it
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        human = slack.add_message(sp.CHANNEL_ID, "a human message")
        section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
        too_many = [{"type": "divider"}] * 51
        big_markdown = [{"type": "markdown", "text": "x" * 6001}] * 2
        post = client.chat_postMessage
        cases: list[tuple[Callable[[], Awaitable[Any]], str]] = [
            (lambda: post(channel="C0NOPE", text="hi"), "channel_not_found"),
            (lambda: post(channel=sp.PRIVATE_CHANNEL_ID + "X", text="hi"), "channel_not_found"),
            (lambda: post(channel=sp.NOT_MEMBER_CHANNEL_ID, text="hi"), "not_in_channel"),
            (lambda: post(channel=sp.CHANNEL_ID, text="x" * 4001), "msg_too_long"),
            (lambda: post(channel=sp.CHANNEL_ID, text="t", blocks=section), "invalid_blocks"),
            (lambda: post(channel=sp.CHANNEL_ID, text="t", blocks=too_many), "invalid_blocks"),
            (lambda: post(channel=sp.CHANNEL_ID, text="t", blocks=big_markdown), "invalid_blocks"),
            (lambda: post(channel=sp.CHANNEL_ID, markdown_text="x" * 12001), "msg_too_long"),
            (lambda: post(channel=sp.CHANNEL_ID, text="t", markdown_text="m"), "markdown_text_conflict"),
            # api_call: chat_postMessage itself warns (UserWarning) before sending a message without text
            (lambda: client.api_call("chat.postMessage", json={"channel": sp.CHANNEL_ID}), "no_text"),
            (lambda: client.chat_update(channel=sp.CHANNEL_ID, ts="1.000001", text="x"), "message_not_found"),
            (
                lambda: client.chat_update(channel=sp.CHANNEL_ID, ts=human["ts"], text="x"),
                "cant_update_message",
            ),
            (lambda: client.chat_delete(channel=sp.CHANNEL_ID, ts=human["ts"]), "cant_delete_message"),
            (lambda: client.conversations_replies(channel=sp.CHANNEL_ID, ts="1.000001"), "thread_not_found"),
            (lambda: client.users_info(user="U0NOBODY"), "user_not_found"),
            (lambda: client.api_call("chat.nope"), "unknown_method"),
        ]
        for call, error in cases:
            exc = await api_error(call())
            assert (exc.response["error"], exc.response.status_code) == (error, 200)  # Slack: 200, ok: false
        blocks_exc = await api_error(post(channel=sp.CHANNEL_ID, text="t", blocks=section))
        assert "3001" in blocks_exc.response["errors"][0]
        assert slack.bot_messages(sp.CHANNEL_ID) == []
        assert slack.rate_limited == {}


# ---------------------------------------------------------------- rate limits


async def test_chat_update_over_tier3_is_429_with_retry_after() -> None:
    async with FakeSlack(tier3_per_minute=3, window_s=0.3) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel=sp.CHANNEL_ID, text="v0")
        for i in range(3):
            await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text=f"v{i + 1}")
        exc = await api_error(client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v4"))
        assert exc.response.status_code == 429 and exc.response["error"] == "ratelimited"
        assert exc.response.headers["Retry-After"] == "1"
        assert slack.rate_limited["chat.update"] == 1
        assert slack.calls[-1].retry_after == 1
        await asyncio.sleep(0.31)  # the window slides: calls are accepted again
        await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v4")
        assert slack.message(sp.CHANNEL_ID, posted["ts"])["text"] == "v4"


async def test_retry_handler_rides_through_429() -> None:
    async with FakeSlack(tier3_per_minute=2, window_s=0.5) as slack:
        client = AsyncWebClient(
            token=slack.bot_token,
            base_url=slack.api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        posted = await client.chat_postMessage(channel=sp.CHANNEL_ID, text="v0")
        for i in range(3):
            await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text=f"v{i + 1}")
        assert slack.rate_limited["chat.update"] == 1
        assert [c.status for c in slack.calls_to("chat.update")] == [200, 200, 429, 200]
        assert slack.message(sp.CHANNEL_ID, posted["ts"])["text"] == "v3"


async def test_post_message_is_limited_per_channel_with_a_burst() -> None:
    async with FakeSlack(post_burst=2, post_interval_s=0.2) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for _ in range(2):
            await client.chat_postMessage(channel=sp.CHANNEL_ID, text="burst")
        exc = await api_error(client.chat_postMessage(channel=sp.CHANNEL_ID, text="too fast"))
        assert exc.response.status_code == 429 and int(exc.response.headers["Retry-After"]) >= 1
        await client.chat_postMessage(channel=sp.OTHER_CHANNEL_ID, text="another channel has its own bucket")
        await asyncio.sleep(0.21)
        await client.chat_postMessage(channel=sp.CHANNEL_ID, text="refilled")
        assert slack.rate_limited == {"chat.postMessage": 1}
        assert [m["text"] for m in slack.messages(sp.CHANNEL_ID)] == ["burst", "burst", "refilled"]


async def test_fail_injects_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=sp.CHANNEL_ID, text="v0")
    slack.fail("chat.update", Failure.rate_limit(retry_after=7), Failure.error("internal_error", status=500))
    exc = await api_error(client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v1"))
    assert exc.response.status_code == 429 and exc.response.headers["Retry-After"] == "7"
    exc = await api_error(client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v1"))
    assert exc.response.status_code == 500 and exc.response["error"] == "internal_error"
    await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v1")
    assert slack.rate_limited["chat.update"] == 1


async def test_an_injected_error_is_slacks_http_200_error(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail("chat.postMessage", Failure.error("msg_too_long"))
    exc = await api_error(client.chat_postMessage(channel=sp.CHANNEL_ID, text="hi"))
    assert exc.response.status_code == 200 and exc.response["error"] == "msg_too_long"
    assert slack.messages(sp.CHANNEL_ID) == []
    assert slack.rate_limited == {}


async def test_injected_failures_use_no_rate_limit_budget() -> None:
    async with FakeSlack(tier3_per_minute=1) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel=sp.CHANNEL_ID, text="v0")
        slack.fail("chat.update", Failure.rate_limit(retry_after=2), times=2)
        for _ in range(2):
            exc = await api_error(client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v1"))
            assert exc.response.headers["Retry-After"] == "2"
        await client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v1")  # the budget is intact
        exc = await api_error(client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="v2"))
        assert exc.response.status_code == 429 and slack.rate_limited["chat.update"] == 3


async def test_a_disconnect_drops_the_call_unanswered(slack: FakeSlack) -> None:
    # Without the SDK's default handlers, which retry a connection error once.
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    slack.fail("chat.postMessage", Failure.disconnect())
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel=sp.CHANNEL_ID, text="lost")
    assert [(c.status, c.error) for c in slack.calls_to("chat.postMessage")] == [(0, "disconnect")]
    assert slack.messages(sp.CHANNEL_ID) == []
    await client.chat_postMessage(channel=sp.CHANNEL_ID, text="the next call goes through")


async def test_a_hung_call_is_never_answered(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=0.2)
    slack.fail("chat.update", Failure.hang())
    with pytest.raises(TimeoutError):
        await client.chat_update(channel=sp.CHANNEL_ID, ts="1.000001", text="x")
    assert [(c.status, c.error) for c in slack.calls_to("chat.update")] == [(0, "hang")]


def test_fail_refuses_what_slack_cannot_do(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="no Web API method"):
        slack.fail("chat.postMesage", Failure.error("msg_too_long"))
    with pytest.raises(ValueError, match="streamed"):
        slack.fail("chat.update", Failure.cut())
    with pytest.raises(ValueError, match="strings"):
        slack.fail("chat.update", Failure.error(50035))


# ---------------------------------------------------------------- Socket Mode


async def test_socket_mode_client_connects_acks_and_reconnects(slack: FakeSlack) -> None:
    web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    sm = SocketModeClient(app_token=slack.app_token, web_client=web_client, ping_interval=1)
    received: list[SocketModeRequest] = []

    async def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    sm.socket_mode_request_listeners.append(on_request)  # type: ignore[arg-type]
    try:
        await sm.connect()
        await slack.wait_connected()
        assert slack.calls_to("apps.connections.open", ok=True)

        body = sp.event_callback(sp.app_mention("hello"))
        env = slack.push_event(body)
        ack = await asyncio.wait_for(env, 3)
        assert ack == {"envelope_id": env.envelope_id}
        assert env.ack_latency_s is not None and env.ack_latency_s < 1
        assert received[0].type == "events_api" and received[0].payload == body
        assert received[0].retry_attempt == 0
        # The message the event refers to now exists, as in Slack.
        assert slack.message(sp.CHANNEL_ID, body["event"]["ts"])["user"] == sp.USER_ID

        await slack.disconnect_all()  # server closes the socket: the SDK asks for a new URL and reconnects
        await slack.wait_connected(total=2)
        retry = slack.push_event(body, retry_attempt=1)
        await asyncio.wait_for(retry, 3)
        assert (received[-1].retry_attempt, received[-1].retry_reason) == (1, "timeout")

        await slack.send_disconnect("refresh_requested")
        await slack.wait_connected(total=3)
        await asyncio.wait_for(slack.push_event(sp.event_callback(sp.dm_message("hi"))), 3)
        assert len(slack.calls_to("apps.connections.open")) == 3
        assert [a["envelope_id"] for a in slack.acks] == [e.envelope_id for e in slack.envelopes]
    finally:
        await sm.close()
    await slack.wait_disconnected()


async def test_socket_mode_client_recovers_from_a_dropped_connection(slack: FakeSlack) -> None:
    web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    # A dropped TCP connection is noticed by the SDK's monitor, which runs every ping_interval.
    sm = SocketModeClient(app_token=slack.app_token, web_client=web_client, ping_interval=0.2)

    async def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    sm.socket_mode_request_listeners.append(on_request)  # type: ignore[arg-type]
    try:
        await sm.connect()
        await slack.wait_connected()
        assert await slack.disconnect_all(abrupt=True) == 1
        await slack.wait_connected(total=2)
        ack = await asyncio.wait_for(slack.push_event(sp.event_callback(sp.app_mention("still there?"))), 3)
        assert ack["envelope_id"] == slack.envelopes[-1].envelope_id
        assert slack.envelopes[-1].connection_id == slack.connections[-1].id == 2
    finally:
        await sm.close()


async def test_bolt_socket_mode_handler_answers_mentions_and_commands(slack: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret="unused"
    )

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text=f"answer to: {event['text']}", thread_ts=event["ts"])

    @app.command("/moa")
    async def on_moa(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"asked: {command['text']}", response_type="in_channel")

    handler = AsyncSocketModeHandler(app, slack.app_token)
    try:
        await handler.connect_async()
        mention = sp.event_callback(sp.app_mention("what is MoA?"))
        ack = await asyncio.wait_for(slack.push_event(mention), 3)
        assert ack["envelope_id"] == slack.envelopes[0].envelope_id
        thread_ts = mention["event"]["ts"]
        await eventually(lambda: bool(slack.bot_messages(sp.CHANNEL_ID, thread_ts=thread_ts)))
        reply = slack.bot_messages(sp.CHANNEL_ID, thread_ts=thread_ts)[0]
        assert reply["text"] == "answer to: <@U0FAKEBOT> what is MoA?"

        command = slack.push_slash_command(sp.slash_command("why?"))
        await asyncio.wait_for(command, 3)
        await eventually(lambda: bool(slack.response_url_posts))
        assert slack.response_url_posts[0]["body"]["text"] == "asked: why?"
        assert (
            slack.bot_messages(sp.CHANNEL_ID)[-1]["text"] == "asked: why?"
        )  # in_channel lands in the channel
    finally:
        await handler.close_async()


async def test_echo_bot_events_sends_own_messages_back() -> None:
    async with FakeSlack(echo_bot_events=True) as slack:
        web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        sm = SocketModeClient(app_token=slack.app_token, web_client=web_client)
        events: list[dict[str, Any]] = []

        async def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
            events.append(req.payload["event"])
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        sm.socket_mode_request_listeners.append(on_request)  # type: ignore[arg-type]
        try:
            await sm.connect()
            await slack.wait_connected()
            posted = await web_client.chat_postMessage(channel=sp.CHANNEL_ID, text="draft")
            await web_client.chat_update(channel=sp.CHANNEL_ID, ts=posted["ts"], text="final")
            await eventually(lambda: len(events) == 2)
        finally:
            await sm.close()
        assert events[0]["bot_id"] == sp.BOT_ID and events[0]["user"] == sp.BOT_USER_ID
        assert events[1]["subtype"] == "message_changed"
        assert (events[1]["message"]["text"], events[1]["previous_message"]["text"]) == ("final", "draft")


async def test_push_without_connection_fails_the_envelope() -> None:
    async with FakeSlack(connect_wait_s=0.05) as slack:
        with pytest.raises(ConnectionError):
            await slack.push_event(sp.event_callback(sp.app_mention("anyone?")))


# ---------------------------------------------------------------- HTTP mode


def test_signed_request_passes_slack_sdk_verification() -> None:
    body = json.dumps(sp.event_callback(sp.app_mention("hi")))
    headers = FakeSlack.signed_request(body, SIGNING_SECRET)
    assert headers["Content-Type"] == "application/json"
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body.encode(), headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SIGNING_SECRET).is_valid_request(body + " ", headers)
    stale = FakeSlack.signed_request(body, SIGNING_SECRET, timestamp=int(time.time()) - 301)
    assert not SignatureVerifier(SIGNING_SECRET).is_valid_request(body, stale)
    form = sp.form_body(sp.slash_command("hi"))
    assert (
        FakeSlack.signed_request(form, SIGNING_SECRET)["Content-Type"] == "application/x-www-form-urlencoded"
    )


async def test_bolt_http_mode_accepts_signed_deliveries(slack: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SIGNING_SECRET
    )
    seen: list[tuple[str, str | None]] = []

    @app.event("message")
    async def on_message(event: dict[str, Any], request: Any) -> None:
        retry_num = request.headers.get("x-slack-retry-num")  # bolt keeps header values as lists
        seen.append((event["channel_type"], retry_num[0] if retry_num else None))

    @app.command("/moa")
    async def on_moa(ack: Any) -> None:
        await ack("working on it")

    runner = web.AppRunner(app.web_app())
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    try:
        dm = sp.event_callback(sp.dm_message("hi in a DM"))
        assert (await slack.deliver_http(url, dm, SIGNING_SECRET))[0] == 200
        assert (await slack.deliver_http(url, dm, SIGNING_SECRET, retry_num=1))[0] == 200
        assert (await slack.deliver_http(url, dm, "wrong-secret"))[0] == 401
        status, text = await slack.deliver_http(url, slack.slash_command_form("why?"), SIGNING_SECRET)
        assert (status, text) == (200, "working on it")  # bolt acks a plain string as text/plain
        await eventually(lambda: len(seen) == 2)
        assert seen == [("im", None), ("im", "1")]
        assert slack.message(sp.DM_CHANNEL_ID, dm["event"]["ts"])["text"] == "hi in a DM"
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- payload builders


def test_payload_builders_have_slack_shapes() -> None:
    mention = sp.app_mention("q")
    body = sp.event_callback(mention)
    assert set(body) >= {
        "token",
        "team_id",
        "api_app_id",
        "event",
        "type",
        "event_id",
        "event_time",
        "authorizations",
    }
    assert body["type"] == "event_callback" and body["authorizations"][0]["user_id"] == sp.BOT_USER_ID
    assert mention["text"] == f"<@{sp.BOT_USER_ID}> q" and "channel_type" not in mention
    assert mention["blocks"][0]["elements"][0]["elements"][0] == {"type": "user", "user_id": sp.BOT_USER_ID}
    reply = sp.thread_reply("more", thread_ts=mention["ts"])
    assert reply["thread_ts"] == mention["ts"] and reply["ts"] > mention["ts"] and reply["parent_user_id"]
    assert sp.dm_message("x")["channel_type"] == "im"
    assert sp.message("x", channel_type="group")["channel_type"] == "group"
    assert "subtype" not in sp.bot_message("x") and sp.bot_message("x")["bot_id"] == sp.OTHER_BOT_ID
    assert sp.bot_message("x", subtype="bot_message", user=None)["username"]
    changed = sp.message_changed(ts=reply["ts"], text="new", previous_text="old")
    assert changed["subtype"] == "message_changed" and changed["message"]["edited"]
    command = sp.slash_command("what?")
    assert {k: command[k] for k in ("command", "text", "user_id", "channel_id", "team_id")} == {
        "command": "/moa",
        "text": "what?",
        "user_id": sp.USER_ID,
        "channel_id": sp.CHANNEL_ID,
        "team_id": sp.TEAM_ID,
    }
    assert command["response_url"].startswith("https://hooks.slack.com/") and command["trigger_id"]
    assert "command=%2Fmoa" in sp.form_body(command)
