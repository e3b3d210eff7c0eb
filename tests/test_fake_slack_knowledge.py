"""The fake Slack serves what team knowledge reads: history, threads, permalinks, files, reactions, and the
events that change them, through the unpatched slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import slack_payloads as sp
from tests.fakes.documents import pdf_with_text, png_image
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually

KNOW = sp.KNOWLEDGE_CHANNEL_ID
DAY = 86400.0
SIGNING_SECRET = "knowledge-signing-secret"


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


# ---------------------------------------------------------------- history and threads


async def test_history_pages_newest_first_through_cursors(slack: FakeSlack, client: AsyncWebClient) -> None:
    seeded = slack.seed_history(KNOW, 25, days=30, threads_every=5, replies=2)
    # slack_sdk's pagination hands out one response object, refilled per page: keep each page's data.
    pages = [dict(page.data) async for page in await client.conversations_history(channel=KNOW, limit=10)]
    assert [len(p["messages"]) for p in pages] == [10, 10, 5]
    assert [p["has_more"] for p in pages] == [True, True, False]
    shown = [m for p in pages for m in p["messages"]]
    assert [m["ts"] for m in shown] == [m["ts"] for m in reversed(seeded)]  # top level only, newest first
    parent = next(m for m in shown if m["ts"] == seeded[0]["ts"])
    replies = slack.replies_of(KNOW, seeded[0]["ts"])
    assert (parent["reply_count"], parent["thread_ts"], parent["latest_reply"]) == (
        2,
        seeded[0]["ts"],
        replies[-1]["ts"],
    )
    assert "reply_count" not in next(m for m in shown if m["ts"] == seeded[1]["ts"])


async def test_history_window_takes_oldest_latest_and_inclusive(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    now = time.time()
    seeded = slack.seed_history(KNOW, 40, days=400, threads_every=0, now=now)
    stamps = [float(m["ts"]) for m in seeded]
    assert now - 400 * DAY - 0.001 < min(stamps) < now - 390 * DAY and max(stamps) < now
    year = await client.conversations_history(channel=KNOW, oldest=str(now - 365 * DAY), limit=999)
    assert len(year["messages"]) == sum(1 for s in stamps if s > now - 365 * DAY) < 40
    edge = seeded[10]["ts"]
    exclusive = await client.conversations_history(channel=KNOW, oldest=edge, latest=seeded[12]["ts"])
    inclusive = await client.conversations_history(
        channel=KNOW, oldest=edge, latest=seeded[12]["ts"], inclusive=True
    )
    assert [m["ts"] for m in exclusive["messages"]] == [seeded[11]["ts"]]
    assert [m["ts"] for m in inclusive["messages"]] == [seeded[12]["ts"], seeded[11]["ts"], edge]


async def test_replies_come_oldest_first_parent_always_first(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = slack.add_message(KNOW, "How do we deploy?")
    replies = [slack.add_message(KNOW, f"step {i}", thread_ts=parent["ts"]) for i in range(5)]
    pages = [
        dict(page.data)
        async for page in await client.conversations_replies(channel=KNOW, ts=parent["ts"], limit=4)
    ]
    texts = [m["text"] for p in pages for m in p["messages"]]
    assert texts == ["How do we deploy?", "step 0", "step 1", "step 2", "step 3", "step 4"]
    later = await client.conversations_replies(channel=KNOW, ts=replies[2]["ts"], oldest=replies[2]["ts"])
    assert [m["text"] for m in later["messages"]] == ["How do we deploy?", "step 3", "step 4"]
    assert all(m["thread_ts"] == parent["ts"] for m in later["messages"])


async def test_edits_show_and_deletions_vanish_or_leave_a_tombstone(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    plain = slack.add_message(KNOW, "typo here")
    doomed = slack.add_message(KNOW, "wrong channel, sorry")
    parent = slack.add_message(KNOW, "Thread about backups")
    reply = slack.add_message(KNOW, "nightly at 02:00", thread_ts=parent["ts"], user=sp.OTHER_USER_ID)
    edited = slack.edit_message(KNOW, plain["ts"], "no typo here")
    deleted = slack.delete_message(KNOW, doomed["ts"])
    stoned = slack.delete_message(KNOW, parent["ts"])

    assert edited["event"]["message"]["edited"]["user"] == sp.USER_ID
    assert (edited["event"]["previous_message"]["text"], edited["event"]["message"]["text"]) == (
        "typo here",
        "no typo here",
    )
    assert (deleted["event"]["subtype"], deleted["event"]["deleted_ts"]) == ("message_deleted", doomed["ts"])
    assert deleted["event"]["previous_message"]["text"] == "wrong channel, sorry"
    tomb = stoned["event"]["message"]
    assert stoned["event"]["subtype"] == "message_changed" and stoned["event"]["hidden"] is True
    assert (tomb["subtype"], tomb["user"], tomb["hidden"], tomb["reply_count"]) == (
        "tombstone",
        "USLACKBOT",
        True,
        1,
    )

    history = (await client.conversations_history(channel=KNOW))["messages"]
    by_ts = {m["ts"]: m for m in history}
    assert doomed["ts"] not in by_ts
    assert by_ts[plain["ts"]]["text"] == "no typo here" and "edited" in by_ts[plain["ts"]]
    assert by_ts[parent["ts"]]["subtype"] == "tombstone"
    thread = (await client.conversations_replies(channel=KNOW, ts=parent["ts"]))["messages"]
    assert [m.get("subtype") for m in thread] == ["tombstone", None] and thread[1][
        "text"
    ] == "nightly at 02:00"

    slack.delete_message(KNOW, reply["ts"])  # the last reply goes: so does the tombstone
    after = (await client.conversations_history(channel=KNOW))["messages"]
    assert parent["ts"] not in {m["ts"] for m in after}
    exc = await api_error(client.conversations_replies(channel=KNOW, ts=parent["ts"]))
    assert exc.response["error"] == "thread_not_found"


async def test_reading_channels_the_bot_cannot_read_fails(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_message(sp.NOT_MEMBER_CHANNEL_ID, "not for bots")
    cases = [
        (client.conversations_history(channel=sp.NOT_MEMBER_CHANNEL_ID), "not_in_channel"),
        (client.conversations_history(channel="C0NOSUCH"), "channel_not_found"),
        (client.conversations_replies(channel=sp.NOT_MEMBER_CHANNEL_ID, ts="1.000001"), "not_in_channel"),
        (client.conversations_history(channel=KNOW, oldest="yesterday"), "invalid_ts_oldest"),
        (client.conversations_history(channel=KNOW, latest="-1"), "invalid_ts_latest"),
        (client.conversations_history(channel=KNOW, cursor="bm9wZQ=="), "invalid_cursor"),
    ]
    slack.add_channel("G0HIDDEN", "hidden", is_private=True, is_member=False)
    cases.append((client.conversations_history(channel="G0HIDDEN"), "channel_not_found"))
    for call, error in cases:
        assert (await api_error(call)).response["error"] == error
    slack.set_member(sp.NOT_MEMBER_CHANNEL_ID, True)  # the bot is invited: now it reads
    joined = await client.conversations_history(channel=sp.NOT_MEMBER_CHANNEL_ID)
    assert [m["text"] for m in joined["messages"]] == ["not for bots"]


async def test_history_and_replies_are_tier_3_per_method() -> None:
    async with FakeSlack(tier3_per_minute=2, window_s=0.5) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        parent = slack.add_message(KNOW, "q")
        for _ in range(2):
            await client.conversations_history(channel=KNOW)
        exc = await api_error(client.conversations_history(channel=KNOW))
        assert (exc.response.status_code, exc.response["error"]) == (429, "ratelimited")
        assert exc.response.headers["Retry-After"] == "1"
        await client.conversations_replies(channel=KNOW, ts=parent["ts"])  # its own budget
        patient = AsyncWebClient(
            token=slack.bot_token,
            base_url=slack.api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        assert (await patient.conversations_history(channel=KNOW))["messages"][0]["text"] == "q"
        assert slack.rate_limited["conversations.history"] == 2


async def test_private_channels_and_members(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("C0PRIVNEW", "private-new", is_private=True, members=[sp.USER_ID, sp.OTHER_USER_ID])
    for channel_id in (sp.PRIVATE_CHANNEL_ID, "C0PRIVNEW"):
        info = (await client.conversations_info(channel=channel_id))["channel"]
        assert (info["is_private"], info["is_channel"], info["is_group"]) == (True, False, True)
    assert (await client.conversations_info(channel=KNOW))["channel"]["is_private"] is False
    members = await client.conversations_members(channel="C0PRIVNEW")
    assert members["members"] == [sp.USER_ID, sp.OTHER_USER_ID, sp.BOT_USER_ID]
    assert (await client.conversations_members(channel=sp.PRIVATE_CHANNEL_ID))["members"] == [
        sp.USER_ID,
        sp.BOT_USER_ID,
    ]
    slack.set_member("C0PRIVNEW", False)  # the bot leaves: the channel is gone for it
    exc = await api_error(client.conversations_info(channel="C0PRIVNEW"))
    assert exc.response["error"] == "channel_not_found"


async def test_permalinks_have_slacks_format(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_message(KNOW, "root", ts="1700000000.000100")
    reply = slack.add_message(KNOW, "reply", ts="1700000001.000200", thread_ts=parent["ts"])
    top = await client.chat_getPermalink(channel=KNOW, message_ts=parent["ts"])
    assert top["permalink"] == f"https://{sp.TEAM_DOMAIN}.slack.com/archives/{KNOW}/p1700000000000100"
    threaded = await client.chat_getPermalink(channel=KNOW, message_ts=reply["ts"])
    assert threaded["permalink"] == (
        f"https://{sp.TEAM_DOMAIN}.slack.com/archives/{KNOW}/p1700000001000200"
        f"?thread_ts=1700000000.000100&cid={KNOW}"
    )
    assert slack.calls_to("chat.getPermalink")[0].params == {"channel": KNOW, "message_ts": parent["ts"]}
    for call, error in [
        (client.chat_getPermalink(channel=KNOW, message_ts="1.000001"), "message_not_found"),
        (client.chat_getPermalink(channel="C0NOSUCH", message_ts=parent["ts"]), "channel_not_found"),
    ]:
        assert (await api_error(call)).response["error"] == error


# ---------------------------------------------------------------- files


FILES: dict[str, bytes] = {
    "notes.txt": b"The VPN password rotates monthly.",
    "runbook.md": b"# Runbook\n\n1. Page the on-call.\n",
    "costs.csv": b"month,eur\njan,120\nfeb,95\n",
    "config.json": b'{"region": "eu-west-1"}',
    "faq.html": b"<html><body><h1>FAQ</h1><p>Ask in #help.</p></body></html>",
    "handbook.pdf": pdf_with_text(["Deploys run at 10:00 UTC.", "Rollbacks need two approvals."]),
    "diagram.png": png_image(4, 3),
}


async def test_shared_files_have_slacks_fields_and_download_with_the_bot_token(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    bodies = [slack.share_file(KNOW, name, content, "see attached") for name, content in FILES.items()]
    event = bodies[0]["event"]
    assert (event["subtype"], event["files"][0]["name"], event["text"]) == (
        "file_share",
        "notes.txt",
        "see attached",
    )
    auth = {"Authorization": f"Bearer {slack.bot_token}"}
    async with aiohttp.ClientSession() as http:
        for body, (name, content) in zip(bodies, FILES.items(), strict=True):
            file_id = body["event"]["files"][0]["id"]
            info = (await client.files_info(file=file_id))["file"]
            assert {"id", "name", "title", "mimetype", "filetype", "size", "url_private", "url_private_download",
                    "permalink", "user", "created"} <= set(info)  # fmt: skip
            assert (info["name"], info["size"], info["user"]) == (name, len(content), sp.USER_ID)
            assert info["permalink"].startswith(
                f"https://{sp.TEAM_DOMAIN}.slack.com/files/{sp.USER_ID}/{file_id}/"
            )
            for url in (info["url_private"], info["url_private_download"]):
                async with http.get(url, headers=auth) as resp:
                    assert resp.status == 200 and await resp.read() == content
                    assert resp.headers["Content-Type"].split(";")[0] == info["mimetype"]
                    assert int(resp.headers["Content-Length"]) == info["size"]
    kinds = {f["name"]: (f["mimetype"], f["filetype"]) for f in (slack.file_object(i) for i in slack.files)}
    assert kinds["handbook.pdf"] == ("application/pdf", "pdf") and kinds["diagram.png"] == (
        "image/png",
        "png",
    )
    assert kinds["runbook.md"] == ("text/markdown", "markdown") and kinds["costs.csv"] == ("text/csv", "csv")
    history = (await client.conversations_history(channel=KNOW, limit=1))["messages"][0]
    assert history["files"][0]["name"] == "diagram.png" and history["upload"] is False


async def test_downloads_without_the_token_land_on_the_sign_in_page(slack: FakeSlack) -> None:
    body = slack.share_file(KNOW, "secret.txt", b"the real content")
    url = body["event"]["files"][0]["url_private_download"]
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"].startswith("/?redir=")
        for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}, {"Authorization": slack.bot_token}):
            async with http.get(url, headers=headers) as resp:  # followed, as most clients do
                assert resp.status == 200 and resp.content_type == "text/html"
                assert b"the real content" not in await resp.read()
    assert [d["status"] for d in slack.downloads] == [302, 302, 302, 302]
    assert not any(d["authorized"] for d in slack.downloads)


async def test_files_the_bot_cannot_see_are_not_found(slack: FakeSlack, client: AsyncWebClient) -> None:
    unshared = slack.add_file("draft.txt", "not shared yet")
    slack.add_channel("G0HIDDEN", "hidden", is_private=True, is_member=False)
    hidden = slack.share_file("G0HIDDEN", "plans.txt", "private plans")["event"]["files"][0]
    for file_id in (unshared["id"], hidden["id"], "F0NOSUCH"):
        assert (await api_error(client.files_info(file=file_id))).response["error"] == "file_not_found"
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {slack.bot_token}"}
        async with http.get(hidden["url_private"], headers=auth, allow_redirects=False) as resp:
            assert resp.status == 302


def test_the_generated_pdf_is_one_a_reader_extracts() -> None:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(FILES["handbook.pdf"]), strict=True)
    text = reader.pages[0].extract_text()
    assert "Deploys run at 10:00 UTC." in text and "Rollbacks need two approvals." in text


# ---------------------------------------------------------------- reactions


async def test_reactions_add_and_remove_with_slacks_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    question = slack.add_message(KNOW, "who owns billing?")
    await client.reactions_add(channel=KNOW, timestamp=question["ts"], name="shrug")
    shown = (await client.conversations_history(channel=KNOW))["messages"][0]
    assert shown["reactions"] == [{"name": "shrug", "users": [sp.BOT_USER_ID], "count": 1}]
    cases = [
        (client.reactions_add(channel=KNOW, timestamp=question["ts"], name="shrug"), "already_reacted"),
        (client.reactions_add(channel=KNOW, timestamp=question["ts"], name="not-an-emoji"), "invalid_name"),
        (client.reactions_add(channel=KNOW, timestamp="1.000001", name="eyes"), "message_not_found"),
        (client.reactions_add(channel=KNOW, timestamp="soon", name="eyes"), "bad_timestamp"),
        (
            client.reactions_add(channel=sp.NOT_MEMBER_CHANNEL_ID, timestamp="1.1", name="eyes"),
            "not_in_channel",
        ),
        (client.reactions_remove(channel=KNOW, timestamp=question["ts"], name="eyes"), "no_reaction"),
    ]
    for call, error in cases:
        assert (await api_error(call)).response["error"] == error
    await client.reactions_remove(channel=KNOW, timestamp=question["ts"], name="shrug")
    assert "reactions" not in (await client.conversations_history(channel=KNOW))["messages"][0]
    slack.emoji.add("moa-approved")  # a custom emoji of the workspace
    await client.reactions_add(channel=KNOW, timestamp=question["ts"], name="moa-approved")


async def test_reactions_add_is_tier_3() -> None:
    async with FakeSlack(tier3_per_minute=1, window_s=0.5) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        question = slack.add_message(KNOW, "q")
        await client.reactions_add(channel=KNOW, timestamp=question["ts"], name="eyes")
        exc = await api_error(client.reactions_add(channel=KNOW, timestamp=question["ts"], name="shrug"))
        assert exc.response.status_code == 429 and exc.response.headers["Retry-After"] == "1"
        assert list(slack.message(KNOW, question["ts"])["reactions"]) == [
            "eyes"
        ]  # the refused call did nothing


# ---------------------------------------------------------------- events, as bolt receives them


def knowledge_app(slack: FakeSlack, seen: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SIGNING_SECRET
    )

    async def record(event: dict[str, Any]) -> None:
        seen.append(event)

    app.event("reaction_added")(record)
    app.event("reaction_removed")(record)
    app.event("message")(record)
    return app


async def test_knowledge_events_reach_a_bolt_app_over_socket_mode(slack: FakeSlack) -> None:
    seen: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(knowledge_app(slack, seen), slack.app_token)
    answer = slack.add_bot_message(KNOW, "Billing is owned by Bob.")
    note = slack.add_message(KNOW, "old text")
    parent = slack.add_message(KNOW, "parent")
    slack.add_message(KNOW, "reply", thread_ts=parent["ts"])
    try:
        await handler.connect_async()
        bodies = [
            slack.react(KNOW, answer["ts"], "white_check_mark"),
            slack.unreact(KNOW, answer["ts"], "white_check_mark"),
            slack.edit_message(KNOW, note["ts"], "new text"),
            slack.delete_message(KNOW, note["ts"]),
            slack.delete_message(KNOW, parent["ts"]),
            slack.share_file(KNOW, "a.md", "# A"),
        ]
        for body in bodies:
            await asyncio.wait_for(slack.push_event(body), 3)
        await eventually(lambda: len(seen) == len(bodies))
    finally:
        await handler.close_async()
    added, removed, changed, deleted, tombstoned, shared = seen
    assert added == {
        "type": "reaction_added",
        "user": sp.USER_ID,
        "reaction": "white_check_mark",
        "item": {"type": "message", "channel": KNOW, "ts": answer["ts"]},
        "item_user": sp.BOT_USER_ID,
        "event_ts": added["event_ts"],
    }
    assert removed["type"] == "reaction_removed" and removed["item"] == added["item"]
    assert (changed["subtype"], changed["message"]["ts"], changed["message"]["text"]) == (
        "message_changed",
        note["ts"],
        "new text",
    )
    assert (deleted["subtype"], deleted["deleted_ts"]) == ("message_deleted", note["ts"])
    assert tombstoned["message"]["subtype"] == "tombstone" and tombstoned["hidden"] is True
    assert shared["subtype"] == "file_share" and shared["files"][0]["name"] == "a.md"


async def test_knowledge_events_reach_a_bolt_app_over_http(slack: FakeSlack) -> None:
    seen: list[dict[str, Any]] = []
    runner = web.AppRunner(knowledge_app(slack, seen).web_app())
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    note = slack.add_message(KNOW, "to be fixed")
    try:
        for body in (slack.react(KNOW, note["ts"], "eyes"), slack.edit_message(KNOW, note["ts"], "fixed")):
            assert (await slack.deliver_http(url, body, SIGNING_SECRET))[0] == 200
        await eventually(lambda: len(seen) == 2)
    finally:
        await runner.cleanup()
    assert [e["type"] for e in seen] == ["reaction_added", "message"]
    assert seen[1]["message"]["edited"]["user"] == sp.USER_ID


async def test_the_bots_own_reactions_echo_as_events() -> None:
    async with FakeSlack(echo_bot_events=True) as slack:
        web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        # A raw Socket Mode client: bolt itself drops the app's own events before listeners see them.
        sm = SocketModeClient(app_token=slack.app_token, web_client=web_client)
        seen: list[dict[str, Any]] = []

        async def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
            seen.append(req.payload["event"])
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        sm.socket_mode_request_listeners.append(on_request)  # type: ignore[arg-type]
        question = slack.add_message(KNOW, "q")
        try:
            await sm.connect()
            await slack.wait_connected()
            await web_client.reactions_add(channel=KNOW, timestamp=question["ts"], name="hourglass")
            await eventually(lambda: bool(seen))
        finally:
            await sm.close()
        assert (seen[0]["type"], seen[0]["user"], seen[0]["reaction"], seen[0]["item_user"]) == (
            "reaction_added",
            sp.BOT_USER_ID,
            "hourglass",
            sp.USER_ID,
        )
