"""From a question to a delivered answer: access checks, storage, the MoA run, and the views a sink shows.

Every adapter calls `Answerer.answer(question, sink)`; nothing platform-specific happens here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from moa.conversation import Phase, Question, ReplySink, ReplyView
from moa.errors import ConfigError, MoaError
from moa.events import (
    AggregationStarted,
    AnswerDelta,
    AnswerDone,
    Event,
    Message,
    ProposalDone,
    ProposalFailed,
    ProposalStarted,
    RunFailed,
    Usage,
)
from moa.orchestrator import Orchestrator
from moa.policy import AccessPolicy, ConcurrencyGate, TurnLocks
from moa.presets import Catalog, Preset
from moa.store import ConversationStore, HistoryBudget, ProposalRecord, RunRecord

log = logging.getLogger("moa.answer")

INTERRUPTED_TEXT = "The answer was interrupted (the bot restarted). Please ask again."
SHOW_TIMEOUT_S = 60.0  # how long a final view may take to deliver before the run is recorded without it


@dataclass(frozen=True)
class RunSummary:
    """One line per answer for logs and metrics."""

    run_id: str
    platform: str
    preset: str
    status: str  # done | fallback | failed | interrupted
    seconds: float
    usage: Usage
    error: str = ""


class Answerer:
    def __init__(
        self,
        orchestrator: Orchestrator,
        store: ConversationStore,
        catalog: Catalog,
        *,
        default_preset: str = "default",
        policy: AccessPolicy | None = None,
        gate: ConcurrencyGate | None = None,
        history: HistoryBudget = HistoryBudget(),
        on_event: Callable[[str, Event], None] | None = None,
        on_finished: Callable[[RunSummary], None] | None = None,
    ) -> None:
        catalog.get(default_preset)  # fail at start, not at the first question
        self.catalog = catalog
        self.default_preset = default_preset
        self.policy = policy or AccessPolicy()
        self.gate = gate or ConcurrencyGate(8)
        self._orchestrator = orchestrator
        self._store = store
        self._history = history
        self._on_event = on_event
        self._on_finished = on_finished
        self._accepting = True
        self._in_flight: set[asyncio.Task[object]] = set()
        self._active_runs: set[str] = set()
        self._turns = TurnLocks()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def is_active(self, run_id: str) -> bool:
        """True while this process is answering `run_id` (the recovery sweep leaves such runs alone)."""
        return run_id in self._active_runs

    @property
    def accepting(self) -> bool:
        return self._accepting

    async def answer(self, question: Question, sink: ReplySink) -> str | None:
        """Answer one question through `sink`; returns the run id, or None when the question was refused."""
        if not self._accepting:
            await sink.refuse("I'm restarting right now. Please ask again in a minute.")
            return None
        try:
            preset = self.catalog.get(question.preset or self.default_preset)
        except ConfigError as exc:
            await sink.refuse(str(exc).replace("unknown preset", "I don't know the preset"))
            return None
        refusal = self.policy.refusal(question)
        if refusal is not None:
            await sink.refuse(refusal)
            return None
        # the question is on disk before anything can go wrong with a model
        run_id = await self._store.create_run(
            question.key, question.user, question.text, preset.name, question.event_id
        )
        self._active_runs.add(run_id)
        try:
            placeholder = await sink.open(ReplyView(Phase.WORKING, _asking(preset)))
        except BaseException as exc:
            # nowhere to answer: record why, and let the adapter tell the user another way if it can
            self._active_runs.discard(run_id)
            await self._store.finish_run(run_id, status="failed", error=f"placeholder not posted: {exc!r}"[:500])
            raise
        await self._store.set_placeholder(run_id, placeholder)
        await self._run(run_id, question, preset, sink)
        return run_id

    async def resume(self, run: RunRecord, sink: ReplySink) -> None:
        """Answer again a run that a crash interrupted, into its existing placeholder."""
        question = Question(run.key, run.user, run.question, run.preset, run.event_id)
        try:
            preset = self.catalog.get(run.preset)
        except ConfigError:
            preset = self.catalog.get(self.default_preset)
        await self._run(run.id, question, preset, sink)

    async def interrupt(self, run: RunRecord, sink: ReplySink) -> None:
        """Tell the user a run will not be answered, and record it so."""
        try:
            await sink.show(ReplyView(Phase.INTERRUPTED, "Interrupted", INTERRUPTED_TEXT))
        finally:
            await self._store.finish_run(run.id, status="interrupted", error="interrupted by a restart")

    async def forget(self, question: Question) -> int:
        return await self._store.forget(question.key)

    def stop_intake(self) -> None:
        self._accepting = False

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for answers in flight; interrupt the rest. Returns how many were interrupted."""
        self.stop_intake()
        pending = set(self._in_flight)
        if not pending:
            return 0
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=SHOW_TIMEOUT_S)
        return len(late)

    async def _run(self, run_id: str, question: Question, preset: Preset, sink: ReplySink) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        self._active_runs.add(run_id)
        started = time.monotonic()
        try:
            await self._run_tracked(run_id, question, preset, sink, started)
        finally:
            self._active_runs.discard(run_id)
            if task is not None:
                self._in_flight.discard(task)

    async def _run_tracked(
        self, run_id: str, question: Question, preset: Preset, sink: ReplySink, started: float
    ) -> None:
        waited = False

        async def queued(ahead: int) -> None:
            nonlocal waited
            waited = True
            status = "Queued, next in line…" if ahead == 0 else f"Queued, {ahead} ahead…"
            await sink.show(ReplyView(Phase.QUEUED, status))

        async def after_previous() -> None:
            nonlocal waited
            waited = True
            await sink.show(ReplyView(Phase.QUEUED, "Waiting for the answer before this one to finish…"))

        summary: RunSummary | None = None
        acquired = False
        try:
            async with self._turns.turn(question.key, after_previous):
                await self.gate.acquire(queued)
                acquired = True
                await self._store.mark_running(run_id)
                if waited:
                    await sink.show(ReplyView(Phase.WORKING, _asking(preset)))
                summary = await self._answer(run_id, question, preset, sink, started)
        except asyncio.CancelledError:
            summary = RunSummary(
                run_id, question.key.platform, preset.name, "interrupted", time.monotonic() - started, Usage(),
                "interrupted by shutdown",
            )
            await self._finish_quietly(sink, ReplyView(Phase.INTERRUPTED, "Interrupted", INTERRUPTED_TEXT))
            await self._store.finish_run(run_id, status="interrupted", error=summary.error,
                                         elapsed_s=summary.seconds)
            raise
        except Exception as exc:
            log.exception("run %s failed", run_id)
            error = exc.args[0] if isinstance(exc, MoaError) and exc.args else type(exc).__name__
            message = f"Something went wrong on my side ({error}). Please try again."
            summary = RunSummary(run_id, question.key.platform, preset.name, "failed",
                                 time.monotonic() - started, Usage(), str(error))
            await self._finish_quietly(sink, ReplyView(Phase.FAILED, "Failed", message))
            await self._store.finish_run(run_id, status="failed", error=summary.error, elapsed_s=summary.seconds)
        finally:
            if acquired:
                await self.gate.release()
            if summary is not None:
                self._report(summary)

    async def _answer(
        self, run_id: str, question: Question, preset: Preset, sink: ReplySink, started: float
    ) -> RunSummary:
        key = question.key
        if question.seed_history and not await self._store.has_history(key):
            await self._store.seed_history(key, question.seed_history)
        history = await self._store.load_history(key, self._history)
        conversation: list[Message] = [*history, {"role": "user", "content": question.text}]
        progress = _Progress(preset)
        async for event in self._orchestrator.run(preset, conversation):
            if self._on_event is not None:
                self._on_event(run_id, event)
            if isinstance(event, (ProposalDone, ProposalFailed)):
                await self._store.add_proposals(run_id, [_record(event)])
            if isinstance(event, AnswerDone):
                status = "fallback" if event.fallback else "done"
                footer = _footer(preset, event)
                await sink.show(ReplyView(Phase.DONE, "Done", event.text, footer))
                await self._store.append_turn(key, question.text, event.text, run_id)
                await self._store.finish_run(
                    run_id, status=status, answer=event.text, error=event.aggregator_error,
                    elapsed_s=event.elapsed_s, usage=event.usage,
                )
                return RunSummary(run_id, key.platform, preset.name, status, time.monotonic() - started,
                                  event.usage, event.aggregator_error)
            if isinstance(event, RunFailed):
                await sink.show(ReplyView(Phase.FAILED, "Failed", event.message))
                await self._store.finish_run(run_id, status="failed", error=event.message, elapsed_s=event.elapsed_s)
                return RunSummary(run_id, key.platform, preset.name, "failed", time.monotonic() - started,
                                  Usage(), event.message)
            view = progress.update(event)
            if view is not None:
                await sink.show(view)
        raise MoaError("the run ended without an answer")  # the orchestrator always ends with one of the above

    async def _finish_quietly(self, sink: ReplySink, view: ReplyView) -> None:
        """Deliver a final view while already failing; a second failure is logged, not raised."""
        try:
            async with asyncio.timeout(SHOW_TIMEOUT_S):
                await sink.show(view)
        except Exception:
            log.warning("could not show the final message", exc_info=True)

    def _report(self, summary: RunSummary) -> None:
        log.info(
            "answer run=%s platform=%s preset=%s status=%s seconds=%.2f tokens=%d",
            summary.run_id, summary.platform, summary.preset, summary.status, summary.seconds,
            summary.usage.total,
            extra={"run_id": summary.run_id, "platform": summary.platform, "preset": summary.preset,
                   "status": summary.status, "seconds": round(summary.seconds, 3), "tokens": summary.usage.total},
        )
        if self._on_finished is not None:
            self._on_finished(summary)


