"""`moa-bot doctor`: one line per check, exit 1 if any fails."""

from __future__ import annotations

import sys

from bot.config import Settings
from moa.errors import MoaError
from moa.presets import TOGETHER, load_catalog, split_model
from moa.providers.registry import ProviderRegistry
from storage import Store

TIMEOUT_S = 10.0


async def doctor(settings: Settings) -> int:
    failures = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", file=sys.stdout, flush=True)

    catalog = load_catalog(settings.config_path)
    report(True, "presets", f"{len(catalog.presets)} loaded, default {settings.preset!r}")
    try:
        async with Store(settings.db_path) as store:
            report(await store.writable(), "database", str(settings.db_path))
    except MoaError as exc:
        report(False, "database", str(exc))

    if not settings.together_api_key and not settings.together_base_url:
        report(False, "together", "TOGETHER_API_KEY is not set; set it to your Together API key")
    registry = ProviderRegistry(
        catalog.providers,
        together_api_key=settings.together_api_key,
        together_base_url=settings.together_base_url,
    )
    try:
        wanted: dict[str, set[str]] = {}
        for model in {m for p in catalog.presets.values() for m in p.models}:
            name, bare = split_model(model, catalog.providers)
            wanted.setdefault(name, set()).add(bare)
        for name, models in sorted(wanted.items()):
            provider, _ = registry.resolve(f"{name}:x" if name != TOGETHER else "x")
            try:
                available = set(await provider.list_models(TIMEOUT_S))
            except MoaError as exc:
                report(False, f"provider {name}", str(exc))
                continue
            missing = sorted(models - available)
            if missing:
                report(False, f"provider {name}", f"models not found: {', '.join(missing)}")
            else:
                report(True, f"provider {name}", f"reachable, {len(models)} models found")
    finally:
        await registry.aclose()

    from bot.platform_checks import check_platforms

    for ok, what, detail in await check_platforms(settings, TIMEOUT_S):
        report(ok, what, detail)
    return 1 if failures else 0
