"""The MoA run against the fake chat-completions server, through the real together client."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from moa.events import (
    AggregationStarted,
    AnswerDelta,
    AnswerDone,
    ProposalDone,
    ProposalFailed,
    RunFailed,
)
from moa.errors import ProviderRejected
from moa.failure import Audience, readdress, retry_in_words
from moa.orchestrator import Orchestrator, describe_failure
from moa.prompts import AGGREGATE_AND_SYNTHESIZE
from moa.providers.registry import ProviderRegistry
from tests.fakes.llm import FakeLLM, Failure
from tests.helpers import FAST_BACKOFF, collect, preset, registry_for


@pytest.fixture
async def orchestrator(fake_llm: FakeLLM):  # type: ignore[no-untyped-def]
    registry = registry_for(fake_llm)
    yield Orchestrator(registry, backoff=FAST_BACKOFF)
    await registry.aclose()


def done(events: list[object]) -> AnswerDone:
    finals = [e for e in events if isinstance(e, AnswerDone)]
    assert len(finals) == 1, events
    return finals[0]


async def test_proposers_run_concurrently(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    for model in ("p/a", "p/b", "p/c", "p/d"):
        fake_llm.script(model, latency=1.0)
    fake_llm.script("agg/x", latency=0.1)
    started = time.monotonic()
    events = await collect(orchestrator, preset())
    elapsed = time.monotonic() - started
    # four 1 s proposers in sequence would take 4 s; in parallel the critical path is 1 + 0.1 (the margin is for a
    # loaded machine, where a bound close to the critical path failed now and then)
    assert elapsed < 2.5, elapsed
    assert fake_llm.peak_in_flight >= 4
    assert len([e for e in events if isinstance(e, ProposalDone)]) == 4


async def test_question_and_references_reach_aggregator(
    fake_llm: FakeLLM, orchestrator: Orchestrator
) -> None:
    for model in ("p/a", "p/b", "p/c", "p/d"):
        fake_llm.script(model, reply=f"draft from {model}")
    fake_llm.script("agg/x", reply="final synthesis")
    events = await collect(orchestrator, preset(), "How do I rotate keys?")
    answer = done(events)
    assert answer.text == "final synthesis"
    assert answer.contributors == ("p/a", "p/b", "p/c", "p/d")
    aggregator_call = fake_llm.requests_for("agg/x")[0]
    assert aggregator_call.stream
    system, user = aggregator_call.messages
    assert system["role"] == "system" and system["content"].startswith(AGGREGATE_AND_SYNTHESIZE)
    for i, model in enumerate(("p/a", "p/b", "p/c", "p/d"), start=1):
        assert f"{i}. draft from {model}" in system["content"]
    assert user == {"role": "user", "content": "How do I rotate keys?"}
    # proposers see only the question, with the preset's sampling settings
    proposer_call = fake_llm.requests_for("p/a")[0]
    assert proposer_call.messages == [{"role": "user", "content": "How do I rotate keys?"}]
    assert proposer_call.body["max_tokens"] == 512 and proposer_call.body["temperature"] == 0.7
    deltas = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert deltas == "final synthesis"
    assert answer.usage.total > 0 and set(answer.usage_by_model) == {"p/a", "p/b", "p/c", "p/d", "agg/x"}


async def test_layers_one_is_the_aggregator_alone(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("agg/x")
    events = await collect(orchestrator, preset(layers=1))
    assert [r.model for r in fake_llm.requests] == ["agg/x"]
    assert fake_llm.requests[0].messages == [{"role": "user", "content": "What is WAL?"}]
    assert done(events).text == "[agg/x] answer to: What is WAL?"


async def test_three_layers_refine_with_references(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    calls: dict[str, int] = {}

    def reply_for(model: str):  # type: ignore[no-untyped-def]
        def reply(body: dict) -> str:  # type: ignore[type-arg]
            calls[model] = calls.get(model, 0) + 1
            return f"{model} round {calls[model]}"

        return reply

    for model in ("p/a", "p/b"):
        fake_llm.script(model, reply=reply_for(model))
    fake_llm.script("agg/x", reply="done")
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b"), layers=3))
    assert calls == {"p/a": 2, "p/b": 2}
    second_round = [r for r in fake_llm.requests_for("p/a")][1]
    assert "1. p/a round 1" in second_round.messages[0]["content"]
    assert "2. p/b round 1" in second_round.messages[0]["content"]
    assert second_round.messages[-1]["content"] == "What is WAL?"
    aggregator = fake_llm.requests_for("agg/x")[0]
    assert "1. p/a round 2" in aggregator.messages[0]["content"]
    assert [e.layer for e in events if isinstance(e, ProposalDone)] == [1, 1, 2, 2]


async def test_rate_limit_is_retried_after_retry_after(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a").failures.append(Failure.rate_limit(retry_after=0.3))
    for model in ("p/b", "p/c", "p/d", "agg/x"):
        fake_llm.script(model)
    events = await collect(orchestrator, preset())
    first, second = fake_llm.requests_for("p/a")
    assert first.status == 429
    assert second.started - first.ended >= 0.29  # Retry-After honoured
    ok = next(e for e in events if isinstance(e, ProposalDone) and e.model == "p/a")
    assert ok.attempts == 2
    assert "p/a" in done(events).contributors


async def test_retries_stop_at_the_limit_and_the_proposer_is_left_out(
    fake_llm: FakeLLM, orchestrator: Orchestrator
) -> None:
    fake_llm.fail("p/a", *[Failure.server_error(503)] * 5)
    for model in ("p/b", "p/c", "p/d", "agg/x"):
        fake_llm.script(model)
    events = await collect(orchestrator, preset(retries=2))
    assert len(fake_llm.requests_for("p/a")) == 3  # the first try and two retries
    failed = next(e for e in events if isinstance(e, ProposalFailed))
    assert failed.model == "p/a" and "503" in failed.error and failed.attempts == 3
    answer = done(events)
    assert answer.contributors == ("p/b", "p/c", "p/d")
    assert "p/a" not in fake_llm.requests_for("agg/x")[0].messages[0]["content"]


async def test_rejected_request_is_not_retried(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.fail("p/a", Failure.http(400, message="bad request"))
    for model in ("p/b", "agg/x"):
        fake_llm.script(model)
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b")))
    assert len(fake_llm.requests_for("p/a")) == 1
    assert done(events).contributors == ("p/b",)


async def test_everything_failing_gives_a_clear_error(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.fail("p/a", *[Failure.rate_limit(0.01)] * 3)
    fake_llm.fail("p/b", *[Failure.server_error(500)] * 3)
    fake_llm.fail("agg/x", *[Failure.server_error(502)] * 3)
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b"), retries=1))
    failure = events[-1]
    assert isinstance(failure, RunFailed)
    assert failure.message.startswith("No model could answer:")
    assert "rate limited" in failure.message and "try again" in failure.message


async def test_unknown_model_says_check_the_preset(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    events = await collect(orchestrator, preset(proposers=("nope/a",), aggregator="nope/b"))
    assert isinstance(events[-1], RunFailed)
    assert "model not found" in events[-1].message and "moa-bot doctor" in events[-1].message


async def test_aggregator_failure_falls_back_to_the_longest_draft(
    fake_llm: FakeLLM, orchestrator: Orchestrator
) -> None:
    fake_llm.script("p/a", reply="short")
    fake_llm.script("p/b", reply="a much longer and more complete draft")
    fake_llm.fail("agg/x", *[Failure.server_error(500)] * 2)
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b"), retries=1))
    answer = done(events)
    assert answer.fallback
    assert answer.text.startswith("a much longer and more complete draft")
    assert "p/b" in answer.text and "synthesizing model failed" in answer.text


async def test_stream_cut_midway_is_retried_from_scratch(
    fake_llm: FakeLLM, orchestrator: Orchestrator
) -> None:
    fake_llm.script("p/a")
    fake_llm.script("agg/x", reply="one two three four five six").failures.append(Failure.cut(after_tokens=2))
    events = await collect(orchestrator, preset(proposers=("p/a",)))
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    assert any(d.reset for d in deltas)
    assert done(events).text == "one two three four five six"
    assert [r.outcome for r in fake_llm.requests_for("agg/x")] == ["cut", "ok"]


async def test_hung_proposer_times_out(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.fail("p/a", Failure.hang())
    fake_llm.script("p/b")
    fake_llm.script("agg/x")
    started = time.monotonic()
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b"), timeout_s=0.5, retries=0))
    assert time.monotonic() - started < 2.0
    failed = next(e for e in events if isinstance(e, ProposalFailed))
    assert "Timeout" in failed.error
    assert done(events).contributors == ("p/b",)


async def test_stalled_aggregator_stream_times_out(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a", reply="the draft")
    fake_llm.fail("agg/x", Failure.hang(after_tokens=1))
    events = await collect(orchestrator, preset(proposers=("p/a",), timeout_s=0.5, retries=0))
    answer = done(events)
    assert answer.fallback and answer.text.startswith("the draft")


async def test_stragglers_are_cut_after_the_grace(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a", latency=0.05)
    fake_llm.script("p/b", latency=0.1)
    fake_llm.script("p/c", latency=5.0)
    fake_llm.script("agg/x")
    started = time.monotonic()
    events = await collect(
        orchestrator, preset(proposers=("p/a", "p/b", "p/c"), min_proposers=2, straggler_grace_s=0.3)
    )
    assert time.monotonic() - started < 1.5
    cut = [e for e in events if isinstance(e, ProposalFailed)]
    assert [(e.model, e.straggler) for e in cut] == [("p/c", True)]
    agg = next(e for e in events if isinstance(e, AggregationStarted))
    assert (agg.drafts, agg.proposers) == (2, 3)
    assert done(events).contributors == ("p/a", "p/b")
    await asyncio.sleep(0.1)
    assert fake_llm.requests_for("p/c")[0].outcome == "client_gone"


async def test_without_grace_every_proposer_is_awaited(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a", latency=0.0)
    fake_llm.script("p/b", latency=0.6)
    fake_llm.script("agg/x")
    events = await collect(orchestrator, preset(proposers=("p/a", "p/b")))
    assert done(events).contributors == ("p/a", "p/b")


async def test_cancelling_a_run_cancels_its_calls(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    for model in ("p/a", "p/b"):
        fake_llm.script(model, latency=10.0)
    task = asyncio.create_task(collect(orchestrator, preset(proposers=("p/a", "p/b"))))
    while fake_llm.in_flight < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if fake_llm.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert fake_llm.in_flight == 0
    assert {r.outcome for r in fake_llm.requests} == {"client_gone"}


async def test_error_inside_the_stream_is_retried(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a")
    fake_llm.script("agg/x", reply="alpha beta gamma delta").failures.append(Failure.stream_error(after_tokens=2))
    events = await collect(orchestrator, preset(proposers=("p/a",)))
    assert done(events).text == "alpha beta gamma delta"
    assert [r.outcome for r in fake_llm.requests_for("agg/x")] == ["stream_error", "ok"]
    assert any(e.reset for e in events if isinstance(e, AnswerDelta))


async def test_aggregator_rate_limit_is_retried_before_streaming(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    fake_llm.script("p/a")
    fake_llm.script("agg/x").failures.append(Failure.rate_limit(retry_after=0.1))
    events = await collect(orchestrator, preset(proposers=("p/a",)))
    assert not done(events).fallback
    assert [r.status for r in fake_llm.requests_for("agg/x")] == [429, 200]
    assert done(events).usage_by_model["agg/x"].completion_tokens > 0


async def test_a_long_retry_after_says_when_to_try_again(fake_llm: FakeLLM, orchestrator: Orchestrator) -> None:
    for model in ("p/a", "agg/x"):
        fake_llm.fail(model, Failure.rate_limit(retry_after=3600))
    events = await collect(orchestrator, preset(proposers=("p/a",)))
    failure = events[-1]
    assert isinstance(failure, RunFailed)
    assert failure.message.endswith("Please try again in about 1 hour.")


async def run_against(base_url: str) -> RunFailed:
    registry = ProviderRegistry({}, together_api_key="k", together_base_url=base_url)
    try:
        events = await collect(Orchestrator(registry, backoff=FAST_BACKOFF), preset(proposers=("p/a",), retries=0))
    finally:
        await registry.aclose()
    assert isinstance(events[-1], RunFailed)
    return events[-1]


async def test_unreachable_provider_is_named_with_its_url_and_why() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the probe is closed
    failure = await run_against(url)
    assert f"No model could answer: cannot connect to {url} (connection refused) (2 models)." in failure.message
    assert "an operator needs to check the connection to the provider" in failure.message


async def test_tls_to_a_plain_http_server_is_named_as_a_tls_error(fake_llm: FakeLLM) -> None:
    url = f"https://127.0.0.1:{fake_llm.port}"
    failure = await run_against(url)
    assert f"cannot connect to {url} (TLS error: " in failure.message


async def test_refused_key_asks_an_operator_to_check_it() -> None:
    async with FakeLLM(["p/a", "agg/x"], api_key="the-right-key") as llm:
        failure = await run_against(llm.base_url)
    assert "the provider refused the API key (2 models)" in failure.message
    assert failure.message.endswith("An operator needs to check the API key (TOGETHER_API_KEY or the provider's key).")


def test_the_terminal_gets_advice_addressed_to_the_operator() -> None:
    chat = describe_failure([ProviderRejected("m: HTTP 401: bad key", model="m", status=401)])
    terminal = readdress(chat, Audience.TERMINAL)
    assert terminal.startswith("No model could answer: the provider refused the API key. ")
    assert terminal.endswith("Check TOGETHER_API_KEY (or the variable named by the provider's api_key_env); "
                             "`moa-bot doctor` tests it.")
    assert readdress(chat, Audience.CHAT) == chat


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(None, "in a minute"), (20, "in a minute"), (61, "in about 2 minutes"), (1800, "in about 30 minutes"),
     (3600, "in about 1 hour"), (3 * 3600, "in about 3 hours"), (3 * 86400, "in about 3 days")],
)
def test_retry_after_in_words(seconds: float | None, words: str) -> None:
    assert retry_in_words(seconds) == words
