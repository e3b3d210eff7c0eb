"""The fake Discord against a real discord.py 2.7 client: login, command sync, interactions, messages, threads,
errors, rate limits and gateway resume, with nothing in discord.py patched but `Route.BASE` and
`DiscordWebSocket.DEFAULT_GATEWAY`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakes import discord_payloads as payloads
from tests.fakes.discord import (
    ROUTE_CALLBACK,
    ROUTE_CREATE_MESSAGE,
    ROUTE_EDIT_MESSAGE,
    Failure,
    FakeDiscord,
    discord_py_pointed_at,
    running_client,
)

MoaHandler = Callable[[discord.Interaction, str], Awaitable[None]]
MessageHandler = Callable[[discord.Message], Awaitable[None]]


class MoaTestClient(discord.Client):
    """A plain Client with a CommandTree and `/moa question:`, as the Discord adapter will build it."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before on_ready (default 2 s).
        super().__init__(
            intents=intents, allowed_mentions=discord.AllowedMentions.none(), guild_ready_timeout=0.05
        )
        self.tree = app_commands.CommandTree(self)
        self.test_guild = discord.Object(id=guild_id)
        self.moa_handler: MoaHandler | None = None
        self.message_handler: MessageHandler | None = None
        self.received: list[discord.Message] = []
        self.errors: list[BaseException] = []
        self.resumed = asyncio.Event()

        @self.tree.command(name="moa", description="Ask the mixture of agents")
        @app_commands.describe(question="What to ask")
        async def moa(interaction: discord.Interaction, question: str) -> None:
            await self._guarded(self.moa_handler, interaction, question)

    async def _guarded(self, handler: Callable[..., Awaitable[None]] | None, *args: object) -> None:
        # discord.py only logs exceptions raised in handlers; keep them so the test can fail on them.
        if handler is None:
            return
        try:
            await handler(*args)
        except Exception as exc:  # noqa: BLE001 - any handler failure must fail the test
            self.errors.append(exc)

    async def setup_hook(self) -> None:
        self.tree.copy_global_to(guild=self.test_guild)
        await self.tree.sync(guild=self.test_guild)
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)
        if message.author != self.user:
            await self._guarded(self.message_handler, message)

    async def on_resumed(self) -> None:
        self.resumed.set()


@pytest.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    """A running fake with discord.py pointed at it; both class attributes are restored afterwards."""
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    async with FakeDiscord(message_rate=(3, 1.0), interaction_token_ttl=2.0) as fake:
        with discord_py_pointed_at(fake):
            yield fake
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == saved


@pytest.fixture
async def bot(dc: FakeDiscord) -> AsyncIterator[MoaTestClient]:
    """A logged-in, connected, ready client with `/moa` synced; closed cleanly at the end."""
    client = MoaTestClient(dc.guild_id)
    async with running_client(dc, client):
        yield client
        assert client.errors == []


async def test_login_identify_and_command_sync(dc: FakeDiscord, bot: MoaTestClient) -> None:
    routes = [c.route for c in dc.calls]
    assert routes[:2] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    assert "PUT /applications/{application_id}/guilds/{guild_id}/commands" in routes
    assert "PUT /applications/{application_id}/commands" in routes
    assert all(c.status == 200 for c in dc.calls)

    assert bot.user is not None and bot.user.id == dc.bot_id
    assert bot.application_id == dc.application_id
    assert dc.intents == bot.intents.value
    assert dc.heartbeats >= 1  # discord.py beats right after HELLO and gets its ACK
    guild = bot.get_guild(dc.guild_id)
    assert guild is not None and guild.get_channel(dc.channel_id) is not None
    assert guild.me is not None

    assert dc.sync_count == 2
    for scope in (dc.guild_id, None):
        (command,) = dc.commands(scope)
        assert command["name"] == "moa"
        assert [(o["name"], o["type"]) for o in command["options"]] == [("question", 3)]


