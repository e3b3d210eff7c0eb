"""The answerer: from a question to views on a sink, with storage, limits and the concurrency gate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moa.conversation import ConversationKey, Phase, Question, ReplyView
from moa.policy import AccessPolicy
from tests.core import core_settings, open_test_core
from tests.fakes.llm import FakeLLM, Failure
from tests.helpers import preset

KEY = ConversationKey("slack", "T1", "C1", "100.1")


class RecordingSink:
    def __init__(self) -> None:
        self.views: list[ReplyView] = []
        self.refusals: list[str] = []
        self.opened = 0

    async def open(self, view: ReplyView) -> dict[str, str]:
        self.opened += 1
        self.views.append(view)
        return {"where": "test"}

    async def show(self, view: ReplyView) -> None:
        self.views.append(view)

    async def refuse(self, message: str) -> None:
        self.refusals.append(message)

    @property
    def final(self) -> ReplyView:
        assert self.views and self.views[-1].final, self.views
        return self.views[-1]


@pytest.fixture
async def setup(fake_llm: FakeLLM, tmp_path: Path):  # type: ignore[no-untyped-def]
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.script(model)
    settings = core_settings(
        fake_llm, tmp_path, MOA_MAX_QUESTION_CHARS="100", MOA_USER_RATE="3/minute", MOA_MAX_CONCURRENT="2"
    )
    async with open_test_core(settings) as core:
        yield core.answerer, core.store


async def test_answer_flows_from_placeholder_to_final(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup
    sink = RecordingSink()
    run_id = await answerer.answer(Question(KEY, "U1", "What is WAL?"), sink)
    assert sink.views[0] == ReplyView(Phase.WORKING, "Asking 2 models…", run_id=run_id)
    statuses = [v.status for v in sink.views]
    assert "1/2 drafts in…" in statuses and "2/2 drafts in, synthesizing…" in statuses
    assert any(v.phase is Phase.STREAMING for v in sink.views)
    final = sink.final
    assert final.phase is Phase.DONE and final.text == "[agg/x] answer to: What is WAL?"
    assert final.footer.startswith("test · a, b → x · ")
    record = await store.get_run(run_id)
    assert record["status"] == "done" and record["placeholder"] == {"where": "test"}
    assert len(record["proposals"]) == 2
    # the next question in the thread carries the first turn
    await answerer.answer(Question(KEY, "U1", "And in Postgres?"), RecordingSink())
    messages = fake_llm.requests_for("p/a")[-1].messages
    assert [m["content"] for m in messages] == [
        "What is WAL?",
        "[agg/x] answer to: What is WAL?",
        "And in Postgres?",
    ]


async def test_refusals_reach_the_user_and_start_nothing(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup
    for text, expected in (("", "didn't find a question"), ("x" * 101, "limit is 100")):
        sink = RecordingSink()
        assert await answerer.answer(Question(KEY, "U1", text), sink) is None
        assert expected in sink.refusals[0] and sink.opened == 0
    sink = RecordingSink()
    await answerer.answer(Question(KEY, "U1", "q", preset="nope"), sink)
    assert "I don't know the preset 'nope'" in sink.refusals[0]
    assert fake_llm.requests == [] and await store.unfinished_runs() == []


async def test_user_rate_limit(setup) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    for _ in range(3):
        await answerer.answer(Question(KEY, "U1", "q"), RecordingSink())
    sink = RecordingSink()
    await answerer.answer(Question(KEY, "U1", "q"), sink)
    assert "limit of 3 questions per 60 seconds" in sink.refusals[0]
    other = RecordingSink()  # another user, or the same id in another workspace, is not limited
    await answerer.answer(Question(ConversationKey("slack", "T2", "C1"), "U1", "q"), other)
    assert other.refusals == []


async def test_allow_lists() -> None:
    policy = AccessPolicy(allowed_channels=frozenset({"C1"}), allowed_users=frozenset({"U1"}))
    assert policy.refusal(Question(KEY, "U1", "q")) is None
    assert "not enabled in this channel" in policy.refusal(
        Question(ConversationKey("slack", "T", "C2"), "U1", "q")
    )
    assert "not on the list" in policy.refusal(Question(KEY, "U2", "q"))


async def test_queue_reports_position(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    for model in ("p/a", "p/b"):
        fake_llm.script(model, latency=1.0)
    sinks = [RecordingSink() for _ in range(4)]
    await asyncio.gather(
        *(
            answerer.answer(Question(ConversationKey("slack", "T1", "C1", str(i)), f"U{i}", "q"), s)
            for i, s in enumerate(sinks)
        )
    )
    queued = [[v.status for v in s.views if v.phase is Phase.QUEUED] for s in sinks]
    assert queued[0] == queued[1] == []
    assert queued[2] == ["Queued, next in line…"]
    # the fourth moves up to next in line, unless both running answers finish at once and it goes straight in
    assert queued[3] in (["Queued, 1 ahead…", "Queued, next in line…"], ["Queued, 1 ahead…"])
    assert all(s.final.phase is Phase.DONE for s in sinks)
    assert fake_llm.peak_in_flight <= 4  # two answers at a time, two proposers each


async def test_failure_edits_the_placeholder_and_records_the_error(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.fail(model, *[Failure.http(401, message="bad key")] * 4)
    sink = RecordingSink()
    run_id = await answerer.answer(Question(KEY, "U1", "q"), sink)
    assert sink.final.phase is Phase.FAILED
    assert "refused the API key" in sink.final.text
    record = await store.get_run(run_id)
    assert record["status"] == "failed" and "API key" in record["error"]


async def test_drain_interrupts_what_cannot_finish(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup
    for model in ("p/a", "p/b"):
        fake_llm.script(model, latency=10)
    sink = RecordingSink()
    task = asyncio.create_task(answerer.answer(Question(KEY, "U1", "q"), sink))
    while fake_llm.in_flight < 2:
        await asyncio.sleep(0.01)
    assert await answerer.drain(0.1) == 1
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.final.phase is Phase.INTERRUPTED and "ask again" in sink.final.text
    assert await store.unfinished_runs() == []
    late = RecordingSink()
    await answerer.answer(Question(KEY, "U1", "q"), late)
    assert "restarting" in late.refusals[0]


async def test_a_follow_up_waits_for_the_answer_before_it(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    fake_llm.script("p/a", latency=0.3)
    first, second = RecordingSink(), RecordingSink()
    task = asyncio.create_task(answerer.answer(Question(KEY, "U1", "first question"), first))
    while not fake_llm.requests:
        await asyncio.sleep(0.01)
    await answerer.answer(Question(KEY, "U2", "follow-up"), second)
    await task
    assert "Waiting for the answer before this one to finish…" in [v.status for v in second.views]
    assert second.final.phase is Phase.DONE
    messages = fake_llm.requests_for("agg/x")[-1].messages
    assert [m["content"] for m in messages[1:]] == [
        "first question", "[agg/x] answer to: first question", "follow-up"]
    # another conversation is not held up
    other = RecordingSink()
    blocker = asyncio.create_task(answerer.answer(Question(KEY, "U1", "again"), RecordingSink()))
    while len(fake_llm.requests_for("p/a")) < 3:
        await asyncio.sleep(0.01)
    await answerer.answer(Question(ConversationKey("slack", "T1", "C1", "other"), "U3", "elsewhere"), other)
    assert all(v.phase is not Phase.QUEUED for v in other.views)
    await blocker


async def test_a_question_waiting_for_its_placeholder_counts_for_the_drain(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    """A placeholder held back by the platform's pacing is still an accepted question: the drain waits for it."""
    answerer, _ = setup
    release = asyncio.Event()

    class PacedSink(RecordingSink):
        async def open(self, view: ReplyView) -> dict[str, str]:
            await release.wait()  # the channel's posting budget is spent for now
            return await super().open(view)

    sink = PacedSink()
    task = asyncio.create_task(answerer.answer(Question(KEY, "U1", "q"), sink))
    while answerer.in_flight == 0:
        await asyncio.sleep(0.01)
    drain = asyncio.create_task(answerer.drain(5.0))
    await asyncio.sleep(0.2)
    assert not drain.done()  # not given up on: it is in flight
    release.set()
    assert await drain == 0
    assert (await task) is not None and sink.final.phase is Phase.DONE


