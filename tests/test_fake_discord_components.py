"""The fake Discord validates message components and delivers clicks on them, answered through an unpatched
discord.py client: persistent views, every callback type, ephemeral replies and follow-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakes import discord_payloads as payloads
from tests.fakes.discord import ROUTE_CALLBACK, FakeDiscord, discord_py_pointed_at, running_client


class AnswerControls(discord.ui.View):
    """The buttons under an answer, as a persistent view: no timeout, fixed custom_ids."""

    def __init__(self, clicks: list[tuple[str, discord.Interaction]]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="Helpful", emoji="👍", style=discord.ButtonStyle.success, custom_id="moa:up")
    async def up(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("up", interaction))
        await interaction.response.edit_message(content="Thanks for the feedback!")  # 7 UPDATE_MESSAGE

    @discord.ui.button(label="Not helpful", emoji="👎", custom_id="moa:down")
    async def down(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("down", interaction))
        await interaction.response.defer()  # 6 DEFERRED_UPDATE_MESSAGE
        await interaction.edit_original_response(content="Noted: not helpful.")

    @discord.ui.button(label="Show drafts", custom_id="moa:drafts")
    async def drafts(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("drafts", interaction))
        await interaction.response.send_message("draft 1 ...", ephemeral=True)  # 4, ephemeral
        await interaction.followup.send("draft 2 ...", ephemeral=True)

    @discord.ui.button(label="Stop", style=discord.ButtonStyle.danger, custom_id="moa:stop")
    async def stop_answer(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("stop", interaction))
        await interaction.response.defer(thinking=True)  # 5: "thinking..." until edited
        await interaction.edit_original_response(content="Stopped.")


class ViewClient(discord.Client):
    """Registers the persistent view at start, as the adapter would, so clicks route after a restart too."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.clicks: list[tuple[str, discord.Interaction]] = []

    async def setup_hook(self) -> None:
        self.add_view(AnswerControls(self.clicks))


@pytest.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with discord_py_pointed_at(fake):
            yield fake


@pytest.fixture
async def client(dc: FakeDiscord) -> AsyncIterator[ViewClient]:
    view_client = ViewClient()
    async with running_client(dc, view_client):
        yield view_client


