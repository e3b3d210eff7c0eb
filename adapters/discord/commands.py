"""The slash commands (`/moa`, `/moa-forget`) and their sync: only when the definitions changed.

Discord keeps the registered commands, so the adapter fetches them at start and compares them with its own
definitions; a bulk overwrite (`PUT .../commands`) happens only when they differ. That survives restarts without
local state and also repairs commands changed by hand or by another deployment of the same application.
"""

# No `from __future__ import annotations` here: discord.py reads the command callbacks' annotations at runtime.

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger("adapters.discord")

AskHandler = Callable[[discord.Interaction, str, str | None], Awaitable[None]]
ForgetHandler = Callable[[discord.Interaction], Awaitable[None]]
MAX_CHOICES = 25  # Discord's limit on an option's choices


def install_commands(
    tree: app_commands.CommandTree[Any], presets: Iterable[str], ask: AskHandler, forget: ForgetHandler
) -> None:
    """Add `/moa question: [preset:]` and `/moa-forget` to `tree`, calling `ask` and `forget`."""

    @app_commands.command(
        name="moa", description="Ask the Mixture of Agents: several models draft, one synthesizes"
    )
    @app_commands.describe(
        question="Your question", preset="Which set of models answers (default: the bot's)"
    )
    async def moa(interaction: discord.Interaction, question: str, preset: str | None = None) -> None:
        await ask(interaction, question, preset)

    names = sorted(presets)
    if len(names) <= MAX_CHOICES:
        # with more presets than Discord shows, `preset` stays free text and unknown names are refused kindly
        moa = app_commands.choices(preset=[app_commands.Choice(name=n, value=n) for n in names])(moa)

    @app_commands.command(name="moa-forget", description="Forget this thread's conversation with the bot")
    async def moa_forget(interaction: discord.Interaction) -> None:
        await forget(interaction)

    tree.add_command(moa)
    tree.add_command(moa_forget)


def _option(option: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        option["name"],
        int(option["type"]),
        option.get("description", ""),
        bool(option.get("required", False)),
        tuple((c["name"], c["value"]) for c in option.get("choices") or ()),
        option.get("min_length"),
        option.get("max_length"),
        bool(option.get("autocomplete", False)),
        tuple(_option(o) for o in option.get("options") or ()),
    )


def fingerprint(commands: Sequence[Mapping[str, Any]]) -> str:
    """A hash of what users see of the commands; the same for local definitions and Discord's copy of them.

    Fields Discord fills in by itself (ids, versions, localizations, defaults) are left out.
    """
    canonical = sorted(
        (
            c["name"],
            int(c.get("type", 1)),
            c.get("description", ""),
            tuple(_option(o) for o in c.get("options") or ()),
        )
        for c in commands
    )
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:16]


async def sync_commands(tree: app_commands.CommandTree[Any], guild_ids: Sequence[int]) -> int:
    """Sync to `guild_ids` (instant) or globally (Discord may take up to an hour); returns how many scopes changed.

    A scope that fails (the bot is not in that guild, Discord is down) is logged and skipped: the bot still
    answers mentions, and the next start tries again.
    """
    scopes: list[discord.Object | None] = [discord.Object(id=g) for g in guild_ids] or [None]
    synced = 0
    for guild in scopes:
        where = f"guild {guild.id}" if guild is not None else "global"
        if guild is not None:
            tree.copy_global_to(guild=guild)
        local = fingerprint([c.to_dict(tree) for c in tree.get_commands(guild=guild)])
        remote: str | None
        try:
            remote = fingerprint([c.to_dict() for c in await tree.fetch_commands(guild=guild)])
        except discord.HTTPException as exc:
            # cannot tell what is registered (a proxy without the GET route, a hiccup): sync to be sure
            log.warning("could not fetch slash commands (%s): %s %s; syncing", where, exc.status, exc.code)
            remote = None
        if remote == local:
            log.info("slash commands (%s) unchanged (%s); not synced", where, local)
            continue
        try:
            await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            log.error("could not sync slash commands (%s): %s %s %s", where, exc.status, exc.code, exc.text)
            continue
        synced += 1
        log.info("slash commands (%s) synced (%s, was %s)", where, local, remote)
    return synced
