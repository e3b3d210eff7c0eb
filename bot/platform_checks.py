"""Reachability checks for the chat platforms, used by `moa-bot doctor`. Each adapter adds its own."""

from __future__ import annotations

from bot.config import Settings

Check = tuple[bool, str, str]


async def check_platforms(settings: Settings, timeout_s: float) -> list[Check]:
    checks: list[Check] = []
    if not settings.slack_bot_token and not settings.discord_bot_token:
        checks.append((True, "platforms", "no SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN set; only the CLI will work"))
    return checks