async def answer_with_controls(dc: FakeDiscord, client: ViewClient) -> discord.Message:
    channel = client.get_channel(dc.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return await channel.send("The answer.", view=AnswerControls(client.clicks))


async def test_a_message_carries_its_buttons(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    (row,) = dc.message(sent.id).components
    assert row["type"] == 1 and [b["custom_id"] for b in row["components"]] == [
        "moa:up",
        "moa:down",
        "moa:drafts",
        "moa:stop",
    ]
    assert row["components"][0]["emoji"]["name"] == "👍" and row["components"][0]["style"] == 3
    fetched = await sent.channel.fetch_message(sent.id)
    assert [c.custom_id for c in fetched.components[0].children] == [
        "moa:up",
        "moa:down",
        "moa:drafts",
        "moa:stop",
    ]  # type: ignore[union-attr]


async def test_update_message_edits_the_clicked_message(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    click = await dc.click(sent.id, "moa:up", user=dc.bob)
    await dc.wait_for(lambda: dc.interaction(click.token).callback_type)
    assert dc.interaction(click.token).callback_type == 7
    assert dc.message(sent.id).content == "Thanks for the feedback!"
    assert dc.original_response(click.token) is dc.message(sent.id)
    (name, interaction) = client.clicks[0]
    assert name == "up" and interaction.user.id == int(dc.bob["id"])
    assert interaction.message is not None and interaction.message.id == sent.id
    assert interaction.data == {"custom_id": "moa:up", "component_type": 2}


async def test_deferred_update_then_edit_changes_the_clicked_message(
    dc: FakeDiscord, client: ViewClient
) -> None:
    sent = await answer_with_controls(dc, client)
    click = await dc.click(sent.id, "moa:down")
    await dc.wait_for(lambda: dc.message(sent.id).content == "Noted: not helpful.")
    assert dc.interaction(click.token).callback_type == 6
    assert len(dc.bot_messages(dc.channel_id)) == 1  # no new message: the answer itself changed


async def test_ephemeral_reply_and_follow_up_to_a_click(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    click = await dc.click(sent.id, "moa:drafts")
    await dc.wait_for(lambda: dc.followups(click.token))
    original = dc.original_response(click.token)
    assert original is not None and original.ephemeral and original.content == "draft 1 ..."
    assert original.interaction_metadata is not None
    assert original.interaction_metadata["type"] == 3
    assert original.interaction_metadata["interacted_message_id"] == str(sent.id)
    (follow_up,) = dc.followups(click.token)
    assert follow_up.content == "draft 2 ..." and follow_up.ephemeral


async def test_thinking_defer_then_edit(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    click = await dc.click(sent.id, "moa:stop")
    await dc.wait_for(
        lambda: (m := dc.original_response(click.token)) is not None and m.content == "Stopped."
    )
    assert dc.interaction(click.token).callback_type == 5
    assert dc.message(sent.id).content == "The answer."  # the clicked message is left alone


async def test_a_late_click_answer_is_an_unknown_interaction(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    dc.interaction_ack_deadline = 0.0
    click = await dc.click(sent.id, "moa:up")
    await dc.wait_for(lambda: dc.interaction(click.token).callback_attempts)
    await asyncio.sleep(0.05)
    assert [c.status for c in dc.requests(ROUTE_CALLBACK)] == [404]
    assert dc.message(sent.id).content == "The answer."


async def test_persistent_views_route_clicks_on_messages_from_before_a_restart(dc: FakeDiscord) -> None:
    old = dc.add_user_message(
        dc.channel_id, "An old answer.", author=dc.bot_user, reply_to=None, ping_reply=False
    )
    old.components = [payloads.action_row(payloads.button("Helpful", "moa:up", style=3))]
    restarted = ViewClient()
    async with running_client(dc, restarted):
        click = await dc.click(old.id, "moa:up")
        await dc.wait_for(lambda: dc.message(old.id).content == "Thanks for the feedback!")
    assert restarted.clicks[0][0] == "up" and dc.interaction(click.token).callback_type == 7


def test_click_payload_has_discords_shape(dc: FakeDiscord) -> None:
    payload = payloads.component_interaction(
        interaction_id=1,
        application_id=2,
        token="t",
        custom_id="moa:up",
        component_type=2,
        message={"id": "3"},
        channel=dc.channel(dc.channel_id),
        invoker=dc.alice,
        guild_id=dc.guild_id,
    )
    assert (payload["type"], payload["data"], payload["message"]) == (
        3,
        {"custom_id": "moa:up", "component_type": 2},
        {"id": "3"},
    )
    assert payload["member"]["user"] == dc.alice and "user" not in payload
    assert payload["guild_id"] == str(dc.guild_id) and payload["context"] == 0


async def test_clicking_what_is_not_there_is_a_test_error(dc: FakeDiscord, client: ViewClient) -> None:
    sent = await answer_with_controls(dc, client)
    with pytest.raises(ValueError, match="no enabled component"):
        await dc.click(sent.id, "moa:nope")


async def test_components_are_validated_like_discord(dc: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {dc.token}"}
    url = f"{dc.api_base}/channels/{dc.channel_id}/messages"
    button = payloads.button
    row = payloads.action_row
    cases: list[tuple[list[Any], list[str], str]] = [
        ([row(button("x", "a" * 101))], ["components", "0", "components", "0", "custom_id"], "BASE_TYPE_MAX_LENGTH"),
        ([row(button("x", None))], ["components", "0", "components", "0", "custom_id"], "BASE_TYPE_REQUIRED"),
        ([row(button("x", "same"), button("y", "same"))], ["components", "0", "components", "1", "custom_id"],
         "COMPONENT_CUSTOM_ID_DUPLICATED"),
        ([row(*[button(str(i), f"b{i}") for i in range(6)])], ["components", "0", "components"], "BASE_TYPE_BAD_LENGTH"),
        ([row(button("x", f"r{i}")) for i in range(6)], ["components"], "BASE_TYPE_MAX_LENGTH"),
        ([button("x", "loose")], ["components", "0", "type"], "UNION_TYPE_CHOICES"),
        ([row(button("x" * 81, "long"))], ["components", "0", "components", "0", "label"], "BASE_TYPE_MAX_LENGTH"),
        ([row(button("docs", style=payloads.BUTTON_LINK))], ["components", "0", "components", "0", "url"],
         "BASE_TYPE_REQUIRED"),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for components, path, code in cases:
            async with http.post(url, headers=auth, json={"content": "x", "components": components}) as resp:
                body = await resp.json()
            assert (resp.status, body["code"]) == (400, 50035), path
            tree = body["errors"]
            for key in path:
                tree = tree[key]
            assert tree["_errors"][0]["code"] == code
            dc.reset_limits()
        ok = [
            row(
                button("x" * 80, "c" * 100),
                button("docs", style=payloads.BUTTON_LINK, url="https://example.com"),
            )
        ]
        async with http.post(url, headers=auth, json={"content": "x", "components": ok}) as resp:
            assert resp.status == 200
    assert len(dc.messages(dc.channel_id)) == 1
