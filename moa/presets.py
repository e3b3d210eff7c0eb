"""Presets: named Mixture-of-Agents configurations, built in or loaded from a TOML file (`MOA_CONFIG`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moa.channels import ChannelSettings, parse_channels
from moa.errors import ConfigError
from moa.policy import UserRate
from moa.prompts import AGGREGATE_AND_SYNTHESIZE

TOGETHER = "together"
DEMO = "demo"  # built in: canned answers, no key, no network (`moa.providers.demo`)


@dataclass(frozen=True)
class Preset:
    name: str
    proposers: tuple[str, ...]
    aggregator: str
    layers: int = 2
    temperature: float = 0.7
    aggregator_temperature: float | None = None  # None: `temperature`; set by a question's overrides only
    proposer_max_tokens: int = 512
    aggregator_max_tokens: int = 2048
    timeout_s: float = 60.0
    retries: int = 3
    min_proposers: int = 1
    straggler_grace_s: float = 0.0  # 0: wait for every proposer
    aggregator_prompt: str = AGGREGATE_AND_SYNTHESIZE

    @property
    def models(self) -> tuple[str, ...]:
        return (*self.proposers, self.aggregator)


@dataclass(frozen=True)
class ProviderConfig:
    """An OpenAI-compatible chat-completions server, named in model ids as `name:model`."""

    name: str
    base_url: str | None = None  # None: the SDK's (Together)
    api_key_env: str | None = None


BUILTIN_PROVIDERS: dict[str, ProviderConfig] = {
    TOGETHER: ProviderConfig(TOGETHER),  # its base URL comes from TOGETHER_BASE_URL, its key from TOGETHER_API_KEY
    DEMO: ProviderConfig(DEMO),
}


@dataclass(frozen=True)
class ApiKeyConfig:
    """A key of the OpenAI-compatible API, `[api.keys.NAME]`: the variable holding it (never the key itself:
    the file is not a place for secrets) and, optionally, a rate of its own instead of MOA_USER_RATE and a channel
    whose team knowledge (private or not) its answers may use besides the public knowledge every key sees."""

    name: str
    key_env: str
    rate: UserRate | None = None
    scope: str = ""


@dataclass(frozen=True)
class Catalog:
    presets: dict[str, Preset]
    providers: dict[str, ProviderConfig] = field(default_factory=lambda: dict(BUILTIN_PROVIDERS))
    channels: dict[tuple[str, str], ChannelSettings] = field(default_factory=dict)  # (platform, channel id)
    system_prompt: str = ""  # standing instructions for every model; a channel's own replaces it there

    def channel(self, platform: str, *channels: str) -> ChannelSettings | None:
        """The settings of the first of `channels` that has some (a thread's own id, then its channel's)."""
        for channel in channels:
            found = self.channels.get((platform, channel)) if channel else None
            if found is not None:
                return found
        return None

    def knowledge_channels(self, platform: str) -> frozenset[str]:
        """Channels whose settings say `knowledge = true`."""
        return frozenset(c.channel for c in self.channels.values() if c.platform == platform and c.knowledge)
    api_keys: dict[str, ApiKeyConfig] = field(default_factory=dict)

    def get(self, name: str) -> Preset:
        try:
            return self.presets[name]
        except KeyError:
            known = ", ".join(sorted(self.presets))
            raise ConfigError(f"unknown preset {name!r}; known presets: {known}") from None


_LLAMA_70B = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
_QWEN_72B = "Qwen/Qwen2.5-72B-Instruct-Turbo"

BUILTIN_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="default",
            proposers=(
                _LLAMA_70B,
                _QWEN_72B,
                "deepseek-ai/DeepSeek-V3",
                "mistralai/Mistral-Small-24B-Instruct-2501",
            ),
            aggregator=_QWEN_72B,
        ),
        # Exactly the reference models and aggregator of Together's MoA guide.
        Preset(
            name="seed",
            proposers=(
                "Qwen/Qwen2-72B-Instruct",
                _LLAMA_70B,
                "mistralai/Mixtral-8x22B-Instruct-v0.1",
                "databricks/dbrx-instruct",
            ),
            aggregator="mistralai/Mixtral-8x22B-Instruct-v0.1",
        ),
        # Small, fast proposers; stragglers are cut 2 s after two drafts are in.
        Preset(
            name="lite",
            proposers=(
                "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
                "Qwen/Qwen2.5-7B-Instruct-Turbo",
                "mistralai/Mistral-7B-Instruct-v0.3",
            ),
            aggregator=_LLAMA_70B,
            proposer_max_tokens=384,
            aggregator_max_tokens=1024,
            timeout_s=30.0,
            min_proposers=2,
            straggler_grace_s=2.0,
        ),
        # Self-MoA (Li et al., 2025): one strong model sampled several times, then aggregating its own drafts.
        Preset(
            name="self",
            proposers=(_QWEN_72B,) * 4,
            aggregator=_QWEN_72B,
            temperature=0.9,
        ),
        # Offline: clearly labelled canned text from the built-in demo provider, to try moa-bot without a key.
        Preset(
            name=DEMO,
            proposers=(f"{DEMO}:alpha", f"{DEMO}:beta", f"{DEMO}:gamma"),
            aggregator=f"{DEMO}:omega",
            timeout_s=10.0,
        ),
    )
}

_TYPES: dict[str, tuple[type, ...]] = {
    "proposers": (list,),
    "aggregator": (str,),
    "layers": (int,),
    "temperature": (int, float),
    "proposer_max_tokens": (int,),
    "aggregator_max_tokens": (int,),
    "timeout_s": (int, float),
    "retries": (int,),
    "min_proposers": (int,),
    "straggler_grace_s": (int, float),
    "aggregator_prompt": (str,),
}
_KIND_NAMES = {(list,): "a list", (str,): "a string", (int,): "a whole number", (int, float): "a number"}
_PROVIDER_KEYS = {"base_url", "api_key_env"}
_API_KEY_KEYS = {"key_env", "rate", "scope"}


def split_model(model: str, providers: dict[str, ProviderConfig]) -> tuple[str, str]:
    """`name:model` -> (name, model) for a declared provider; anything else is a Together model id."""
    prefix, sep, rest = model.partition(":")
    if sep and prefix in providers:
        return prefix, rest
    return TOGETHER, model


def load_catalog(path: Path | None) -> Catalog:
    """Built-in presets, overridden and extended by the TOML file at `path` when given."""
    if path is None:
        return Catalog(dict(BUILTIN_PRESETS), dict(BUILTIN_PROVIDERS))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"MOA_CONFIG: {path} does not exist; fix the path or unset MOA_CONFIG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"MOA_CONFIG: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    return parse_catalog(data, source=str(path))


def parse_catalog(data: dict[str, Any], *, source: str) -> Catalog:
    unknown = set(data) - {"presets", "providers", "channels", "system_prompt", "api"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown table {sorted(unknown)[0]!r}; only system_prompt, [presets.NAME], "
            '[providers.NAME], [channels."ID"] and [api.keys.NAME] are read'
        )
    system_prompt = data.get("system_prompt", "")
    if not isinstance(system_prompt, str):
        raise ConfigError(f'{source}: system_prompt must be a string, like system_prompt = "Answer briefly."')
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in _tables(data, "providers", source).items():
        where = f"{source}: [providers.{name}]"
        if name in BUILTIN_PROVIDERS:
            raise ConfigError(f"{where}: {name!r} is built in; give the provider another name")
        for key, value in table.items():
            if key not in _PROVIDER_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: base_url, api_key_env")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: {key} must be a non-empty string")
        if "base_url" not in table:
            raise ConfigError(f'{where}: base_url is missing; add base_url = "http://host:port/v1"')
        providers[name] = ProviderConfig(name, table["base_url"], table.get("api_key_env"))

    presets = dict(BUILTIN_PRESETS)
    for name, table in _tables(data, "presets", source).items():
        presets[name] = _parse_preset(name, table, presets.get(name), f"{source}: [presets.{name}]")
    for preset in presets.values():
        for model in preset.models:
            prefix, sep, _ = model.partition(":")
            if sep and "/" not in prefix and prefix not in providers:
                raise ConfigError(
                    f"{source}: [presets.{preset.name}] model {model!r} names provider {prefix!r}, which is not "
                    f"declared; add a [providers.{prefix}] table with base_url"
                )
    channels = parse_channels(_tables(data, "channels", source), source=source, presets=presets)
    return Catalog(
        presets,
        providers,
        channels=channels,
        system_prompt=system_prompt.strip(),
        api_keys=_parse_api(data.get("api", {}), source),
    )


def _parse_api(api: Any, source: str) -> dict[str, ApiKeyConfig]:
    if not isinstance(api, dict):
        raise ConfigError(f"{source}: api must be a table holding [api.keys.NAME] tables")
    unknown = set(api) - {"keys"}
    if unknown:
        raise ConfigError(f"{source}: [api] unknown key {sorted(unknown)[0]!r}; only [api.keys.NAME] tables are read")
    keys: dict[str, ApiKeyConfig] = {}
    tables = api.get("keys", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{source}: api.keys must be tables like [api.keys.NAME]")
    for name, table in tables.items():
        where = f"{source}: [api.keys.{name}]"
        for key, value in table.items():
            if key not in _API_KEY_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: key_env, rate, scope")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: {key} must be a non-empty string")
        if "key_env" not in table:
            raise ConfigError(
                f'{where}: key_env is missing; add key_env = "VARIABLE" naming the environment variable that '
                "holds the key (the key itself never goes in this file)"
            )
        try:
            rate = UserRate.parse(table["rate"]) if "rate" in table else None
        except ValueError as exc:
            raise ConfigError(f"{where}: rate {exc}") from None
        keys[name] = ApiKeyConfig(name, table["key_env"].strip(), rate, table.get("scope", "").strip())
    return keys


def _tables(data: dict[str, Any], key: str, source: str) -> dict[str, dict[str, Any]]:
    tables = data.get(key, {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{source}: {key} must be tables like [{key}.NAME]")
    return tables


def _parse_preset(name: str, table: dict[str, Any], base: Preset | None, where: str) -> Preset:
    for key, value in table.items():
        if key not in _TYPES:
            allowed = ", ".join(_TYPES)
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {allowed}")
        expected = _TYPES[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = _KIND_NAMES[expected]
            raise ConfigError(f"{where}: {key} must be {kind}, not {type(value).__name__} {value!r}")
    values: dict[str, Any] = {k: v for k, v in table.items()}
    if "proposers" in values:
        if not values["proposers"] or not all(isinstance(m, str) and m for m in values["proposers"]):
            raise ConfigError(f'{where}: proposers must be a non-empty list of model ids, like ["org/model"]')
        values["proposers"] = tuple(values["proposers"])
    if base is None:
        for required in ("proposers", "aggregator"):
            if required not in values:
                raise ConfigError(f"{where}: {required} is missing; a new preset needs proposers and aggregator")
        preset = Preset(name=name, **values)
    else:
        preset = replace(base, **values)
    _check_ranges(preset, where)
    return preset


def _check_ranges(p: Preset, where: str) -> None:
    checks = [
        (p.layers >= 1, "layers must be 1 or more"),
        (0.0 <= p.temperature <= 2.0, "temperature must be between 0 and 2"),
        (p.proposer_max_tokens >= 1, "proposer_max_tokens must be 1 or more"),
        (p.aggregator_max_tokens >= 1, "aggregator_max_tokens must be 1 or more"),
        (p.timeout_s > 0, "timeout_s must be more than 0"),
        (p.retries >= 0, "retries must be 0 or more"),
        (1 <= p.min_proposers <= len(p.proposers), "min_proposers must be between 1 and the number of proposers"),
        (p.straggler_grace_s >= 0, "straggler_grace_s must be 0 (off) or more"),
        (bool(p.aggregator.strip()), "aggregator must be a model id"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")

