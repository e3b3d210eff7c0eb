"""The fake Discord serves what team knowledge reads: history, threads, private channels, attachments,
reactions, and the events that change them, through an unpatched discord.py client."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakes import discord_payloads as payloads
from tests.fakes.discord import (
    ROUTE_ADD_REACTION,
    ROUTE_HISTORY,
    FakeDiscord,
    discord_py_pointed_at,
    running_client,
)
from tests.fakes.documents import pdf_with_text, png_image

DAY = 86400.0


class Recorder(discord.Client):
    """A client that keeps every raw event the knowledge feature listens to."""

    def __init__(self, intents: discord.Intents | None = None) -> None:
        if intents is None:
            intents = discord.Intents.default()
            intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.events: list[tuple[str, Any]] = []

    def named(self, name: str) -> list[Any]:
        return [payload for event, payload in self.events if event == name]

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.events.append(("edit", payload))

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.events.append(("delete", payload))

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.events.append(("bulk_delete", payload))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.events.append(("reaction_add", payload))

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.events.append(("reaction_remove", payload))

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.events.append(("thread_create", thread))

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        self.events.append(("thread_update", payload))

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.events.append(("thread_delete", payload))

    async def on_guild_channel_update(
        self, before: discord.abc.GuildChannel, after: discord.abc.GuildChannel
    ) -> None:
        self.events.append(("channel_update", (before, after)))

    async def on_message(self, message: discord.Message) -> None:
        self.events.append(("message", message))


@pytest.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with discord_py_pointed_at(fake):
            yield fake


@pytest.fixture
async def client(dc: FakeDiscord) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    async with running_client(dc, recorder):
        yield recorder


def text_channel(client: discord.Client, channel_id: int) -> discord.TextChannel:
    channel = client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def until(check: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- history


async def test_history_pages_newest_first_with_before_after_and_around(
    dc: FakeDiscord, client: Recorder
) -> None:
    seeded = dc.add_history(dc.channel_id, 150, days=400, threads_every=0)
    channel = text_channel(client, dc.channel_id)
    everything = [m async for m in channel.history(limit=None)]
    assert [m.id for m in everything] == [m.id for m in reversed(seeded)]  # newest first, across two pages
    assert [c.query["limit"] for c in dc.requests(ROUTE_HISTORY)] == ["100", "100"]
    assert (
        everything[0].jump_url
        == f"https://discord.com/channels/{dc.guild_id}/{dc.channel_id}/{seeded[-1].id}"
    )
    before = [m.id async for m in channel.history(limit=10, before=discord.Object(seeded[50].id))]
    assert before == [m.id for m in reversed(seeded[40:50])]
    after = [m.id async for m in channel.history(limit=10, after=discord.Object(seeded[50].id))]
    assert after == [m.id for m in seeded[51:61]]  # discord.py turns Discord's newest-first pages around
    around = [m.id async for m in channel.history(limit=5, around=discord.Object(seeded[75].id))]
    assert around == [m.id for m in reversed(seeded[73:78])]
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    recent = [m async for m in channel.history(limit=None, after=since)]
    assert len(recent) == sum(1 for m in seeded if m.created_at > since.timestamp()) < 150
    assert all(m.created_at >= since for m in recent)


async def test_history_limit_and_rate_limit_are_discords(dc: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {dc.token}"}
    url = f"{dc.api_base}/channels/{dc.channel_id}/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=auth, params={"limit": "101"}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["code"] == 50035
            assert body["errors"]["limit"]["_errors"][0]["code"] == "NUMBER_TYPE_MAX"
        dc.default_rate = (2, 5.0)
        dc.reset_limits()
        statuses = []
        for _ in range(3):
            async with http.get(url, headers=auth) as resp:
                statuses.append(resp.status)
                headers = resp.headers
        assert statuses == [200, 200, 429] and headers["X-RateLimit-Scope"] == "user"
        async with http.get(f"{dc.api_base}/channels/{dc.other_channel_id}/messages", headers=auth) as resp:
            assert resp.status == 200  # another channel, another bucket
    assert dc.rate_limited[ROUTE_HISTORY] == 1


# ---------------------------------------------------------------- private channels and threads


async def test_overwrites_tell_private_channels_from_public_ones(dc: FakeDiscord) -> None:
    private = dc.add_channel(dc.guild_id, "staff", private=True)
    hidden = dc.add_channel(dc.guild_id, "hr", private=True, bot_can_view=False)
    recorder = Recorder()
    async with running_client(dc, recorder):
        guild = recorder.get_guild(dc.guild_id)
        assert guild is not None and guild.me is not None
        for channel_id, everyone_sees, bot_sees in [
            (dc.channel_id, True, True),
            (private, False, True),
            (hidden, False, False),
        ]:
            channel = text_channel(recorder, channel_id)
            assert channel.permissions_for(guild.default_role).view_channel is everyone_sees
            assert channel.permissions_for(guild.me).view_channel is bot_sees
        fetched = await recorder.fetch_channel(private)
        assert (
            isinstance(fetched, discord.TextChannel)
            and fetched.overwrites_for(guild.default_role).view_channel is False
        )
        with pytest.raises(discord.Forbidden) as caught:
            [m async for m in text_channel(recorder, hidden).history(limit=5)]
        assert caught.value.code == 50001


async def test_a_channel_made_private_reaches_discord_py(dc: FakeDiscord, client: Recorder) -> None:
    guild = client.get_guild(dc.guild_id)
    assert guild is not None and guild.me is not None
    await dc.set_channel_private(dc.channel_id)
    await until(lambda: client.named("channel_update"))
    ((before, after),) = client.named("channel_update")
    assert before.permissions_for(guild.default_role).view_channel is True
    assert after.permissions_for(guild.default_role).view_channel is False
    assert after.permissions_for(guild.me).view_channel is True  # the bot keeps its way in
    await dc.set_channel_private(dc.channel_id, False)
    await until(lambda: len(client.named("channel_update")) == 2)
    assert text_channel(client, dc.channel_id).permissions_for(guild.default_role).view_channel is True
    assert text_channel(client, dc.channel_id).overwrites == {}


async def test_archived_and_active_threads_are_listed(dc: FakeDiscord) -> None:
    now = time.time()
    seeded = dc.add_history(dc.channel_id, 30, days=60, threads_every=3, replies=2, now=now)
    threads = {m.thread_id for m in seeded if m.thread_id}
    assert len(threads) == 10
    recorder = Recorder()
    async with running_client(dc, recorder):
        channel = text_channel(recorder, dc.channel_id)
        archived = [t async for t in channel.archived_threads(limit=None)]
        active = await recorder.get_guild(dc.guild_id).active_threads()  # type: ignore[union-attr]
        assert {t.id for t in archived} | {t.id for t in active} == threads and archived and active
        assert all(t.archived for t in archived) and not any(t.archived for t in active)
        stamps = [t.archive_timestamp for t in archived]
        assert stamps == sorted(stamps, reverse=True)
        cached = {t.id for t in recorder.get_guild(dc.guild_id).threads}  # type: ignore[union-attr]
        assert cached == {t.id for t in active}  # GUILD_CREATE carries active threads only
        some = archived[0]
        inside = [m.content async for m in some.history(oldest_first=True)]
        assert len(inside) == 2 and inside[0].startswith("reply 0")
        first_page = [t async for t in channel.archived_threads(limit=2)]
        assert [t.id for t in first_page] == [t.id for t in archived[:2]]


async def test_thread_events_reach_discord_py(dc: FakeDiscord, client: Recorder) -> None:
    thread_id = await dc.user_thread(dc.channel_id, "incident 42")
    await until(lambda: client.named("thread_create"))
    await dc.archive_thread(thread_id)
    await until(lambda: client.named("thread_update"))
    await dc.delete_thread(thread_id)
    await until(lambda: client.named("thread_delete"))
    (created,) = client.named("thread_create")
    assert created.id == thread_id and created.name == "incident 42" and created.parent_id == dc.channel_id
    (updated,) = client.named("thread_update")
    assert updated.thread_id == thread_id and updated.data["thread_metadata"]["archived"] is True
    (deleted,) = client.named("thread_delete")
    assert (deleted.thread_id, deleted.parent_id, deleted.guild_id) == (thread_id, dc.channel_id, dc.guild_id)
    assert thread_id not in dc.channels


# ---------------------------------------------------------------- edits and deletions


async def test_edits_and_deletions_reach_discord_py(dc: FakeDiscord, client: Recorder) -> None:
    note = await dc.user_message(dc.channel_id, "deploys at 10")
    spam = [await dc.user_message(dc.channel_id, f"spam {i}") for i in range(3)]
    await until(lambda: len(client.named("message")) == 4)
    await dc.user_edit(note.id, "deploys at 11")
    await dc.user_delete(note.id)
    await dc.bulk_delete(dc.channel_id, [m.id for m in spam])
    await until(lambda: client.named("bulk_delete"))
    (edit,) = client.named("edit")
    assert (edit.message_id, edit.message.content) == (note.id, "deploys at 11")
    assert edit.message.edited_at is not None and edit.data["author"]["id"] == dc.alice["id"]
    (deleted,) = client.named("delete")
    assert (deleted.message_id, deleted.channel_id, deleted.guild_id) == (note.id, dc.channel_id, dc.guild_id)
    (bulk,) = client.named("bulk_delete")
    assert bulk.message_ids == {m.id for m in spam} and bulk.channel_id == dc.channel_id
    assert dc.messages(dc.channel_id) == []


async def test_updates_withhold_content_without_the_intent(dc: FakeDiscord) -> None:
    recorder = Recorder(discord.Intents.default())
    async with running_client(dc, recorder):
        note = await dc.user_message(dc.channel_id, "secret", attachments=[("a.txt", b"x")])
        await dc.user_edit(note.id, "still secret")
        await until(lambda: recorder.named("edit"))
    (edit,) = recorder.named("edit")
    assert edit.data["content"] == "" and edit.data["attachments"] == []
    (created,) = recorder.named("message")
    assert created.content == "" and created.attachments == []


# ---------------------------------------------------------------- attachments


async def test_attachments_download_from_signed_cdn_urls(dc: FakeDiscord, client: Recorder) -> None:
    files = {
        "notes.md": b"# Notes\n\nRotate keys monthly.",
        "costs.csv": b"month,eur\njan,1\n",
        "handbook.pdf": pdf_with_text(["Deploys run at 10:00 UTC."]),
        "logo.png": png_image(4, 3),
    }
    sent = await dc.user_message(dc.channel_id, "docs", attachments=list(files.items()))
    await until(lambda: client.named("message"))
    (message,) = client.named("message")
    assert message.id == sent.id and [a.filename for a in message.attachments] == list(files)
    for attachment in message.attachments:
        assert await attachment.read() == files[attachment.filename]
        assert attachment.size == len(files[attachment.filename])
        assert "ex=" in attachment.url and "hm=" in attachment.url and attachment.proxy_url != attachment.url
        async with aiohttp.ClientSession() as http, http.get(attachment.proxy_url) as resp:
            assert await resp.read() == files[attachment.filename]
    by_name = {a.filename: a for a in message.attachments}
    assert by_name["handbook.pdf"].content_type == "application/pdf"
    assert by_name["notes.md"].content_type == "text/markdown; charset=utf-8"
    assert (by_name["logo.png"].width, by_name["logo.png"].height) == (4, 3)
    tampered = by_name["notes.md"].url.replace("hm=", "hm=0")
    unsigned = by_name["notes.md"].url.split("?")[0]
    async with aiohttp.ClientSession() as http:
        for url in (tampered, unsigned):
            async with http.get(url) as resp:
                assert resp.status == 404 and await resp.text() == "This content is no longer available."
    await dc.user_delete(sent.id)
    with pytest.raises(discord.NotFound):
        await by_name["notes.md"].read()


async def test_expired_attachment_urls_are_gone() -> None:
    async with FakeDiscord(attachment_url_ttl_s=0) as dc:
        with discord_py_pointed_at(dc):
            recorder = Recorder()
            async with running_client(dc, recorder):
                await dc.user_message(dc.channel_id, "old link", attachments=[("a.txt", b"x")])
                await until(lambda: recorder.named("message"))
                with pytest.raises(discord.NotFound):
                    await recorder.named("message")[0].attachments[0].read()
        assert [f["status"] for f in dc.cdn_fetches] == [404]


# ---------------------------------------------------------------- reactions


async def test_the_bot_reacts_with_unicode_emoji_only_known_ones(dc: FakeDiscord, client: Recorder) -> None:
    question = await dc.user_message(dc.channel_id, "who owns billing?")
    message = await text_channel(client, dc.channel_id).fetch_message(question.id)
    await message.add_reaction("🤷")
    await message.add_reaction("🤷")  # again: nothing changes
    assert dc.message(question.id).reactions == {"🤷": [dc.bot_id]}
    fetched = await text_channel(client, dc.channel_id).fetch_message(question.id)
    assert [(str(r.emoji), r.count, r.me) for r in fetched.reactions] == [("🤷", 1, True)]
    with pytest.raises(discord.HTTPException) as caught:
        await message.add_reaction("shrug")
    assert (caught.value.status, caught.value.code) == (400, 10014)
    dc.custom_emojis.add("moa:123456789012345678")
    await message.add_reaction("<:moa:123456789012345678>")
    await message.remove_reaction("🤷", client.user)  # type: ignore[arg-type]
    assert dc.message(question.id).reactions == {"moa:123456789012345678": [dc.bot_id]}
    await until(lambda: len(client.named("reaction_remove")) == 1)
    assert [p.user_id for p in client.named("reaction_add")] == [dc.bot_id, dc.bot_id]  # echoes of its own


async def test_reactions_are_limited_per_channel(dc: FakeDiscord) -> None:
    question = dc.add_user_message(dc.channel_id, "q", author=dc.alice, reply_to=None, ping_reply=False)
    auth = {"Authorization": f"Bot {dc.token}"}
    base = f"{dc.api_base}/channels/{dc.channel_id}/messages/{question.id}/reactions"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for emoji in ("%F0%9F%91%80", "%E2%9C%85"):  # 👀, ✅: one per 0.25 s in a channel
            async with http.put(f"{base}/{emoji}/@me", headers=auth) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert statuses == [204, 429] and retry_after == "1" and dc.rate_limited[ROUTE_ADD_REACTION] == 1


async def test_reaction_events_need_the_reactions_intents(dc: FakeDiscord) -> None:
    without = discord.Intents.default()
    without.message_content = True
    without.reactions = False
    deaf, hearing = Recorder(without), Recorder()
    async with running_client(dc, deaf), running_client(dc, hearing):
        answer = await dc.user_message(dc.channel_id, "an answer", author=dc.bot_user)
        dm = await dc.user_message(dc.dm_channel_id(dc.alice), "in a DM")
        await dc.user_react(answer.id, "✅")
        await dc.user_react(answer.id, "✅", remove=True)
        await dc.user_react(dm.id, "👍", user=dc.alice)
        await until(lambda: len(hearing.named("reaction_add")) == 2 and hearing.named("reaction_remove"))
        await asyncio.sleep(0.05)
    assert deaf.named("reaction_add") == [] and deaf.named("reaction_remove") == []
    guild_add, dm_add = hearing.named("reaction_add")
    assert (guild_add.message_id, guild_add.user_id, str(guild_add.emoji)) == (
        answer.id,
        int(dc.alice["id"]),
        "✅",
    )
    assert guild_add.guild_id == dc.guild_id and guild_add.member is not None
    assert guild_add.message_author_id == dc.bot_id
    assert dm_add.guild_id is None and dm_add.member is None
    (removed,) = hearing.named("reaction_remove")
    assert removed.message_id == answer.id and removed.event_type == "REACTION_REMOVE"


def test_payload_builders_have_discords_shapes() -> None:
    add = payloads.reaction_event(user_id=1, channel_id=2, message_id=3, emoji="✅", guild_id=4)
    assert add == {
        "user_id": "1",
        "channel_id": "2",
        "message_id": "3",
        "emoji": {"id": None, "name": "✅"},
        "burst": False,
        "type": 0,
        "guild_id": "4",
        "burst_colors": [],
    }
    assert payloads.partial_emoji("moa:99") == {"id": "99", "name": "moa", "animated": False}
    overwrite = payloads.permission_overwrite(
        4, payloads.OVERWRITE_ROLE, deny=payloads.PERMISSION_VIEW_CHANNEL
    )
    assert overwrite == {"id": "4", "type": 0, "allow": "0", "deny": "1024"}