async def test_a_question_still_without_placeholder_at_the_end_of_the_grace_is_interrupted(setup) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup

    class StuckSink(RecordingSink):
        async def open(self, view: ReplyView) -> dict[str, str]:
            await asyncio.sleep(60)
            raise AssertionError("unreachable")

    sink = StuckSink()
    task = asyncio.create_task(answerer.answer(Question(KEY, "U1", "q"), sink))
    while answerer.in_flight == 0:
        await asyncio.sleep(0.01)
    assert await answerer.drain(0.2) == 1
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.refusals and "interrupted" in sink.refusals[-1]
    async with store.db.execute("SELECT status, error FROM runs") as cursor:
        assert list(await cursor.fetchall()) == [("interrupted", "interrupted before a reply was posted")]


async def test_secrets_echoed_by_a_provider_are_masked_in_records_and_messages(fake_llm: FakeLLM, tmp_path: Path) -> None:
    key = "together-live-key-0123456789"
    echo = f"Invalid API key {key}; sent header Authorization: Bearer sk-abcdefghijklmnop0123"
    for model in ("p/a", "p/b", "agg/x"):
        fake_llm.fail(model, Failure.http(500, message=echo))
    settings = core_settings(fake_llm, tmp_path, presets={"test": {"retries": 0}}, TOGETHER_API_KEY=key)
    async with open_test_core(settings) as core:
        sink = RecordingSink()
        run_id = await core.answerer.answer(Question(KEY, "U1", "q"), sink)
        record = await core.store.get_run(run_id)
    stored = [record["error"], *(p["error"] for p in record["proposals"])]
    assert all(stored) and sink.final.phase is Phase.FAILED
    for text in (*stored, sink.final.text):
        assert key not in text and "sk-abcdefghijklmnop0123" not in text
    assert any("***" in text for text in stored)