async def test_bad_token_is_a_login_failure(dc: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert dc.calls[-1].status == 401


async def test_slash_command_defer_edit_and_follow_up(dc: FakeDiscord, bot: MoaTestClient) -> None:
    async def answer(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"Thinking about {question!r} <@{dc.alice['id']}>")
        await interaction.edit_original_response(content="Answer, part 1")
        await interaction.followup.send("Answer, part 2", wait=True)

    bot.moa_handler = answer
    inter = await dc.slash_command("moa", {"question": "why is the sky blue?"})
    assert inter.payload["data"]["guild_id"] == str(dc.guild_id)  # synced as a guild command
    await dc.wait_for(lambda: dc.followups(inter.token))

    record = dc.interaction(inter.token)
    assert record.callback_type == 5
    (callback,) = dc.requests(ROUTE_CALLBACK)
    assert callback.query == {"with_response": "1"} and callback.status == 200
    original = dc.original_response(inter.token)
    assert original is not None
    assert original.history == [
        "",
        f"Thinking about 'why is the sky blue?' <@{dc.alice['id']}>",
        "Answer, part 1",
    ]
    assert original.edit_count == 2
    assert not original.flags & payloads.FLAG_LOADING
    # AllowedMentions.none() on the client travels with every edit, so the mention pinged nobody.
    assert original.allowed_mentions[1:] == [{"parse": []}, {"parse": []}]
    assert original.pinged == set()
    (follow_up,) = dc.followups(inter.token)
    assert follow_up.content == "Answer, part 2" and follow_up.channel_id == dc.channel_id


async def test_interaction_token_expires(dc: FakeDiscord, bot: MoaTestClient) -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def late(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer()
        await asyncio.sleep(dc.interaction_token_ttl + 0.1)
        try:
            await interaction.edit_original_response(content="too late")
        except discord.HTTPException as exc:
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    dc.interaction_token_ttl = 0.2
    bot.moa_handler = late
    await dc.slash_command("moa", {"question": "q"})
    exc = await asyncio.wait_for(outcome, 5)
    assert isinstance(exc, discord.HTTPException)
    assert (exc.status, exc.code, exc.text) == (401, 50027, "Invalid Webhook Token")


async def test_mention_opens_a_thread_and_answers_there(dc: FakeDiscord, bot: MoaTestClient) -> None:
    async def on_mention(message: discord.Message) -> None:
        assert bot.user is not None and bot.user.mentioned_in(message)
        thread = await message.create_thread(
            name=message.content.replace(f"<@{dc.bot_id}>", "").strip()[:100]
        )
        await thread.send("Here is the answer")

    bot.message_handler = on_mention
    asked = await dc.user_message(dc.channel_id, f"<@{dc.bot_id}> what is MoA?")
    await dc.wait_for(lambda: dc.messages(asked.id))

    thread = dc.channel(asked.id)  # the thread id is the starter message's id
    assert thread["type"] == payloads.PUBLIC_THREAD and thread["name"] == "what is MoA?"
    assert thread["parent_id"] == str(dc.channel_id)
    (answer,) = dc.messages(asked.id)
    assert answer.author_id == dc.bot_id and answer.content == "Here is the answer"
    assert answer.allowed_mentions == [{"parse": []}]
    # Discord echoes the bot's own message back over the gateway, and discord.py resolves its thread.
    echoed = await dc.wait_for(lambda: [m for m in bot.received if m.id == answer.id])
    assert isinstance(echoed[0].channel, discord.Thread)
    assert echoed[0].author == bot.user


async def test_content_over_2000_chars_is_invalid_form_body(dc: FakeDiscord, bot: MoaTestClient) -> None:
    channel = bot.get_channel(dc.channel_id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send("x" * 2001)
    assert (caught.value.status, caught.value.code) == (400, 50035)
    assert "Must be 2000 or fewer in length." in caught.value.text
    assert dc.messages(dc.channel_id) == []
    sent = await channel.send("x" * 2000)
    assert dc.message(sent.id).content == "x" * 2000


async def test_burst_of_edits_meets_429s_and_all_land(dc: FakeDiscord, bot: MoaTestClient) -> None:
    channel = bot.get_channel(dc.channel_id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("v0")
    versions = [f"v{i}" for i in range(1, 6)]
    # discord.py paces itself by the edit route's headers, but the send drew on the channel's shared budget.
    await asyncio.gather(*(message.edit(content=v) for v in versions))

    stored = dc.message(message.id)
    assert stored.edit_count == len(versions)
    assert sorted(stored.history[1:]) == versions
    assert dc.rate_limited[ROUTE_EDIT_MESSAGE] >= 1
    assert dc.rate_limited[ROUTE_CREATE_MESSAGE] == 0
    limited = [c for c in dc.requests(ROUTE_EDIT_MESSAGE) if c.status == 429]
    assert len(limited) == dc.rate_limited[ROUTE_EDIT_MESSAGE]


async def test_gateway_drop_resumes_and_replays(dc: FakeDiscord, bot: MoaTestClient) -> None:
    await dc.drop_connections()
    # Sent while the socket is down: Discord replays it after RESUME.
    missed = await dc.user_message(dc.other_channel_id, "sent during the outage")
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert len(dc.resumes) == 1 and len(dc.identifies) == 1
    await dc.wait_for(lambda: any(m.id == missed.id for m in bot.received))
    assert dc.connections == 1

    bot.resumed.clear()
    await dc.request_reconnect()  # op 7: the client closes and resumes
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert len(dc.resumes) == 2


async def test_gateway_handshake_on_a_raw_socket(dc: FakeDiscord) -> None:
    # discord.py waits 5 s before a non-initial IDENTIFY, so these paths are checked at the socket level.
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{dc.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            assert (await ws.receive_json())["op"] == 10
            await ws.send_json({"op": 6, "d": {"token": dc.token, "session_id": "gone", "seq": 3}})
            assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}
            await ws.send_json({"op": 2, "d": {"token": dc.token, "intents": 0, "properties": {}}})
            ready = await ws.receive_json()
            assert (ready["t"], ready["s"]) == ("READY", 1)
            assert ready["d"]["resume_gateway_url"].startswith("ws://")
            await ws.send_json({"op": 1, "d": 1})
            assert (await ws.receive_json())["op"] == 11  # no GUILD_CREATE: the GUILDS intent is off
        async with http.ws_connect(dc.gateway_url) as ws:
            await ws.receive_json()
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}})
            closing = await ws.receive()
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4004)


