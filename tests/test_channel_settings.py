"""Per-channel settings and the team's standing instructions: parsed strictly, applied to every model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.wiring import catalog_for, knowledge_channels
from moa.conversation import ConversationKey, Question
from moa.errors import ConfigError
from moa.presets import parse_catalog
from moa.prompts import STANDING_INSTRUCTIONS
from tests.fakes.llm import FakeLLM
from tests.core import core_settings, open_test_core
from tests.test_answering import RecordingSink

SLACK = ConversationKey("slack", "T1", "C0SUPPORT", "100.1")


def catalog(channels: dict[str, dict[str, object]], **top: object):  # type: ignore[no-untyped-def]
    data = {
        "presets": {"test": {"proposers": ["p/a", "p/b"], "aggregator": "agg/x"},
                    "solo": {"proposers": ["p/a"], "aggregator": "agg/x"}},
        "channels": channels,
        **top,
    }
    return parse_catalog(data, source="moa.toml")


def test_channels_are_read_by_platform() -> None:
    c = catalog({
        "C0SUPPORT": {"preset": "solo", "system_prompt": " Be brief. ", "knowledge": True,
                      "suggested_prompts": ["Who owns billing?"]},
        "discord:123456789012": {"knowledge": False},
    }, system_prompt="Answer in English.")
    support = c.channel("slack", "C0SUPPORT")
    assert support is not None and support.preset == "solo" and support.system_prompt == "Be brief."
    assert support.suggested_prompts == ("Who owns billing?",) and c.system_prompt == "Answer in English."
    assert c.channel("discord", "999", "123456789012") is not None  # a thread finds its channel's settings
    assert c.channel("slack", "123456789012") is None
    assert c.knowledge_channels("slack") == {"C0SUPPORT"} and c.knowledge_channels("discord") == frozenset()


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({"general": {}}, 'moa.toml: [channels."general"]: not a channel id; write a Slack channel\'s id'),
        ({"discord:abc": {}}, 'not a channel id'),
        ({"C0X1": {"presets": "lite"}}, "unknown key 'presets'; allowed keys: preset, system_prompt, knowledge"),
        ({"C0X1": {"knowledge": "yes"}}, "knowledge must be a true or false, not 'yes'"),
        ({"C0X1": {"preset": "nope"}}, "preset 'nope' is not defined; known presets:"),
        ({"C0X1": {"suggested_prompts": ["a", "b", "c", "d", "e"]}}, "at most 4 non-empty strings"),
        ({"C0X1": {"suggested_prompts": "ask me"}}, "suggested_prompts must be a list of strings"),
    ],
)
def test_mistakes_in_channel_settings_name_the_fix(channels: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        catalog(channels)
    assert message in str(raised.value) and str(raised.value).startswith("moa.toml: ")


def test_system_prompt_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "moa.toml"
    config.write_text('system_prompt = "From the file."\n[channels."C0K"]\nknowledge = true\n')
    env = {"MOA_CONFIG": str(config), "MOA_KNOWLEDGE_CHANNELS": "C0ENV"}
    settings = load_settings(env, dotenv=None)
    assert catalog_for(settings).system_prompt == "From the file."
    settings = load_settings({**env, "MOA_SYSTEM_PROMPT": "From the environment."}, dotenv=None)
    assert catalog_for(settings).system_prompt == "From the environment."
    assert knowledge_channels(settings, catalog_for(settings), "slack") == {"C0ENV", "C0K"}


@pytest.fixture
async def answerer(fake_llm: FakeLLM, tmp_path: Path):  # type: ignore[no-untyped-def]
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    settings = core_settings(
        fake_llm,
        tmp_path,
        presets={"solo": {"proposers": ["p/a"], "aggregator": "agg/x"}},
        channels={"C0SUPPORT": {"preset": "solo", "system_prompt": "Readers are on-call engineers."}},
        system_prompt="Always answer in English.",
    )
    async with open_test_core(settings) as core:
        yield core.answerer


def systems(llm: FakeLLM, model: str) -> list[str]:
    return [m["content"] for r in llm.requests_for(model) for m in r.messages if m["role"] == "system"]


async def test_every_model_gets_the_standing_instructions_before_the_conversation(answerer, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    await answerer.answer(Question(ConversationKey("slack", "T1", "C0OTHER", "1.1"), "U1", "hi"), RecordingSink())
    expected = STANDING_INSTRUCTIONS.format(instructions="Always answer in English.")
    for model in ("p/a", "p/b"):
        [request] = fake_llm.requests_for(model)
        assert request.messages == [{"role": "system", "content": expected}, {"role": "user", "content": "hi"}]
    [aggregator] = systems(fake_llm, "agg/x")
    # kept with the references: the instructions, then the drafts the aggregator reads
    assert aggregator.startswith(expected) and "[p/a] answer to: hi" in aggregator


async def test_a_channel_sets_its_preset_and_its_own_instructions(answerer, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    run_id = await answerer.answer(Question(SLACK, "U1", "hi"), RecordingSink())
    assert fake_llm.requests_for("p/b") == []  # the channel's preset "solo" asks p/a alone
    [system] = systems(fake_llm, "p/a")
    assert "Readers are on-call engineers." in system and "Always answer in English." not in system
    assert run_id is not None


async def test_a_preset_named_in_the_question_wins_over_the_channel(answerer, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    await answerer.answer(Question(SLACK, "U1", "preset:test hi"), RecordingSink())
    assert len(fake_llm.requests_for("p/b")) == 1


async def test_a_discord_thread_inherits_its_channels_settings(fake_llm: FakeLLM, tmp_path: Path) -> None:
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    settings = core_settings(fake_llm, tmp_path, channels={"discord:123456789012": {"system_prompt": "Thread rules."}})
    async with open_test_core(settings) as core:
        thread = ConversationKey("discord", "G1", "555555555555")
        await core.answerer.answer(Question(thread, "U1", "hi", parent_channel="123456789012"), RecordingSink())
    assert "Thread rules." in systems(fake_llm, "p/a")[0]
