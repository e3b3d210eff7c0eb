"""Presets: built-ins, the TOML file, and one clear line for every mistake in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moa.errors import ConfigError
from moa.presets import BUILTIN_PRESETS, load_catalog, parse_catalog, split_model
from moa.providers.demo import DemoProvider
from moa.providers.registry import ProviderRegistry


def test_builtins() -> None:
    assert set(BUILTIN_PRESETS) == {"default", "seed", "lite", "self", "demo"}
    seed = BUILTIN_PRESETS["seed"]
    assert seed.proposers == (
        "Qwen/Qwen2-72B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "databricks/dbrx-instruct",
    )
    assert seed.aggregator == "mistralai/Mixtral-8x22B-Instruct-v0.1" and seed.layers == 2
    assert BUILTIN_PRESETS["lite"].straggler_grace_s > 0
    assert len(set(BUILTIN_PRESETS["self"].proposers)) == 1


def test_toml_adds_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "moa.toml"
    path.write_text(
        """
[presets.team]
proposers = ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "local:llama3.1"]
aggregator = "Qwen/Qwen2.5-72B-Instruct-Turbo"
layers = 3
straggler_grace_s = 3.0

[presets.default]
temperature = 0.2

[providers.local]
base_url = "http://localhost:11434/v1"
api_key_env = "OLLAMA_API_KEY"
"""
    )
    catalog = load_catalog(path)
    team = catalog.get("team")
    assert team.layers == 3 and team.straggler_grace_s == 3.0 and team.retries == 3
    assert catalog.get("default").temperature == 0.2
    assert catalog.get("default").proposers == BUILTIN_PRESETS["default"].proposers
    assert split_model("local:llama3.1", catalog.providers) == ("local", "llama3.1")
    assert split_model("Qwen/Qwen2.5-72B-Instruct-Turbo", catalog.providers)[0] == "together"
    registry = ProviderRegistry(
        catalog.providers,
        together_api_key="k",
        together_base_url=None,
        environ={"OLLAMA_API_KEY": "ollama-key"},
    )
    provider, model = registry.resolve("local:llama3.1")
    assert (provider.name, model) == ("local", "llama3.1")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[presets.x]\nproposers = "a/b"\naggregator = "a/b"',
            "[presets.x]: proposers must be a list, not str 'a/b'",
        ),
        (
            '[presets.x]\nproposers = ["a/b"]\naggregator = "a/b"\nlayers = "2"',
            "layers must be a whole number, not str '2'",
        ),
        ('[presets.x]\nproposers = ["a/b"]', "aggregator is missing"),
        (
            '[presets.x]\nproposers = ["a/b"]\naggregator = "a/b"\nmin_proposers = 2',
            "min_proposers must be between",
        ),
        (
            '[presets.x]\nproposers = ["gpu:llama"]\naggregator = "a/b"',
            "provider 'gpu', which is not declared",
        ),
        ('[providers.local]\napi_key_env = "K"', "base_url is missing"),
        ('[providers.demo]\nbase_url = "http://x"', "'demo' is built in; give the provider another name"),
        ('[providers.local]\nbase_url = "http://x"\nkey = "K"', "unknown key 'key'"),
        ('[preset.x]\nproposers = ["a/b"]', "unknown table 'preset'"),
        ("[presets.x\n", "not valid TOML"),
    ],
)
def test_mistakes_name_file_key_and_fix(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "moa.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="unknown preset 'x'; known presets: default, demo, lite, seed, self"):
        parse_catalog({}, source="t").get("x")


def test_demo_models_go_to_the_built_in_demo_provider_with_no_configuration() -> None:
    catalog = load_catalog(None)
    demo = catalog.get("demo")
    assert all(split_model(m, catalog.providers)[0] == "demo" for m in demo.models)
    registry = ProviderRegistry({}, together_api_key=None, together_base_url=None)
    provider, model = registry.resolve(demo.aggregator)
    assert (type(provider).__name__, model) == ("DemoProvider", "omega")


def test_a_toml_file_keeps_the_demo_preset_working(tmp_path: Path) -> None:
    path = tmp_path / "moa.toml"
    path.write_text('[presets.team]\nproposers = ["a/b"]\naggregator = "a/b"\n')
    catalog = load_catalog(path)
    assert split_model(catalog.get("demo").aggregator, catalog.providers) == ("demo", "omega")


async def test_demo_drafts_finish_one_after_another_and_say_they_are_canned() -> None:
    provider = DemoProvider()
    finished: list[str] = []

    async def draft(model: str) -> None:
        completion = await provider.complete(
            model, [{"role": "user", "content": "hi"}], temperature=0.7, max_tokens=512, timeout_s=10
        )
        assert "no language model was called" in completion.text and "hi" in completion.text
        finished.append(model)

    await asyncio.gather(*(draft(m) for m in ("gamma", "beta", "alpha")))
    assert finished == ["alpha", "beta", "gamma"]
