"""Reachability checks for the chat platforms, used by `moa-bot doctor`. Each adapter adds its own."""

from __future__ import annotations

from bot.config import Settings

Check = tuple[bool, str, str]


async def check_platforms(settings: Settings, timeout_s: float) -> list[Check]:
    checks: list[Check] = []
    if not settings.slack_bot_token and not settings.discord_bot_token:
        checks.append((True, "platforms", "no SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN set; only the CLI will work"))
    if settings.slack_bot_token:
        from adapters.slack import check_auth

        ok, detail = await check_auth(settings.slack_bot_token, settings.slack_api_url, timeout_s=timeout_s)
        mode = "Socket Mode" if settings.slack_app_token else "HTTP mode on POST /slack/events"
        checks.append((ok, "slack", f"{detail}; {mode}" if ok else detail))
    if settings.discord_bot_token:
        from adapters.discord import check_token

        ok, detail = await check_token(settings.discord_bot_token, settings.discord_api_base, timeout_s=timeout_s)
        checks.append((ok, "discord", detail))
    return checks