class _Progress:
    """Turns orchestrator events into the one-line status and the streamed text."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.finished = 0
        self.answered = 0
        self.text = ""

    def update(self, event: Event) -> ReplyView | None:
        proposer_layers = self.preset.layers - 1
        if isinstance(event, ProposalStarted):
            if event.index == 0:
                self.finished = self.answered = 0
            return None
        if isinstance(event, (ProposalDone, ProposalFailed)):
            self.finished += 1
            self.answered += isinstance(event, ProposalDone)
            status = f"{self.answered}/{len(self.preset.proposers)} drafts in…"
            if proposer_layers > 1:
                status = f"Round {event.layer} of {proposer_layers}: {status}"
            return ReplyView(Phase.WORKING, status)
        if isinstance(event, AggregationStarted):
            if event.proposers == 0:
                return None
            return ReplyView(Phase.WORKING, f"{event.drafts}/{event.proposers} drafts in, synthesizing…")
        if isinstance(event, AnswerDelta):
            self.text = event.text if event.reset else self.text + event.text
            return ReplyView(Phase.STREAMING, "Writing…", self.text)
        return None


def _asking(preset: Preset) -> str:
    if preset.layers == 1:
        return f"Asking {short_model(preset.aggregator)}…"
    return f"Asking {len(preset.proposers)} models…"


def short_model(model: str) -> str:
    return model.rsplit("/", 1)[-1].split(":", 1)[-1] if "/" in model else model.split(":", 1)[-1]


def _footer(preset: Preset, done: AnswerDone) -> str:
    counts: dict[str, int] = {}
    for model in done.contributors:
        counts[short_model(model)] = counts.get(short_model(model), 0) + 1
    drafts = ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())
    parts = [preset.name]
    if drafts:
        parts.append(f"{drafts} → {short_model(done.aggregator)}")
    else:
        parts.append(short_model(done.aggregator))
    parts.append(f"{done.elapsed_s:.1f} s")
    if done.fallback:
        parts.append("synthesis failed, best draft shown")
    return " · ".join(parts)


def _record(event: ProposalDone | ProposalFailed) -> ProposalRecord:
    if isinstance(event, ProposalDone):
        return ProposalRecord(event.layer, event.model, event.text, event.latency_s, event.usage)
    return ProposalRecord(event.layer, event.model, "", event.latency_s, Usage(), event.error, event.straggler)
