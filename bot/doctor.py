"""`moa-bot doctor`: one line per check, exit 1 if any fails."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from adapters.openai_api.keys import ApiKey
from bot.config import Settings
from bot.wiring import catalog_for
from moa.errors import MoaError, ProviderError
from moa.channels import ChannelSettings
from moa.presets import split_model
from moa.providers.registry import ProviderRegistry
from storage import open_store

TIMEOUT_S = 10.0


async def doctor(settings: Settings) -> int:
    failures = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", file=sys.stdout, flush=True)

    catalog = catalog_for(settings)
    report(True, "presets", f"{len(catalog.presets)} loaded, default {settings.preset!r}")
    standing = catalog.system_prompt
    report(True, "system prompt", f"{len(standing):,} characters" if standing else "none")
    for channel in sorted(catalog.channels.values(), key=lambda c: (c.platform, c.channel)):
        report(True, f"channel {channel.label}", describe_channel(channel, settings.preset, standing))
    report(True, "api", describe_api_keys(settings.api_keys))
    try:
        async with open_store(settings.database) as store:
            schema, health = await store.schema_status(), await store.health()
        detail = schema.describe() if health == "ok" else f"{schema.describe()}; {health}"
        report(health == "ok" and not schema.pending, "database", detail)
    except MoaError as exc:
        report(False, "database", str(exc))

    if not settings.together_api_key and not settings.together_base_url:
        key_page = "https://api.together.ai/settings/api-keys"
        report(False, "together", f"TOGETHER_API_KEY is not set; create one at {key_page}")
    registry = ProviderRegistry(
        catalog.providers,
        together_api_key=settings.together_api_key,
        together_base_url=settings.together_base_url,
    )
    used_by: dict[str, set[str]] = {}  # model id, as presets write it -> the presets that use it
    for preset in catalog.presets.values():
        for model in preset.models:
            used_by.setdefault(model, set()).add(preset.name)
    wanted: dict[str, dict[str, str]] = {}  # provider -> the id it knows the model by -> the model id
    for model in used_by:
        name, bare = split_model(model, catalog.providers)
        wanted.setdefault(name, {})[bare] = model
    try:
        for name, models in sorted(wanted.items()):
            provider, _ = registry.resolve(next(iter(models.values())))
            try:
                available = set(await provider.list_models(TIMEOUT_S))
            except ProviderError as exc:
                report(False, f"provider {name}", exc.detail)
                continue
            missing = sorted(set(models) - available)
            if missing:
                found = "; ".join(f"{models[m]} ({_used_by(used_by[models[m]])})" for m in missing)
                report(False, f"provider {name}", f"models not found: {found}")
            else:
                report(True, f"provider {name}", f"reachable, {len(models)} models found")
    finally:
        await registry.aclose()

    from bot.platform_checks import check_platforms

    for ok, what, detail in await check_platforms(settings, TIMEOUT_S):
        report(ok, what, detail)
    return 1 if failures else 0


def describe_api_keys(keys: Sequence[ApiKey]) -> str:
    """The OpenAI-compatible API's keys by name (never the keys), with what sets each apart."""
    if not keys:
        return "off (MOA_API_KEYS or [api.keys.NAME] in the MOA_CONFIG file turns it on)"
    described = []
    for key in keys:
        marks = (["its own rate"] if key.rate else []) + ([f"also {key.scope}'s team knowledge"] if key.scope else [])
        described.append(f"{key.name} ({', '.join(marks)})" if marks else key.name)
    return f"/v1 with {len(keys)} key{'s' if len(keys) > 1 else ''}: {', '.join(described)}"


def _used_by(presets: set[str]) -> str:
    names = ", ".join(sorted(presets))
    return f"used by preset{'s' if len(presets) > 1 else ''}: {names}"


def describe_channel(channel: ChannelSettings, default_preset: str, standing: str) -> str:
    """A channel's effective settings in one line: what it sets, and what it inherits."""
    preset = channel.preset or f"{default_preset} (the default)"
    if channel.system_prompt:
        prompt = f"its own system prompt ({len(channel.system_prompt):,} characters)"
    else:
        prompt = "the deployment's system prompt" if standing else "no system prompt"
    parts = [f"preset {preset}", prompt, "knowledge channel" if channel.knowledge else "answers when asked"]
    if channel.suggested_prompts:
        parts.append(f"{len(channel.suggested_prompts)} suggested prompts")
    return "; ".join(parts)
