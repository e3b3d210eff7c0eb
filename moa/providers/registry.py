"""Providers by configured name; model ids with a `name:` prefix are routed to the named provider."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from moa.presets import DEMO, TOGETHER, ProviderConfig, split_model
from moa.providers.base import Provider
from moa.providers.demo import DemoProvider
from moa.providers.openai_compatible import OpenAICompatibleProvider

ProviderFactory = Callable[[ProviderConfig, str | None], Provider]


def _openai_compatible(config: ProviderConfig, api_key: str | None) -> Provider:
    return OpenAICompatibleProvider(config.name, api_key=api_key, base_url=config.base_url)


def _demo_factory(config: ProviderConfig, api_key: str | None) -> Provider:
    return DemoProvider(config.name)


# providers that exist without configuration, whatever `factory` makes for the configured ones
BUILTIN_FACTORIES: dict[str, ProviderFactory] = {DEMO: _demo_factory}


class ProviderRegistry:
    """Creates each provider on first use and closes them all in `aclose`."""

    def __init__(
        self,
        configs: Mapping[str, ProviderConfig],
        *,
        together_api_key: str | None,
        together_base_url: str | None,
        environ: Mapping[str, str] | None = None,
        factory: ProviderFactory = _openai_compatible,
    ) -> None:
        self._configs = dict(configs)
        self._configs.update({name: ProviderConfig(name) for name in BUILTIN_FACTORIES})
        self._configs[TOGETHER] = ProviderConfig(TOGETHER, together_base_url)
        self._together_key = together_api_key
        self._environ = os.environ if environ is None else environ
        self._factory = factory
        self._live: dict[str, Provider] = {}

    def resolve(self, model: str) -> tuple[Provider, str]:
        name, bare = split_model(model, self._configs)
        provider = self._live.get(name)
        if provider is None:
            config = self._configs[name]
            key = self._together_key if name == TOGETHER else self._key_for(config)
            factory = BUILTIN_FACTORIES.get(name, self._factory)
            provider = self._live[name] = factory(config, key)
        return provider, bare

    def _key_for(self, config: ProviderConfig) -> str | None:
        return self._environ.get(config.api_key_env) if config.api_key_env else None

    async def aclose(self) -> None:
        live, self._live = self._live, {}
        for provider in live.values():
            await provider.aclose()