async def test_rest_errors_and_headers_as_discord_sends_them(dc: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {dc.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{dc.api_base}/users/@me", headers=auth) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-RateLimit-Bucket"] and "X-RateLimit-Reset-After" in resp.headers
        async with http.get(f"{dc.api_base}/users/@me") as resp:
            assert resp.status == 401 and await resp.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.post(
            f"{dc.api_base}/channels/1/messages", headers=auth, json={"content": "x"}
        ) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10003
        async with http.get(f"{dc.api_base}/channels/{dc.channel_id}/messages/1", headers=auth) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10008
        async with http.patch(f"{dc.api_base}/webhooks/{dc.application_id}/nope/messages/@original") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10015

        inter = await dc.slash_command("moa", {"question": "q"}, channel_id=dc.other_channel_id)
        callback = f"{dc.api_base}/interactions/{inter.id}/{inter.token}/callback?with_response=true"
        async with http.post(callback, json={"type": 5}) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["interaction"]["response_message_loading"] is True
        async with http.post(callback, json={"type": 5}) as resp:
            assert resp.status == 400
            assert await resp.json() == {
                "code": 40060,
                "message": "Interaction has already been acknowledged.",
            }
        assert dc.interaction(inter.token).callback_attempts == 2

        dc.interaction_ack_deadline = 0.0  # answering later than Discord's 3 s
        late = await dc.slash_command("moa", {"question": "q"}, channel_id=dc.other_channel_id)
        late_callback = f"{dc.api_base}/interactions/{late.id}/{late.token}/callback"
        async with http.post(late_callback, json={"type": 5}) as resp:
            assert resp.status == 404 and await resp.json() == {
                "code": 10062,
                "message": "Unknown interaction",
            }

        threads = f"{dc.api_base}/channels/{dc.other_channel_id}/threads"
        async with http.post(threads, headers=auth, json={"name": "side", "type": 11}) as resp:
            created = await resp.json()
            assert (
                resp.status == 201
                and created["type"] == 11
                and created["parent_id"] == str(dc.other_channel_id)
            )
        assert dc.threads(dc.other_channel_id) == [dc.channel(int(created["id"]))]

        thread_route = f"{dc.api_base}/channels/{dc.channel_id}/messages"
        async with http.post(thread_route, headers=auth, json={"content": "starter"}) as resp:
            starter = await resp.json()
        async with http.post(
            f"{thread_route}/{starter['id']}/threads", headers=auth, json={"name": ""}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["errors"]["name"]["_errors"][0]["code"] == (
                "BASE_TYPE_BAD_LENGTH"
            )
        # A client that ignores the headers meets the route's own limit: a 429 discord.py would sleep through.
        statuses = []
        for _ in range(3):
            async with http.post(thread_route, headers=auth, json={"content": "spam"}) as resp:
                statuses.append(resp.status)
                headers, body = resp.headers, await resp.json()
        assert statuses == [200, 200, 429]
        assert headers["Via"] == "1.1 google" and int(headers["Retry-After"]) >= 1
        assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Scope"] == "user"
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert 0 < body["retry_after"] <= 1.0
        assert dc.rate_limited[ROUTE_CREATE_MESSAGE] == 1


async def test_injected_failures_in_discords_shapes(dc: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {dc.token}"}
    create = f"{dc.api_base}/channels/{dc.channel_id}/messages"
    dc.fail(
        "POST /channels/{id}/messages",
        Failure.error(50035, message="Invalid Form Body"),
        Failure.http(503),
        Failure.rate_limit(retry_after=0.5, is_global=True),
    )
    async with aiohttp.ClientSession() as http:
        answers = []
        for _ in range(4):
            async with http.post(create, headers=auth, json={"content": "x"}) as resp:
                answers.append((resp.status, await resp.json(), resp.headers))
    (s1, b1, h1), (s2, b2, _), (s3, b3, h3), (s4, _, h4) = answers
    assert (s1, b1) == (400, {"code": 50035, "message": "Invalid Form Body"}) and "X-RateLimit-Bucket" in h1
    assert (s2, b2) == (503, {"code": 0, "message": "503: Service Unavailable"})
    assert s3 == 429 and b3 == {"message": "You are being rate limited.", "retry_after": 0.5, "global": True}
    assert (h3["X-RateLimit-Global"], h3["X-RateLimit-Scope"], h3["Via"]) == ("true", "global", "1.1 google")
    # The failed calls used up none of the route's budget.
    assert s4 == 200 and h4["X-RateLimit-Remaining"] == str(dc.message_rate[0] - 1)
    assert dc.rate_limited == {ROUTE_CREATE_MESSAGE: 1}
    assert [m.content for m in dc.messages(dc.channel_id)] == ["x"]


async def test_a_disconnect_or_hang_leaves_the_call_unanswered(dc: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {dc.token}"}
    # A POST: aiohttp itself resends an idempotent request once when its connection drops.
    dc.fail(ROUTE_CREATE_MESSAGE, Failure.disconnect())
    dc.fail("GET /users/@me", Failure.hang())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as http:
        create = f"{dc.api_base}/channels/{dc.channel_id}/messages"
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.post(create, headers=auth, json={"content": "lost"})
        with pytest.raises(TimeoutError):
            await http.get(f"{dc.api_base}/users/@me", headers=auth)
    assert [c.status for c in dc.requests(ROUTE_CREATE_MESSAGE)] == [0]
    assert [c.status for c in dc.requests("GET /users/@me")] == [0]
    assert dc.messages(dc.channel_id) == []


async def test_discord_py_sleeps_through_an_injected_429(dc: FakeDiscord, bot: MoaTestClient) -> None:
    channel = bot.get_channel(dc.channel_id)
    assert isinstance(channel, discord.TextChannel)
    dc.fail(ROUTE_CREATE_MESSAGE, Failure.rate_limit(retry_after=0.05))
    sent = await channel.send("after a pause")
    assert [c.status for c in dc.requests(ROUTE_CREATE_MESSAGE)] == [429, 200]
    assert dc.message(sent.id).content == "after a pause"


async def test_bot_calls_share_the_global_limit_and_interactions_do_not() -> None:
    async with FakeDiscord(global_rate=(2, 5.0)) as dc:
        auth = {"Authorization": f"Bot {dc.token}"}
        inter = await dc.slash_command("moa", {"question": "q"})
        async with aiohttp.ClientSession() as http:
            statuses = []
            for url in (f"{dc.api_base}/users/@me", f"{dc.api_base}/channels/{dc.channel_id}"):
                for _ in range(2):
                    async with http.get(url, headers=auth) as resp:
                        statuses.append(resp.status)
                        headers, body = resp.headers, await resp.json()
            callback = f"{dc.api_base}/interactions/{inter.id}/{inter.token}/callback"
            async with http.post(callback, json={"type": 5}) as resp:
                assert resp.status == 204  # interaction endpoints are not bound to the global limit
        assert statuses == [200, 200, 429, 429]
        assert body["global"] is True and headers["X-RateLimit-Scope"] == "global"


def test_fail_refuses_what_discord_cannot_do(dc: FakeDiscord) -> None:
    with pytest.raises(ValueError, match="no route"):
        dc.fail("POST /channel/{id}/messages", Failure.http(500))
    with pytest.raises(ValueError, match="streamed"):
        dc.fail(ROUTE_EDIT_MESSAGE, Failure.stream_error())
    with pytest.raises(ValueError, match="numbers"):
        dc.fail(ROUTE_EDIT_MESSAGE, Failure.error("msg_too_long"))


async def test_message_content_intent_and_dms(dc: FakeDiscord) -> None:
    client = discord.Client(
        intents=discord.Intents.default(),
        allowed_mentions=discord.AllowedMentions.none(),
        guild_ready_timeout=0.05,
    )
    received: list[discord.Message] = []
    client.event(_collector(received))
    async with running_client(dc, client):
        plain = await dc.user_message(dc.channel_id, "no mention here")
        mention = await dc.user_message(dc.channel_id, f"<@!{dc.bot_id}> hello")
        direct = await dc.user_message(dc.dm_channel_id(dc.bob), "a DM", author=dc.bob)
        await dc.wait_for(lambda: len(received) == 3)
    by_id = {m.id: m for m in received}
    # Without MESSAGE_CONTENT, Discord withholds content except for mentions of the bot and DMs.
    assert by_id[plain.id].content == ""
    assert by_id[mention.id].content == f"<@!{dc.bot_id}> hello"
    assert client.user is not None and client.user in by_id[mention.id].mentions
    assert isinstance(by_id[direct.id].channel, discord.DMChannel) and by_id[direct.id].guild is None
    assert by_id[direct.id].content == "a DM"


async def test_privileged_intents_not_enabled_closes_with_4014() -> None:
    async with FakeDiscord(privileged_intents=False) as fake:
        with discord_py_pointed_at(fake):
            intents = discord.Intents.default()
            intents.message_content = True
            client = discord.Client(intents=intents)
            with pytest.raises(discord.PrivilegedIntentsRequired):
                await asyncio.wait_for(client.start(fake.token), 5)
            await client.close()


def _collector(into: list[discord.Message]) -> Callable[[discord.Message], Coroutine[Any, Any, None]]:
    async def on_message(message: discord.Message) -> None:
        into.append(message)

    return on_message
