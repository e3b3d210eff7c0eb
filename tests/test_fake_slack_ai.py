"""The fake Slack serves the AI-app experience: streaming, the assistant pane, interactivity and modals,
through the unpatched slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.messages.chunk import PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import slack_payloads as sp
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually

CH = sp.CHANNEL_ID
RECIPIENT = {"recipient_user_id": sp.USER_ID, "recipient_team_id": sp.TEAM_ID}
SIGNING_SECRET = "ai-signing-secret"
MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Drafts"}, "blocks": []}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---------------------------------------------------------------- streaming


async def test_chat_stream_delivers_text_tasks_and_final_blocks(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    question = slack.add_message(CH, "what is MoA?")
    streamer = await client.chat_stream(channel=CH, thread_ts=question["ts"], buffer_size=8, **RECIPIENT)
    pieces = ["Mixture ", "of ", "Agents ", "asks ", "several ", "models."]
    await streamer.append(chunks=[PlanUpdateChunk(title="Asking 2 models")])
    for piece in pieces:
        await streamer.append(markdown_text=piece)
    await streamer.append(
        chunks=[
            TaskUpdateChunk(id="p/a", title="Draft from p/a", status="in_progress"),
            TaskUpdateChunk(id="p/b", title="Draft from p/b", status="error", output="timed out"),
        ]
    )
    await streamer.append(
        chunks=[TaskUpdateChunk(id="p/a", title="Draft from p/a", status="complete", details="done")]
    )
    await streamer.stop(blocks=[sp.feedback_buttons_block()])

    assert streamer.ts is not None
    stream = slack.stream(streamer.ts)
    assert stream.markdown == "".join(pieces)  # nothing lost, nothing repeated
    assert (stream.state, stream.mode, stream.thread_ts) == ("stopped", "chunks", question["ts"])
    assert stream.tasks == {
        "p/a": {"id": "p/a", "title": "Draft from p/a", "status": "complete", "details": "done"},
        "p/b": {
            "id": "p/b",
            "title": "Draft from p/b",
            "status": "error",
            "details": "",
            "output": "timed out",
        },
    }
    assert stream.plan_title == "Asking 2 models" and stream.final_blocks == [sp.feedback_buttons_block()]
    replies = (await client.conversations_replies(channel=CH, ts=question["ts"]))["messages"]
    shown = replies[-1]
    assert shown["ts"] == streamer.ts and shown["bot_id"] == sp.BOT_ID and shown["text"] == "".join(pieces)
    assert shown["blocks"] == [{"type": "markdown", "text": "".join(pieces)}, sp.feedback_buttons_block()]
    methods = [c.method for c in slack.calls if c.method.startswith("chat.")]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert set(methods[1:-1]) == {"chat.appendStream"}


async def test_stream_calls_follow_slacks_rules(slack: FakeSlack, client: AsyncWebClient) -> None:
    q = slack.add_message(CH, "q")
    human = slack.add_message(CH, "not the bot's", thread_ts=q["ts"])
    plain = await client.chat_postMessage(channel=CH, thread_ts=q["ts"], text="a plain reply")
    started = await client.chat_startStream(channel=CH, thread_ts=q["ts"], markdown_text="Hi", **RECIPIENT)
    ts = started["ts"]
    long_task = {"type": "task_update", "id": "t", "title": "x" * 257, "status": "pending"}
    cases: list[tuple[Awaitable[Any], str]] = [
        (client.api_call("chat.startStream", json={"channel": CH, **RECIPIENT}), "invalid_arguments"),
        (client.chat_startStream(channel=CH, thread_ts=q["ts"]), "missing_recipient_user_id"),
        (
            client.chat_startStream(channel=CH, thread_ts=q["ts"], recipient_user_id=sp.USER_ID),
            "missing_recipient_team_id",
        ),
        (
            client.chat_startStream(
                channel=CH, thread_ts=q["ts"], recipient_user_id="U0NOBODY", recipient_team_id=sp.TEAM_ID
            ),
            "user_not_found",
        ),
        (client.chat_startStream(channel=sp.NOT_MEMBER_CHANNEL_ID, thread_ts="1.1", **RECIPIENT), "not_in_channel"),
        (client.chat_appendStream(channel=CH, ts=ts), "markdown_text_or_chunks_required"),
        (
            client.chat_appendStream(channel=CH, ts=ts, markdown_text="a", chunks=[{"type": "plan_update", "title": "t"}]),
            "cannot_provide_both_markdown_text_and_chunks",
        ),
        (client.chat_appendStream(channel=CH, ts=ts, chunks=[{"type": "plan_update", "title": "t"}]), "streaming_mode_mismatch"),
        (client.chat_appendStream(channel=CH, ts=ts, markdown_text="x" * 12001), "msg_too_long"),
        (client.chat_appendStream(channel=CH, ts=human["ts"], markdown_text="x"), "message_not_owned_by_app"),
        (client.chat_appendStream(channel=CH, ts=plain["ts"], markdown_text="x"), "message_not_in_streaming_state"),
        (client.chat_appendStream(channel=CH, ts="1.000001", markdown_text="x"), "message_not_found"),
    ]  # fmt: skip
    for call, error in cases:
        assert (await api_error(call)).response["error"] == error, error
    chunked = await client.chat_startStream(channel=CH, thread_ts=q["ts"], **RECIPIENT)
    for chunk, error in [
        (long_task, "invalid_chunks"),
        ({"type": "task_update", "id": "t", "title": "t", "status": "done"}, "invalid_chunks"),
        ({"type": "sparkles"}, "invalid_chunks"),
        ({"type": "markdown_text", "text": "x" * 12001}, "msg_too_long"),
    ]:
        exc = await api_error(client.chat_appendStream(channel=CH, ts=chunked["ts"], chunks=[chunk]))
        assert exc.response["error"] == error
    assert slack.stream(chunked["ts"]).chunks == []  # refused calls left nothing behind
    await client.chat_appendStream(channel=CH, ts=ts, markdown_text=" there")
    await client.chat_stopStream(channel=CH, ts=ts, markdown_text=".")
    exc = await api_error(client.chat_appendStream(channel=CH, ts=ts, markdown_text="late"))
    assert exc.response["error"] == "message_not_in_streaming_state"
    assert slack.stream(ts).markdown == "Hi there."
    dm = await client.chat_startStream(
        channel=sp.DM_CHANNEL_ID, thread_ts=q["ts"], markdown_text="no recipient"
    )
    assert slack.stream(dm["ts"]).recipient_user_id is None  # a DM needs none


async def test_a_stream_expires_and_chat_update_takes_over() -> None:
    async with FakeSlack(stream_ttl_s=0.2) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        q = slack.add_message(CH, "q")
        started = await client.chat_startStream(
            channel=CH, thread_ts=q["ts"], markdown_text="partial", **RECIPIENT
        )
        await asyncio.sleep(0.25)
        for call in (
            client.chat_appendStream(channel=CH, ts=started["ts"], markdown_text=" more"),
            client.chat_stopStream(channel=CH, ts=started["ts"]),
        ):
            assert (await api_error(call)).response["error"] == "message_not_in_streaming_state"
        assert slack.stream(started["ts"]).state == "expired"
        assert slack.message(CH, started["ts"])["markdown_text"] == "partial"  # what was streamed stays
        await client.chat_update(channel=CH, ts=started["ts"], markdown_text="partial more, via chat.update")
        assert slack.message(CH, started["ts"])["markdown_text"] == "partial more, via chat.update"


async def test_streaming_can_be_refused_per_channel_or_workspace(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    q = slack.add_message(CH, "q")
    slack.refuse_streaming(CH)
    exc = await api_error(client.chat_startStream(channel=CH, thread_ts=q["ts"], **RECIPIENT))
    assert exc.response["error"] == "channel_type_not_supported"
    await client.chat_startStream(channel=sp.DM_CHANNEL_ID, thread_ts=q["ts"])  # elsewhere it works
    slack.refuse_streaming(error="restricted_action")
    exc = await api_error(client.chat_startStream(channel=sp.DM_CHANNEL_ID, thread_ts=q["ts"]))
    assert exc.response["error"] == "restricted_action"
    slack.allow_streaming()
    slack.allow_streaming(CH)
    await client.chat_startStream(channel=CH, thread_ts=q["ts"], **RECIPIENT)
    with pytest.raises(ValueError, match="documents no refusal"):
        slack.refuse_streaming(error="nope")


async def test_append_stream_is_tier_4_and_a_retried_append_lands_once() -> None:
    async with FakeSlack(tier4_per_minute=2, window_s=0.5) as slack:
        client = AsyncWebClient(
            token=slack.bot_token,
            base_url=slack.api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        q = slack.add_message(CH, "q")
        started = await client.chat_startStream(channel=CH, thread_ts=q["ts"], markdown_text="0", **RECIPIENT)
        for piece in "123":
            await client.chat_appendStream(channel=CH, ts=started["ts"], markdown_text=piece)
        assert [c.status for c in slack.calls_to("chat.appendStream")] == [200, 200, 429, 200]
        assert slack.calls_to("chat.appendStream")[2].retry_after == 1
        assert slack.stream(started["ts"]).markdown == "0123"


async def test_start_and_stop_stream_are_tier_2() -> None:
    async with FakeSlack(window_s=60.0) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        q = slack.add_message(CH, "q")
        for _ in range(20):
            await client.chat_startStream(channel=sp.DM_CHANNEL_ID, thread_ts=q["ts"])
        exc = await api_error(client.chat_startStream(channel=sp.DM_CHANNEL_ID, thread_ts=q["ts"]))
        assert exc.response.status_code == 429 and int(exc.response.headers["Retry-After"]) > 1
        assert len(slack.streams) == 20


async def test_a_user_stop_and_the_total_cap_end_a_stream() -> None:
    async with FakeSlack(stream_max_total_chars=10) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        q = slack.add_message(CH, "q")
        first = await client.chat_startStream(
            channel=CH, thread_ts=q["ts"], markdown_text="0123456789", **RECIPIENT
        )
        exc = await api_error(client.chat_appendStream(channel=CH, ts=first["ts"], markdown_text="!"))
        assert exc.response["error"] == "msg_too_long"
        second = await client.chat_startStream(channel=CH, thread_ts=q["ts"], markdown_text="a", **RECIPIENT)
        slack.user_stops_stream(second["ts"])
        exc = await api_error(client.chat_appendStream(channel=CH, ts=second["ts"], markdown_text="b"))
        assert exc.response["error"] == "stopped_by_user"


async def test_stop_blocks_and_metadata_are_validated(slack: FakeSlack, client: AsyncWebClient) -> None:
    q = slack.add_message(CH, "q")
    started = await client.chat_startStream(
        channel=CH, thread_ts=q["ts"], markdown_text="answer", **RECIPIENT
    )
    too_many = {"type": "context_actions", "elements": [sp.feedback_buttons_block()["elements"][0]] * 6}
    long_value = sp.feedback_buttons_block(positive_value="x" * 2001)
    for blocks in ([too_many], [long_value]):
        exc = await api_error(client.chat_stopStream(channel=CH, ts=started["ts"], blocks=blocks))
        assert exc.response["error"] == "invalid_blocks" and exc.response["response_metadata"]["messages"]
    exc = await api_error(client.chat_stopStream(channel=CH, ts=started["ts"], metadata={"event_type": "x"}))
    assert exc.response["error"] == "invalid_metadata_format"
    metadata = {"event_type": "moa_answer", "event_payload": {"run": "r1"}}
    await client.chat_stopStream(channel=CH, ts=started["ts"], metadata=metadata)
    replies = await client.conversations_replies(channel=CH, ts=q["ts"], include_all_metadata=True)
    assert replies["messages"][-1]["metadata"] == metadata


# ---------------------------------------------------------------- the assistant pane


async def test_assistant_thread_methods_and_their_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    started = slack.start_assistant_thread(context_channel=CH)["event"]
    thread = started["assistant_thread"]
    channel, ts = thread["channel_id"], thread["thread_ts"]
    assert (started["type"], thread["user_id"], thread["context"]) == (
        "assistant_thread_started",
        sp.USER_ID,
        {"channel_id": CH, "team_id": sp.TEAM_ID, "enterprise_id": None},
    )
    await client.assistant_threads_setStatus(
        channel_id=channel,
        thread_ts=ts,
        status="is drafting...",
        loading_messages=["Asking p/a", "Asking p/b"],
    )
    assert slack.thread_status(channel, ts) == "is drafting..."
    await client.chat_postMessage(channel=channel, thread_ts=ts, text="the answer")
    assert slack.thread_status(channel, ts) == ""  # a reply clears the status, as in Slack
    await client.assistant_threads_setTitle(channel_id=channel, thread_ts=ts, title="About MoA")
    prompts = [{"title": f"Prompt {i}", "message": f"Ask {i}"} for i in range(4)]
    await client.assistant_threads_setSuggestedPrompts(
        channel_id=channel, thread_ts=ts, prompts=prompts, title="Try"
    )
    assert slack.suggested_prompts[(channel, ts)] == {"title": "Try", "prompts": prompts}
    root = (await client.conversations_history(channel=channel))["messages"][-1]
    assert (root["subtype"], root["assistant_app_thread"]["title"]) == ("assistant_app_thread", "About MoA")
    cases: list[tuple[Awaitable[Any], str]] = [
        (client.assistant_threads_setSuggestedPrompts(channel_id=channel, thread_ts=ts, prompts=prompts * 2), "invalid_arguments"),
        (client.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=[{"title": "t"}]), "invalid_arguments"),
        (client.assistant_threads_setStatus(channel_id=channel, thread_ts="1.000001", status="x"), "invalid_thread_ts"),
        (client.assistant_threads_setStatus(channel_id="D0NOSUCH", thread_ts=ts, status="x"), "channel_not_found"),
        (
            client.assistant_threads_setStatus(channel_id=channel, thread_ts=ts, status="x", loading_messages=["m"] * 11),
            "invalid_arguments",
        ),
        (client.api_call("assistant.threads.setTitle", json={"channel_id": channel, "title": "t"}), "missing_thread_ts"),
    ]  # fmt: skip
    for call, error in cases:
        assert (await api_error(call)).response["error"] == error, error
    slack.agent_app = False
    exc = await api_error(client.assistant_threads_setSuggestedPrompts(channel_id=channel, prompts=prompts))
    assert exc.response["error"] == "not_agent_app"


async def test_thread_status_fades_after_its_timeout() -> None:
    async with FakeSlack(status_ttl_s=0.1) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        q = slack.add_message(CH, "q")
        await client.assistant_threads_setStatus(channel_id=CH, thread_ts=q["ts"], status="is thinking...")
        assert slack.thread_status(CH, q["ts"]) == "is thinking..."
        await asyncio.sleep(0.15)
        assert slack.thread_status(CH, q["ts"]) == ""
        assert slack.statuses[0]["status"] == "is thinking..."


async def test_bolts_assistant_middleware_runs_on_the_fakes_events(slack: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret="unused"
    )
    assistant = AsyncAssistant()
    contexts: list[dict[str, Any]] = []

    @assistant.thread_started
    async def greet(say: Any, set_suggested_prompts: Any, get_thread_context: Any) -> None:
        await say("Hi! Ask me anything.")
        await set_suggested_prompts(prompts=[{"title": "What is MoA?", "message": "What is MoA?"}])

    @assistant.user_message
    async def answer(payload: dict[str, Any], say: Any, set_status: Any, set_title: Any) -> None:
        await set_status("is drafting...")
        await set_title(payload["text"])
        await say(f"answer to: {payload['text']}")

    @assistant.thread_context_changed
    async def moved(save_thread_context: Any, payload: dict[str, Any]) -> None:
        contexts.append(payload["assistant_thread"]["context"])
        await save_thread_context(payload["assistant_thread"]["context"])

    app.use(assistant)
    handler = AsyncSocketModeHandler(app, slack.app_token)
    try:
        await handler.connect_async()
        started = slack.start_assistant_thread()
        channel, ts = (
            started["event"]["assistant_thread"]["channel_id"],
            started["event"]["assistant_thread"]["thread_ts"],
        )
        await asyncio.wait_for(slack.push_event(started), 3)
        await eventually(lambda: (channel, ts) in slack.suggested_prompts)
        await asyncio.wait_for(
            slack.push_event(sp.event_callback(sp.dm_message("What is MoA?", thread_ts=ts))), 3
        )
        await eventually(lambda: len(slack.bot_messages(channel, thread_ts=ts)) == 2)
        changed = slack.change_assistant_context(channel, ts, context_channel=sp.OTHER_CHANNEL_ID)
        await asyncio.wait_for(slack.push_event(changed), 3)
        await eventually(lambda: slack.calls_to("chat.update", ok=True))
    finally:
        await handler.close_async()
    greeting, reply = slack.bot_messages(channel, thread_ts=ts)
    assert (greeting["text"], reply["text"]) == ("Hi! Ask me anything.", "answer to: What is MoA?")
    assert slack.statuses[0]["status"] == "is drafting..." and slack.titles[(channel, ts)] == "What is MoA?"
    assert contexts[0]["channel_id"] == sp.OTHER_CHANNEL_ID
    # bolt keeps the context as metadata on its first reply, read back through conversations.replies.
    assert greeting["metadata"] == {"event_type": "assistant_thread_context", "event_payload": contexts[0]}


# ---------------------------------------------------------------- interactivity and modals


def feedback_app(slack: FakeSlack, clicks: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SIGNING_SECRET
    )

    @app.action("feedback")
    async def on_feedback(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        clicks.append(body)
        await respond(text=f"thanks: {body['actions'][0]['value']}", replace_original=False)

    @app.action("show_drafts")
    async def on_drafts(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        clicks.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    return app


ANSWER_BLOCKS = [
    {"type": "markdown", "text": "The answer."},
    {
        "type": "actions",
        "block_id": "more",
        "elements": [
            {
                "type": "button",
                "action_id": "show_drafts",
                "text": {"type": "plain_text", "text": "Show drafts"},
                "value": "run-1",
            }
        ],
    },
    sp.feedback_buttons_block(block_id="rate", positive_value="good:run-1", negative_value="bad:run-1"),
]


async def test_block_actions_reach_bolt_over_socket_mode(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CH, text="The answer.", blocks=ANSWER_BLOCKS)
    clicks: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(feedback_app(slack, clicks), slack.app_token)
    try:
        await handler.connect_async()
        rate = slack.block_action(CH, posted["ts"], "feedback", value="bad:run-1", user=sp.OTHER_USER_ID)
        drafts = slack.block_action(CH, posted["ts"], "show_drafts")
        for payload in (rate, drafts):
            ack = await asyncio.wait_for(slack.push_interactive(payload), 3)
            assert ack["envelope_id"] == slack.envelopes[-1].envelope_id
        await eventually(lambda: len(slack.views) == 1 and slack.response_url_posts)
    finally:
        await handler.close_async()
    assert [e.type for e in slack.envelopes] == ["interactive", "interactive"]
    feedback, button = (c["actions"][0] for c in clicks)
    assert {k: feedback[k] for k in ("type", "action_id", "block_id", "value")} == {
        "type": "feedback_buttons",
        "action_id": "feedback",
        "block_id": "rate",
        "value": "bad:run-1",
    }
    assert {k: button[k] for k in ("type", "action_id", "block_id", "value")} == {
        "type": "button",
        "action_id": "show_drafts",
        "block_id": "more",
        "value": "run-1",
    }
    assert clicks[0]["user"]["id"] == sp.OTHER_USER_ID and clicks[0]["message"]["ts"] == posted["ts"]
    assert clicks[0]["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": CH,
        "is_ephemeral": False,
    }
    assert (
        slack.ephemerals[-1]["user"] == sp.OTHER_USER_ID
        and slack.ephemerals[-1]["text"] == "thanks: bad:run-1"
    )
    assert slack.views[0]["view"]["title"]["text"] == "Drafts"


async def test_block_actions_reach_bolt_over_http_signed_and_form_encoded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CH, text="The answer.", blocks=ANSWER_BLOCKS)
    clicks: list[dict[str, Any]] = []
    runner = web.AppRunner(feedback_app(slack, clicks).web_app())
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    try:
        payload = slack.block_action(CH, posted["ts"], "feedback", value="good:run-1")
        assert (await slack.deliver_http(url, payload, SIGNING_SECRET))[0] == 200
        assert (await slack.deliver_http(url, payload, "wrong-secret"))[0] == 401
        await eventually(lambda: slack.ephemerals)
    finally:
        await runner.cleanup()
    assert clicks[0]["actions"][0]["value"] == "good:run-1" and clicks[0]["type"] == "block_actions"


async def test_a_response_url_can_replace_or_delete_the_clicked_message(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CH, text="Stop?", blocks=ANSWER_BLOCKS)
    payload = slack.block_action(CH, posted["ts"], "show_drafts")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            payload["response_url"], json={"replace_original": True, "text": "Stopped."}
        ) as resp:
            assert resp.status == 200
        assert slack.message(CH, posted["ts"])["text"] == "Stopped."
        async with http.post(payload["response_url"], json={"delete_original": "true"}) as resp:
            assert resp.status == 200
    assert slack.message(CH, posted["ts"])["deleted"] is True


async def test_ephemeral_messages_check_membership_and_can_be_clicked(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    exc = await api_error(
        client.chat_postEphemeral(channel=sp.PRIVATE_CHANNEL_ID, user=sp.OTHER_USER_ID, text="x")
    )
    assert exc.response["error"] == "user_not_in_channel"
    sent = await client.chat_postEphemeral(
        channel=CH, user=sp.USER_ID, text="drafts", blocks=ANSWER_BLOCKS[1:2]
    )
    payload = slack.block_action(CH, sent["message_ts"], "show_drafts", ephemeral=True)
    assert "message" not in payload and payload["container"]["is_ephemeral"] is True
    with pytest.raises(ValueError, match="no interactive element"):
        slack.block_action(CH, sent["message_ts"], "nope", ephemeral=True)


async def test_views_open_takes_only_fresh_unused_triggers() -> None:
    async with FakeSlack(trigger_ttl_s=0.1, connect_wait_s=0.01) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel=CH, text="x", blocks=ANSWER_BLOCKS)
        trigger = slack.block_action(CH, posted["ts"], "show_drafts")["trigger_id"]
        bad_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
        exc = await api_error(client.views_open(trigger_id=trigger, view=bad_title))
        assert exc.response["error"] == "invalid_arguments"
        opened = await client.views_open(trigger_id=trigger, view=MODAL)
        assert opened["view"]["id"].startswith("V") and opened["view"]["type"] == "modal"
        exc = await api_error(client.views_open(trigger_id=trigger, view=MODAL))
        assert exc.response["error"] == "exchanged_trigger_id"
        late = slack.block_action(CH, posted["ts"], "show_drafts")["trigger_id"]
        await asyncio.sleep(0.15)
        assert (await api_error(client.views_open(trigger_id=late, view=MODAL))).response[
            "error"
        ] == "expired_trigger_id"
        for unknown in ("12345.98765.abcd2358fdea", "not-a-trigger"):
            exc = await api_error(client.views_open(trigger_id=unknown, view=MODAL))
            assert exc.response["error"] == "invalid_trigger_id"
        command = slack.push_slash_command(sp.slash_command("x"))  # a command's trigger works too
        with pytest.raises(ConnectionError):
            await command  # no app is connected: it does not matter here
        await client.views_open(trigger_id=command.payload["trigger_id"], view=MODAL)
