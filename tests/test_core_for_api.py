"""The core's additions for front ends that hold the conversation themselves (the OpenAI-compatible API):
a caller's history, per-question overrides, the run's report on the final view, refusals that say why, and the
API keys' configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.wiring import Core
from moa.answering import Answerer, StopResult
from moa.conversation import ConversationKey, Overrides, Phase, Question, Refusal, RefusalReason
from moa.errors import ConfigError
from moa.events import ProposalDone, ProposalFailed
from moa.policy import UserRate
from moa.presets import load_catalog
from moa.prompts import with_references
from storage import Store
from tests.core import core_settings, open_test_core
from tests.fakes.llm import FakeLLM, Failure
from tests.helpers import eventually
from tests.test_answering import RecordingSink

KEY = ConversationKey("api", "team", "", "chatcmpl-1")
HISTORY = (
    {"role": "system", "content": "Answer like a pirate."},
    {"role": "user", "content": "What is WAL?"},
    {"role": "assistant", "content": "A log, arr."},
)


@pytest.fixture
async def core(fake_llm: FakeLLM, tmp_path: Path):  # type: ignore[no-untyped-def]
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    settings = core_settings(
        fake_llm,
        tmp_path,
        presets={"test": {"retries": 0}},
        TOGETHER_API_KEY="provider-secret-1234",  # masked wherever a provider's error echoes it
        MOA_MAX_QUESTION_CHARS="100",
        MOA_USER_RATE="off",
        MOA_ALLOWED_CHANNELS="C1",
        MOA_ALLOWED_USERS="U1",
        MOA_MAX_CONCURRENT="4",
    )
    async with open_test_core(settings) as core:
        yield core


@pytest.fixture
def store(core: Core) -> Store:
    return core.store


@pytest.fixture
def answerer(core: Core) -> Answerer:
    return core.answerer


def asked(text: str = "And in Postgres?", **kw: object) -> Question:
    return Question(KEY, "team", text, history=HISTORY, authorized=True, **kw)  # type: ignore[arg-type]


async def test_a_given_history_is_the_conversation_and_no_turn_is_stored(
    answerer: Answerer, store: Store, fake_llm: FakeLLM
) -> None:
    sink = RecordingSink()
    run_id = await answerer.answer(asked(), sink)
    assert sink.final.phase is Phase.DONE
    assert fake_llm.requests_for("p/a")[0].messages == [*HISTORY, {"role": "user", "content": "And in Postgres?"}]
    assert not await store.has_history(KEY)
    record = await store.get_run(run_id)
    assert record["status"] == "done" and record["question"] == "And in Postgres?"


async def test_a_given_history_takes_the_text_literally(answerer: Answerer, fake_llm: FakeLLM) -> None:
    for text in ("forget", "preset:nope what now?"):
        sink = RecordingSink()
        assert await answerer.answer(asked(text), sink) is not None
        assert sink.refusals == [] and sink.final.text == f"[agg/x] answer to: {text}"


async def test_overrides_change_the_aggregator_only(answerer: Answerer, fake_llm: FakeLLM) -> None:
    await answerer.answer(asked(overrides=Overrides(temperature=0.1, max_tokens=3)), RecordingSink())
    aggregator = fake_llm.requests_for("agg/x")[0].body
    proposer = fake_llm.requests_for("p/a")[0].body
    assert (aggregator["temperature"], aggregator["max_tokens"]) == (0.1, 3)
    assert (proposer["temperature"], proposer["max_tokens"]) == (0.7, 512)


async def test_the_final_view_reports_every_call(answerer: Answerer, fake_llm: FakeLLM) -> None:
    fake_llm.fail("p/b", Failure.http(500, message="upstream said provider-secret-1234"))
    sink = RecordingSink()
    await answerer.answer(asked(), sink)
    report = sink.final.report
    assert report is not None and report.done.text == sink.final.text
    done, failed = report.proposals
    assert isinstance(done, ProposalDone) and done.model == "p/a" and done.text == "[p/a] answer to: And in Postgres?"
    assert isinstance(failed, ProposalFailed) and "provider-secret-1234" not in failed.error and "***" in failed.error
    aggregator_reply = fake_llm.requests_for("agg/x")[0]
    assert report.aggregator_usage.completion_tokens == len(aggregator_reply.reply.split())
    assert report.aggregator_usage + done.usage == report.done.usage
    assert report.first_token_s is not None and 0 <= report.first_token_s <= report.aggregator_s


async def test_refusals_say_why(answerer: Answerer) -> None:
    cases = [
        (asked("x" * 101), RefusalReason.TOO_LONG),
        (asked("\u200b"), RefusalReason.NO_QUESTION),
        (asked(preset="nope"), RefusalReason.UNKNOWN_PRESET),
        (Question(KEY, "U1", "q"), RefusalReason.NOT_ALLOWED),  # not authorized: the allow-lists apply
    ]
    for question, reason in cases:
        sink = RecordingSink()
        await answerer.answer(question, sink)
        [refusal] = sink.refusals
        assert isinstance(refusal, Refusal) and refusal.reason is reason, refusal
    answerer.stop_intake()
    sink = RecordingSink()
    await answerer.answer(asked(), sink)
    assert isinstance(sink.refusals[0], Refusal) and sink.refusals[0].reason is RefusalReason.RESTARTING


async def test_a_question_s_own_rate_replaces_the_per_user_rate(answerer: Answerer) -> None:
    own = UserRate(1, 60.0)
    await answerer.answer(asked(rate=own), RecordingSink())
    sink = RecordingSink()
    await answerer.answer(asked(rate=own), sink)
    [refusal] = sink.refusals
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RATE_LIMITED
    assert refusal.retry_after_s is not None and 59 < refusal.retry_after_s <= 60
    assert "limit of 1 questions per 60 seconds" in refusal


async def test_a_run_stopped_as_cancelled_is_recorded_cancelled(
    answerer: Answerer, store: Store, fake_llm: FakeLLM
) -> None:
    fake_llm.script("p/a", latency=30)
    sink = RecordingSink()
    task = asyncio.create_task(answerer.answer(asked(), sink))
    while len(fake_llm.requests) < 2:
        await asyncio.sleep(0.01)
    run_id = sink.views[0].run_id
    assert answerer.stop(run_id, by="team", status="cancelled") is StopResult.STOPPED
    assert await asyncio.wait_for(task, 2) == run_id
    await eventually(lambda: fake_llm.in_flight == 0, within=1.0, what="every model call cancelled")
    record = await store.get_run(run_id)
    assert record["status"] == "cancelled"


def test_a_system_message_of_the_conversation_stays_first_with_the_references() -> None:
    messages = with_references(list(HISTORY), "Use the drafts:", ["draft one"])
    # one system message; its parts (the client's own, then the references) set apart by a rule
    assert messages[0] == {
        "role": "system", "content": "Answer like a pirate.\n\n---\n\nUse the drafts:\n\n1. draft one"
    }
    assert messages[1:] == list(HISTORY[1:])
    assert [m["role"] for m in with_references(list(HISTORY[1:]), "Use:", ["d"])] == ["system", "user", "assistant"]


def test_api_keys_are_read_from_the_file_by_variable(tmp_path: Path) -> None:
    path = tmp_path / "moa.toml"
    path.write_text('[api.keys.webui]\nkey_env = "WEBUI_KEY"\nrate = "5/minute"\n[api.keys.ci]\nkey_env = "CI_KEY"\n')
    keys = load_catalog(path).api_keys
    assert (keys["webui"].key_env, keys["webui"].rate) == ("WEBUI_KEY", UserRate(5, 60.0))
    assert (keys["ci"].key_env, keys["ci"].rate) == ("CI_KEY", None)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[api.keys.webui]\nkey = "sk-in-the-file"', "unknown key 'key'; allowed keys: key_env, rate"),
        ("[api.keys.webui]\nrate = \"5/minute\"", "key_env is missing"),
        ('[api.keys.webui]\nkey_env = "K"\nrate = "often"', "rate 'often' is not like '20/hour'"),
        ('[api]\nkeyz = 1', "[api] unknown key 'keyz'"),
    ],
)
def test_api_key_mistakes_name_the_table_and_the_fix(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "moa.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert message in str(info.value) and str(info.value).startswith(str(path))


def test_settings_hold_every_api_key_and_mask_them(tmp_path: Path) -> None:
    path = tmp_path / "moa.toml"
    path.write_text('[api.keys.webui]\nkey_env = "WEBUI_KEY"\nrate = "5/minute"\n')
    env = {"MOA_API_KEYS": " first-key-0123456789, second-key-0123456789 ", "MOA_CONFIG": str(path),
           "WEBUI_KEY": "webui-key-0123456789"}
    settings = load_settings(env)
    names = [key.name for key in settings.api_keys]
    assert names[2] == "webui" and names[0].startswith("key-") and len(set(names)) == 3
    assert settings.api_keys[2].rate == UserRate(5, 60.0)
    for secret in ("first-key-0123456789", "second-key-0123456789", "webui-key-0123456789"):
        assert secret in settings.secrets and secret not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOA_API_KEYS": "short"}, "MOA_API_KEYS: an API key must be at least 16 characters"),
        ({"MOA_API_KEYS": "same-key-0123456789,same-key-0123456789"}, "the same API key is given twice"),
        ({"MOA_CONFIG": "{config}"}, "WEBUI_KEY: not set, and [api.keys.webui]"),
    ],
)
def test_api_key_settings_mistakes_are_one_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    path = tmp_path / "moa.toml"
    path.write_text('[api.keys.webui]\nkey_env = "WEBUI_KEY"\n')
    with pytest.raises(ConfigError) as info:
        load_settings({k: v.format(config=path) for k, v in env.items()})
    assert message in str(info.value) and "\n" not in str(info.value)