async def test_a_stalled_aggregator_is_bounded_and_the_user_sees_it_retrying(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    from moa.orchestrator import stall_budget_s

    answerer, store = setup
    stalling = preset(proposers=("p/a", "p/b"), timeout_s=1.0, retries=5)
    answerer.catalog.presets["test"] = stalling
    fake_llm.fail("agg/x", *[Failure.hang(after_tokens=2)] * 6)
    sink = RecordingSink()
    started = asyncio.get_running_loop().time()
    run_id = await answerer.answer(Question(KEY, "U1", "q"), sink)
    elapsed = asyncio.get_running_loop().time() - started
    # stalled 1 s, then 0.5 s, then the budget is spent: the best draft instead, not six stalls of a second
    assert stall_budget_s(stalling) == 1.5 and elapsed < 1.5 + 1.0
    assert len(fake_llm.requests_for("agg/x")) == 2
    retrying = [v for v in sink.views if "retrying" in v.status]
    assert retrying and retrying[0].status == "The synthesizing model stalled; retrying (attempt 2)…"
    assert retrying[0].text  # what was written so far stays on screen while it retries
    assert sink.final.phase is Phase.DONE and "most complete single draft" in sink.final.text
    assert (await store.get_run(run_id))["status"] == "fallback"


async def test_a_question_of_invisible_characters_is_no_question(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    sink = RecordingSink()
    assert await answerer.answer(Question(KEY, "U1", "\u200b\u200d\ufeff "), sink) is None
    assert "didn't find a question" in sink.refusals[0] and fake_llm.requests == []


async def test_forget_obeys_the_allow_lists(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.script("p/a")
    fake_llm.script("agg/x")
    settings = core_settings(fake_llm, tmp_path, presets={"test": {"proposers": ["p/a"]}}, MOA_ALLOWED_USERS="U1")
    async with open_test_core(settings) as core:
        answerer, store = core.answerer, core.store
        await answerer.answer(Question(KEY, "U1", "remember this"), RecordingSink())
        intruder = RecordingSink()
        await answerer.answer(Question(KEY, "U2", "forget"), intruder)
        assert "not on the list" in intruder.refusals[0]
        assert await store.has_history(KEY)  # someone else's history is untouched
        owner = RecordingSink()
        await answerer.answer(Question(KEY, "U1", "forget"), owner)
        assert "deleted this conversation's stored history (2 messages)" in owner.refusals[0]


async def test_each_delivery_is_answered_once(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    first = await answerer.answer(Question(KEY, "U1", "q", event_id="Ev1", also_delivered_as=("msg:1",)), RecordingSink())
    retried = RecordingSink()
    again = await answerer.answer(Question(KEY, "U1", "q", event_id="Ev1"), retried)  # a retry
    twin = await answerer.answer(Question(KEY, "U1", "q", event_id="Ev2", also_delivered_as=("msg:1",)), RecordingSink())
    assert first is not None and again is None and twin is None
    assert retried.views == [] and retried.refusals == []
    assert len(fake_llm.requests_for("agg/x")) == 1


async def test_the_asker_stops_an_answer_and_keeps_what_was_written(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    from moa.answering import StopResult

    answerer, store = setup
    fake_llm.script("agg/x", reply=" ".join(f"w{i}" for i in range(200)), tokens_per_s=20)
    sink = RecordingSink()
    task = asyncio.create_task(answerer.answer(Question(KEY, "U1", "long one"), sink))
    while not any(v.phase is Phase.STREAMING and "w3" in v.text for v in sink.views):
        await asyncio.sleep(0.01)
    run_id = sink.views[-1].run_id
    assert run_id and answerer.stop(run_id, by="U2") is StopResult.NOT_ASKER
    assert answerer.stop(run_id, by="U1") is StopResult.STOPPED
    assert await asyncio.wait_for(task, 2) == run_id  # the caller's task ends normally
    final = sink.final
    assert final.phase is Phase.STOPPED and final.text.startswith("w0 w1 w2 w3") and final.text.endswith("_(stopped)_")
    assert "w199" not in final.text and final.run_id == run_id
    await asyncio.sleep(0.2)
    in_flight = fake_llm.in_flight
    assert in_flight == 0  # every model call of the run was cancelled
    record = await store.get_run(run_id)
    assert record["status"] == "stopped" and record["answer"].startswith("w0 w1")
    assert answerer.stop(run_id, by="U1") is StopResult.NOT_RUNNING


async def test_views_carry_every_models_state(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    fake_llm.fail("p/b", Failure.http(429, retry_after=60))
    sink = RecordingSink()
    await answerer.answer(Question(KEY, "U1", "q"), sink)
    drafting = next(v for v in sink.views if v.models and all(m.state == "drafting" for m in v.models))
    assert [(m.model, m.role) for m in drafting.models] == [("p/a", "proposer"), ("p/b", "proposer")]
    final = {m.model: m for m in sink.final.models}
    assert final["p/a"].state == "done" and final["p/a"].tokens and final["p/a"].seconds is not None
    assert final["p/b"].state == "failed" and final["p/b"].detail == "rate limited"
    assert final["agg/x"].role == "aggregator" and final["agg/x"].state == "done" and final["agg/x"].tokens
    writing = [v for v in sink.views if v.phase is Phase.STREAMING]
    assert writing and {m.model: m.state for m in writing[0].models}["agg/x"] == "writing"


async def test_feedback_is_stored_per_person_and_replaced(setup) -> None:  # type: ignore[no-untyped-def]
    answerer, store = setup
    run_id = await answerer.answer(Question(KEY, "U1", "q"), RecordingSink())
    assert await answerer.feedback(run_id, "U1", "up") and await answerer.feedback(run_id, "U2", "down")
    assert await answerer.feedback(run_id, "U1", "down")  # changed their mind
    record = await store.get_run(run_id)
    assert sorted((f["user"], f["value"]) for f in record["feedback"]) == [("U1", "down"), ("U2", "down")]
    assert not await answerer.feedback("no-such-run", "U1", "up")


async def test_drafts_of_a_run(setup, fake_llm: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    answerer, _ = setup
    fake_llm.fail("p/b", Failure.http(500, message="down"), Failure.http(500), Failure.http(500), Failure.http(500))
    run_id = await answerer.answer(Question(KEY, "U1", "what is WAL?"), RecordingSink())
    drafts = await answerer.drafts(run_id)
    assert drafts is not None and drafts.question == "what is WAL?"
    by_model = {p.model: p for p in drafts.proposals}
    assert by_model["p/a"].text == "[p/a] answer to: what is WAL?" and by_model["p/a"].usage.completion_tokens
    assert by_model["p/b"].text == "" and "500" in by_model["p/b"].error
    assert await answerer.drafts("no-such-run") is None
