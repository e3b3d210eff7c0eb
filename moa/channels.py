"""Per-channel settings from the TOML file: which preset, standing instructions, knowledge, suggested prompts.

    [channels."C0123ABCD"]            # a Slack channel (its id: C…, G… or D…)
    preset = "lite"
    system_prompt = "Answer in French; the readers are on-call engineers."
    knowledge = true                  # answer every top-level message, as MOA_KNOWLEDGE_CHANNELS does
    suggested_prompts = ["Who owns billing?", "How do we rotate certificates?"]

    [channels."discord:123456789"]    # a Discord channel (its numeric id); its threads inherit it

A thread inherits its channel's settings; `preset:NAME` at the start of a question still wins.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from moa.errors import ConfigError

MAX_SUGGESTED_PROMPTS = 4  # what Slack's assistant pane shows

_SLACK_ID = re.compile(r"[CDG][A-Z0-9]{2,}")
_DISCORD_ID = re.compile(r"discord:(\d{5,21})")
_KEYS: dict[str, type] = {
    "preset": str,
    "system_prompt": str,
    "knowledge": bool,
    "suggested_prompts": list,
}


@dataclass(frozen=True)
class ChannelSettings:
    platform: str  # "slack" | "discord"
    channel: str  # the platform's channel id
    preset: str | None = None
    system_prompt: str | None = None  # replaces the deployment's for questions in this channel
    knowledge: bool = False
    suggested_prompts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The channel as the TOML file names it."""
        return self.channel if self.platform == "slack" else f"discord:{self.channel}"


def parse_channels(
    tables: Mapping[str, Any], *, source: str, presets: Collection[str]
) -> dict[tuple[str, str], ChannelSettings]:
    """`[channels."…"]` tables, keyed by (platform, channel id). Mistakes stop the start with one line."""
    found: dict[tuple[str, str], ChannelSettings] = {}
    for name, table in tables.items():
        where = f'{source}: [channels."{name}"]'
        if not isinstance(table, dict):
            raise ConfigError(f'{where}: must be a table like [channels."C0123ABCD"]')
        platform, channel = _where(name, where)
        for key, value in table.items():
            if key not in _KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(_KEYS)}")
            expected = _KEYS[key]
            if type(value) is not expected:  # exact types: a bool is no string, and TOML's true is no list
                kind = {"str": "string", "bool": "true or false", "list": "list of strings"}[expected.__name__]
                raise ConfigError(f"{where}: {key} must be a {kind}, not {value!r}")
        preset = table.get("preset")
        if preset is not None and preset not in presets:
            raise ConfigError(f"{where}: preset {preset!r} is not defined; known presets: {', '.join(sorted(presets))}")
        prompts = table.get("suggested_prompts", [])
        if not all(isinstance(p, str) and p.strip() for p in prompts) or len(prompts) > MAX_SUGGESTED_PROMPTS:
            raise ConfigError(
                f"{where}: suggested_prompts must be a list of at most {MAX_SUGGESTED_PROMPTS} non-empty strings"
            )
        system_prompt = table.get("system_prompt")
        found[(platform, channel)] = ChannelSettings(
            platform,
            channel,
            preset=preset,
            system_prompt=system_prompt.strip() if system_prompt and system_prompt.strip() else None,
            knowledge=table.get("knowledge", False),
            suggested_prompts=tuple(p.strip() for p in prompts),
        )
    return found


def _where(name: str, where: str) -> tuple[str, str]:
    if _SLACK_ID.fullmatch(name):
        return "slack", name
    match = _DISCORD_ID.fullmatch(name)
    if match:
        return "discord", match.group(1)
    raise ConfigError(
        f'{where}: not a channel id; write a Slack channel\'s id ([channels."C0123ABCD"]) or a Discord channel\'s as '
        f'[channels."discord:123456789012345678"]'
    )
