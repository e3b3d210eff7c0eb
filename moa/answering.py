"""From a question to a delivered answer: access checks, storage, the MoA run, and the views a sink shows.

Every adapter calls `Answerer.answer(question, sink)`; nothing platform-specific happens here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum

from moa.conversation import (
    ModelStatus,
    Overrides,
    Phase,
    Question,
    Refusal,
    RefusalReason,
    ReplySink,
    ReplyView,
    RunReport,
    react,
)
from moa.errors import ConfigError, MoaError, StorageError
from moa.events import (
    AggregationRetrying,
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
from moa.intake import read_request
from moa.knowledge.citations import prompt_sources, with_sources
from moa.knowledge.librarian import Librarian
from moa.knowledge.model import NoSources, Passage
from moa.knowledge.privacy import audience_of
from moa.policy import AccessPolicy, ConcurrencyGate, TurnLocks, rate_refusal
from moa.presets import Catalog, Preset
from moa.prompts import NO_SOURCES_NOTE
from moa.persistence import ConversationStore, HistoryBudget, ProposalRecord, RunRecord

log = logging.getLogger("moa.answer")

INTERRUPTED_TEXT = "The answer was interrupted (the bot restarted). Please ask again."
RESTARTING_TEXT = "I'm restarting right now. Please ask again in a minute."
CANNOT_STORE_TEXT = (
    "I can't store questions right now (my database is not writable), so I can't answer this one. "
    "An operator has been alerted by the health check; please ask again later."
)
SHOW_TIMEOUT_S = 60.0  # how long a final view may take to deliver before the run is recorded without it
# After the shutdown grace, the answers still running are cancelled; this bounds how long their "interrupted"
# message may take, so that a stuck platform cannot hold the process past its orchestrator's patience.
INTERRUPT_TIMEOUT_S = 10.0
SHRUG = "shrug"  # the reaction on an unprompted question no team source matched, in silent mode


@dataclass(frozen=True)
class RunSummary:
    """One line per answer for logs and metrics."""

    run_id: str
    platform: str
    preset: str
    status: str  # done | fallback | failed | interrupted | stopped | cancelled
    seconds: float
    usage: Usage
    error: str = ""


@dataclass(frozen=True)
class Drafts:
    """A run's proposals, as "Show drafts" shows them."""

    run_id: str
    question: str
    proposals: tuple[ProposalRecord, ...]


class StopResult(StrEnum):
    STOPPED = "stopped"
    NOT_ASKER = "not_asker"  # only the person who asked may stop an answer
    NOT_RUNNING = "not_running"  # finished already, or not answered by this process


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
        on_feedback: Callable[[str], None] | None = None,
        redact: Callable[[str], str] = str,
        librarian: Librarian | None = None,
        no_sources: NoSources = NoSources.ANSWER,
        replica: str = "",
    ) -> None:
        """`redact` masks secrets in every text that is stored or shown (errors from providers may echo keys).

        `librarian`: team knowledge, searched before every run (None: answers from the models alone);
        `no_sources`: what an unprompted question in a knowledge channel gets when nothing matches;
        `replica`: this process's id, the owner of the runs it answers (see `storage.interface.Storage`).
        """
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
        self._on_feedback = on_feedback
        self._redact = redact
        self._librarian = librarian
        self._silent = no_sources is NoSources.SILENT
        self._replica = replica
        self._accepting = True
        self._hand_over = False  # once not accepting: questions and late answers are left to other replicas
        self._in_flight: set[asyncio.Task[object]] = set()
        self._running: dict[str, _Run] = {}
        self._turns = TurnLocks()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def accepting(self) -> bool:
        return self._accepting

    async def answer(self, question: Question, sink: ReplySink) -> str | None:
        """Handle one message addressed to the bot through `sink`: a question, `forget`, or a duplicate delivery.

        Returns the run id of an answered question; None when nothing was answered (a refusal, a `forget`, an
        event seen before). From the moment it is called until it returns, the message counts as in flight, so
        a shutdown waits for it (or marks it interrupted at the end of the grace), even while its placeholder
        still waits for the platform's rate limit. While stopping with `hand_over`, a question is stored and
        its placeholder posted, and another replica answers it.
        """
        async with self._tracked():
            if not self._accepting and not self._hand_over:
                await sink.refuse(Refusal(RESTARTING_TEXT, RefusalReason.RESTARTING))
                return None
            if not await self._first_delivery(question):
                log.debug("%s delivered before; not answered again", question.event_id)
                return None
            if question.history is None:  # a conversation the caller holds has no stored history to act on
                request = read_request(question.text)
                if request.kind == "forget":
                    await self._forget(question, sink)
                    return None
                # a `preset:` prefix wins over the platform's preset option, which wins over the channel's setting
                channel = self.catalog.channel(question.key.platform, question.key.channel, question.parent_channel)
                preset = request.preset or question.preset or (channel.preset if channel else None)
                question = replace(question, text=request.text, preset=preset)
            return await self._take(question, sink)

    async def _take(self, question: Question, sink: ReplySink) -> str | None:
        try:
            preset = _overridden(self.catalog.get(question.preset or self.default_preset), question.overrides)
        except ConfigError as exc:
            text = str(exc).replace("unknown preset", "I don't know the preset")
            await sink.refuse(Refusal(text, RefusalReason.UNKNOWN_PRESET))
            return None
        refusal = self.policy.refusal(question) or await self._rate_refusal(question)
        if refusal is not None:
            await sink.refuse(refusal)
            return None
        passages: list[Passage] | None = None  # searched once the placeholder is up, so that it comes at once
        if question.unprompted and self._uses_knowledge(question) and self._silent:
            # ...except where nothing is posted at all when nothing matches: then the search decides first
            passages = await self._retrieve(question)
            if not passages:
                await react(sink, SHRUG)  # seen, and nothing posted: the channel is not a place for guesses
                return None
        # the question is on disk before anything is posted or any model is asked
        try:
            run_id = await self._store.create_run(
                question.key, question.user, question.text, preset.name, question.event_id, owner=self._replica
            )
        except StorageError as exc:
            log.error("could not store a question from %s: %s", question.key, exc)
            await sink.refuse(Refusal(CANNOT_STORE_TEXT, RefusalReason.UNAVAILABLE))
            return None
        sink = _Stamped(sink, run_id)
        try:
            placeholder = await sink.open(ReplyView(Phase.WORKING, _asking(preset)))
        except BaseException as exc:
            # nowhere to answer: record why, and let the adapter tell the user another way if it can
            interrupted = isinstance(exc, asyncio.CancelledError)
            await self._record(
                self._store.finish_run(
                    run_id,
                    status="interrupted" if interrupted else "failed",
                    error="interrupted before a reply was posted"
                    if interrupted
                    else self._redact(f"placeholder not posted: {exc}")[:500],
                )
            )
            if interrupted:
                refusal = Refusal(INTERRUPTED_TEXT, RefusalReason.RESTARTING)
                await self._finish_quietly(sink.refuse(refusal), INTERRUPT_TIMEOUT_S)
            raise
        thread = placeholder.get("thread")
        if thread and thread != question.key.thread:
            question = replace(question, key=replace(question.key, thread=thread))
            await self._record(self._store.move_run(run_id, question.key))
        await self._record(self._store.set_placeholder(run_id, placeholder))
        if self._hand_over:  # stopping: the placeholder is on record, and another replica answers into it
            await self._record(self._store.release_run(run_id))
            log.info("run %s handed over to another replica", run_id)
            return run_id
        await self._run(run_id, question, preset, sink, passages)
        return run_id

    async def _rate_refusal(self, question: Question) -> Refusal | None:
        """The question counted against its asker's rate, in every process serving the database; a refusal
        when over it. A database that cannot count does not stop the question (the store refuses it next)."""
        bucket = self.policy.bucket(question)
        if bucket is None:
            return None
        try:
            wait = await self._store.admit(bucket.name, bucket.rate.count, bucket.rate.per_s)
        except StorageError as exc:
            log.warning("could not count a question against %s's rate: %s", question.user, exc)
            return None
        return None if wait is None else rate_refusal(bucket.rate, wait)

    def _uses_knowledge(self, question: Question) -> bool:
        return self._librarian is not None and question.knowledge

    async def _retrieve(self, question: Question) -> list[Passage]:
        """The team sources for a question, for its asker's eyes only; none when the index cannot be read."""
        if self._librarian is None or not question.knowledge:
            return []
        window_budget = HistoryBudget(limit=4 * self._librarian.policy.window_chars)
        try:
            window = await self._store.load_history(question.key, window_budget)
            passages = await self._librarian.find(question.text, window, audience_of(question))
        except StorageError as exc:
            log.error("could not search team knowledge for %s: %s", question.key, exc)
            return []
        return [p for p in passages if p.source != question.source]

    async def _first_delivery(self, question: Question) -> bool:
        """False when any id of this delivery was seen before. A database that cannot record it does not stop
        the question: the store refuses it a moment later with a message the user sees."""
        try:
            return await self._store.first_time(question.key.platform, *question.delivery_ids)
        except StorageError as exc:
            log.warning("could not record event %s: %s", question.event_id, exc)
            return True

    async def _forget(self, question: Question, sink: ReplySink) -> None:
        refusal = self.policy.access_refusal(question)
        if refusal is not None:
            await sink.refuse(refusal)
            return
        try:
            removed = await self._store.forget(question.key)
        except StorageError as exc:
            log.error("could not forget %s: %s", question.key, exc)
            await sink.refuse("I couldn't delete the history right now (my database is not writable). "
                              "Please try again later.")
            return
        if removed:
            text = (f"Done: I deleted this conversation's stored history ({removed} messages). "
                    "My next answer here starts from scratch.")
        else:
            text = ("There is no stored history for this conversation, so there is nothing to forget. "
                    "(To forget a thread, say `forget` inside that thread.)")
        await sink.refuse(text)

    async def resume(self, run: RunRecord, sink: ReplySink) -> None:
        """Answer again a run that a crash interrupted, into its existing placeholder."""
        # The record keeps no DM flag or thread parent: without them the audience is never wider than the one
        # the question first had (a DM's own channel holds no knowledge; a thread loses its parent's).
        question = Question(run.key, run.user, run.question, run.preset, run.event_id)
        try:
            preset = self.catalog.get(run.preset)
        except ConfigError:
            preset = self.catalog.get(self.default_preset)
        async with self._tracked():
            await self._run(run.id, question, preset, _Stamped(sink, run.id), None)

    async def interrupt(self, run: RunRecord, sink: ReplySink) -> None:
        """Tell the user a run will not be answered, and record it so."""
        try:
            await sink.show(ReplyView(Phase.INTERRUPTED, "Interrupted", INTERRUPTED_TEXT))
        finally:
            await self._store.finish_run(run.id, status="interrupted", error="interrupted by a restart")

    def stop_intake(self, *, hand_over: bool = False) -> None:
        """Take no more questions; with `hand_over` (other replicas serve the database), questions still come
        in, are stored with their placeholders, and are left for another replica to answer."""
        self._accepting = False
        self._hand_over = hand_over

    async def drain(self, timeout_s: float, *, hand_over: bool = False) -> int:
        """Wait up to `timeout_s` for answers in flight; interrupt the rest, or with `hand_over` stop them and
        leave them unfinished for another replica to answer again. Returns how many did not finish."""
        self.stop_intake(hand_over=hand_over)
        deadline = asyncio.get_running_loop().time() + timeout_s
        late: set[asyncio.Task[object]] = set()
        # again and again: questions handed over while the others finish are in flight too
        while pending := set(self._in_flight):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                late = pending
                break
            await asyncio.wait(pending, timeout=remaining)
        if not late:
            return 0
        for task in late:
            task.cancel()
        await asyncio.wait(late, timeout=INTERRUPT_TIMEOUT_S)
        return len(late)

    @asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        """The calling task counts as in flight (for `drain` and /healthz) while inside."""
        task = asyncio.current_task()
        if task is None or task in self._in_flight:
            yield
            return
        self._in_flight.add(task)
        try:
            yield
        finally:
            self._in_flight.discard(task)

    async def _record(self, write: Awaitable[None]) -> None:
        """A bookkeeping write during a run: a database that fails now is logged, and the answer goes on
        (the question itself was stored before the run began)."""
        try:
            await write
        except StorageError as exc:
            log.error("could not record a run's progress: %s", exc)

    async def feedback(self, run_id: str, user: str, value: str) -> bool:
        """A 👍 ("up") or 👎 ("down") on a run's answer; a second click by the same person replaces the first.
        False when the run is unknown (purged, or never this deployment's)."""
        if value not in ("up", "down"):
            raise ValueError(f"feedback is 'up' or 'down', not {value!r}")
        recorded = await self._store.record_feedback(run_id, user, value)
        if recorded and self._on_feedback is not None:
            self._on_feedback(value)
        return recorded

    async def drafts(self, run_id: str) -> Drafts | None:
        """What each proposer wrote for a run, for "Show drafts"; None when the run is unknown."""
        found = await self._store.drafts(run_id)
        if found is None:
            return None
        question, proposals = found
        return Drafts(run_id, question, tuple(proposals))

    def stop(self, run_id: str, *, by: str, status: str = "stopped") -> StopResult:
        """Stop a run in this process at once (every model call is cancelled); only its asker may.

        `status` is what the run is recorded as: "stopped" (a Stop button) or "cancelled" (an API client went
        away). What was written so far stays on screen, marked as stopped.
        """
        run = self._running.get(run_id)
        if run is None:
            return StopResult.NOT_RUNNING
        if by != run.question.user:
            return StopResult.NOT_ASKER
        run.stop(status)
        return StopResult.STOPPED

    async def _run(
        self, run_id: str, question: Question, preset: Preset, sink: ReplySink, passages: list[Passage] | None
    ) -> None:
        run = _Run(run_id, question, preset, sink, time.monotonic(), passages)
        self._running[run_id] = run
        try:
            await self._run_tracked(run)
        finally:
            self._running.pop(run_id, None)

    async def _run_tracked(self, run: _Run) -> None:
        waited = False
        sink, preset, question = run.sink, run.preset, run.question

        async def queued(ahead: int) -> None:
            nonlocal waited
            waited = True
            status = "Queued, next in line…" if ahead == 0 else f"Queued, {ahead} ahead…"
            await sink.show(ReplyView(Phase.QUEUED, status))

        async def after_previous() -> None:
            nonlocal waited
            if not waited:  # told once, whether the answer before runs here or in another replica
                waited = True
                await sink.show(ReplyView(Phase.QUEUED, "Waiting for the answer before this one to finish…"))

        summary: RunSummary | None = None
        acquired = False
        try:
            async with self._turns.turn(question.key, after_previous):
                await self.gate.acquire(queued)
                acquired = True
                async with AsyncExitStack() as turn:
                    # after the gate: only answers that run hold a turn in the database (and a connection)
                    await self._claim_turn(turn, question, after_previous)
                    await self._record(self._store.mark_running(run.id))
                    if waited:
                        await sink.show(ReplyView(Phase.WORKING, _asking(preset)))
                    summary = await self._answer(run)
        except asyncio.CancelledError:
            if run.delivered is not None:  # stopped after the answer was shown: it is recorded as given
                status, text = run.delivered
                summary = run.summary(status)
                await self._record(self._store.finish_run(run.id, status=status, answer=text,
                                                          elapsed_s=summary.seconds))
                raise
            if run.stopped_as is None and self._hand_over:  # a shutdown, and another replica answers again
                summary = run.summary("handed_over", "left to another replica at shutdown")
                raise
            if run.stopped_as is None:  # a shutdown, not a person
                summary = run.summary("interrupted", "interrupted by shutdown")
                view = ReplyView(Phase.INTERRUPTED, "Interrupted", INTERRUPTED_TEXT)
                await self._finish_quietly(sink.show(view), INTERRUPT_TIMEOUT_S)
                await self._record(self._store.finish_run(run.id, status="interrupted", error=summary.error,
                                                          elapsed_s=summary.seconds))
                raise
            summary = await self._stopped(run)
        except Exception as exc:
            log.exception("run %s failed", run.id)
            # a product error's message is written for people; anything else is a bug, named in the log only
            error = self._redact(str(exc)) if isinstance(exc, MoaError) else "an unexpected error"
            message = f"Something went wrong on my side ({error}). Please try again."
            summary = run.summary("failed", error)
            await self._finish_quietly(sink.show(ReplyView(Phase.FAILED, "Failed", message)), SHOW_TIMEOUT_S)
            await self._record(self._store.finish_run(run.id, status="failed", error=summary.error,
                                                      elapsed_s=summary.seconds))
        finally:
            if acquired:
                await self.gate.release()
            if summary is not None:
                self._report(summary)

    async def _claim_turn(
        self, turn: AsyncExitStack, question: Question, on_wait: Callable[[], Awaitable[None]]
    ) -> None:
        """The conversation's turn across processes, held until `turn` closes; without it when the database
        cannot give it (the order of two answers is worth less than the answer)."""
        try:
            await turn.enter_async_context(self._store.claim_turn(question.key, on_wait))
        except StorageError as exc:
            log.warning("answering in %s without its turn in the database: %s", question.key, exc)

    async def _stopped(self, run: _Run) -> RunSummary:
        """The asker stopped the run: keep what was written, say it was stopped, and end normally."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # our own cancellation, handled here: the caller's task goes on
        status = run.stopped_as or "stopped"
        summary = run.summary(status, f"{status} by the asker")
        written = run.progress.text.strip()
        text = f"{written}\n\n_(stopped)_" if written else "_(stopped before the answer began)_"
        footer = f"{run.preset.name} · stopped after {summary.seconds:.1f} s"
        view = ReplyView(Phase.STOPPED, "Stopped", text, footer, models=run.progress.models)
        await self._finish_quietly(run.sink.show(view), SHOW_TIMEOUT_S)
        await self._record(self._store.finish_run(run.id, status=status, answer=written, error=summary.error,
                                                  elapsed_s=summary.seconds))
        return summary

    async def _answer(self, run: _Run) -> RunSummary:
        question, preset, sink, run_id = run.question, run.preset, run.sink, run.id
        key = question.key
        if question.history is None:
            await self._seed_context(question)
            history = await self._store.load_history(key, self._history)
        else:
            history = list(question.history)
        if run.passages is None:
            run.passages = await self._retrieve(question)
        conversation: list[Message] = [*history, {"role": "user", "content": question.text}]
        progress = run.progress
        redact = self._redact
        if run.passages and self._librarian is not None:
            await self._record(self._librarian.record_given(run_id, run.passages))
        ledger = _Ledger(redact)
        async for event in self._orchestrator.run(
            preset, conversation, system_prompt=self._standing(question), sources=prompt_sources(run.passages)
        ):
            if self._on_event is not None:
                self._on_event(run_id, event)
            ledger.note(event)
            if isinstance(event, (ProposalDone, ProposalFailed)):
                await self._record(self._store.add_proposals(run_id, [_proposal_record(event, redact)]))
            if isinstance(event, AnswerDone):
                progress.update(event)
                status = "fallback" if event.fallback else "done"
                footer = _footer(preset, event)
                text, cited = with_sources(event.text, run.passages)
                if not run.passages and question.unprompted and self._uses_knowledge(question):
                    text = f"{text.rstrip()}\n\n{NO_SOURCES_NOTE}"
                done = ReplyView(
                    Phase.DONE, "Done", text, footer,
                    models=progress.models, report=ledger.report(event), sources=cited,
                )
                await sink.show(done)
                run.delivered = (status, text)
                # the answer is delivered: a database failing from here on costs the record, not the answer
                if question.history is None:
                    await self._record(self._store.append_turn(key, question.text, text, run_id))
                error = redact(event.aggregator_error)
                await self._record(self._store.finish_run(
                    run_id, status=status, answer=text, error=error,
                    elapsed_s=event.elapsed_s, usage=event.usage,
                ))
                if cited and self._librarian is not None:
                    await self._record(self._librarian.record_cited(run_id, [ref.number for ref in cited]))
                return replace(run.summary(status, error), usage=event.usage)
            if isinstance(event, RunFailed):
                message = redact(event.message)
                await sink.show(ReplyView(Phase.FAILED, "Failed", message, models=progress.models))
                await self._record(
                    self._store.finish_run(run_id, status="failed", error=message, elapsed_s=event.elapsed_s)
                )
                return run.summary("failed", message)
            view = progress.update(event)
            if view is not None:
                await sink.show(view)
        raise MoaError("the run ended without an answer")  # the orchestrator always ends with one of the above

    def _standing(self, question: Question) -> str:
        """The team's standing instructions for this question: its channel's, else the deployment's."""
        channel = self.catalog.channel(question.key.platform, question.key.channel, question.parent_channel)
        if channel is not None and channel.system_prompt:
            return channel.system_prompt
        return self.catalog.system_prompt

    async def _seed_context(self, question: Question) -> None:
        """The first time the bot is asked inside a thread it has not been part of, read the thread once.

        Every conversation's first question records the visit, with or without a loader (a thread the bot
        starts itself is one it has been part of), so that a restart or a `forget` never makes the platform be
        read again for this conversation.
        """
        key = question.key
        if not await self._store.first_time(key.platform, f"context:{key}"):
            return
        if question.context is None or await self._store.has_history(key):
            return
        messages = await question.context()
        if messages:
            await self._store.seed_history(key, messages)

    async def _finish_quietly(self, delivery: Awaitable[None], timeout_s: float) -> None:
        """Deliver a final message while already failing; a second failure is logged, not raised."""
        try:
            async with asyncio.timeout(timeout_s):
                await delivery
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


@dataclass
class _Run:
    """One answer being written: what it answers, where it shows, and whether someone stopped it."""

    id: str
    question: Question
    preset: Preset
    sink: ReplySink
    started: float
    # the team sources the models are given, numbered from 1 (None: not searched yet)
    passages: list[Passage] | None = None
    stopped_as: str | None = None  # "stopped" / "cancelled" once someone stopped it
    delivered: tuple[str, str] | None = None  # (status, text) once the final answer is shown
    progress: _Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = _Progress(self.preset)
        self._task = asyncio.current_task()

    def stop(self, status: str) -> None:
        if self.stopped_as is None and self._task is not None:
            self.stopped_as = status
            self._task.cancel()

    def summary(self, status: str, error: str = "") -> RunSummary:
        return RunSummary(self.id, self.question.key.platform, self.preset.name, status,
                          time.monotonic() - self.started, Usage(), error)


class _Stamped:
    """The adapter's sink, with every view it is shown naming the run (buttons on a message carry its id)."""

    def __init__(self, sink: ReplySink, run_id: str) -> None:
        self._sink = sink
        self._run_id = run_id

    async def open(self, view: ReplyView) -> dict[str, str]:
        return await self._sink.open(replace(view, run_id=self._run_id))

    async def show(self, view: ReplyView) -> None:
        await self._sink.show(replace(view, run_id=self._run_id))

    async def refuse(self, message: str) -> None:
        await self._sink.refuse(message)


class _Progress:
    """Turns orchestrator events into the one-line status, the streamed text, and each model's state."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.finished = 0
        self.answered = 0
        self.text = ""
        self._models: dict[tuple[str, int, int], ModelStatus] = {}  # (role, layer, index) -> status
        self._aggregating_since = 0.0

    @property
    def models(self) -> tuple[ModelStatus, ...]:
        return tuple(self._models.values())

    def update(self, event: Event) -> ReplyView | None:
        view = self._view(event)
        return None if view is None else replace(view, models=self.models)

    def _view(self, event: Event) -> ReplyView | None:
        proposer_layers = self.preset.layers - 1
        if isinstance(event, ProposalStarted):
            self._models[("proposer", event.layer, event.index)] = ModelStatus(
                event.model, "proposer", event.layer, "drafting"
            )
            if event.index == 0:
                self.finished = self.answered = 0
            if event.index < event.total - 1:
                return None  # one view once the whole round has started
            status = f"Asking {event.total} models…"
            if proposer_layers > 1:
                status = f"Round {event.layer} of {proposer_layers}: {status}"
            return ReplyView(Phase.WORKING, status)
        if isinstance(event, (ProposalDone, ProposalFailed)):
            self._models[("proposer", event.layer, event.index)] = _proposal_status(event)
            self.finished += 1
            self.answered += isinstance(event, ProposalDone)
            status = f"{self.answered}/{len(self.preset.proposers)} drafts in…"
            if proposer_layers > 1:
                status = f"Round {event.layer} of {proposer_layers}: {status}"
            return ReplyView(Phase.WORKING, status)
        if isinstance(event, AggregationStarted):
            self._aggregating_since = time.monotonic()
            self._set_aggregator(event.model, "synthesizing", detail=f"{event.drafts} drafts")
            if event.proposers == 0:
                return None
            return ReplyView(Phase.WORKING, f"{event.drafts}/{event.proposers} drafts in, synthesizing…")
        if isinstance(event, AggregationRetrying):
            self._set_aggregator(event.model, "synthesizing", detail=f"{event.reason}; retrying")
            status = f"The synthesizing model {event.reason}; retrying (attempt {event.attempt})…"
            return ReplyView(Phase.STREAMING if self.text else Phase.WORKING, status, self.text)
        if isinstance(event, AnswerDelta):
            self.text = event.text if event.reset else self.text + event.text
            self._set_aggregator(self.preset.aggregator, "writing")
            return ReplyView(Phase.STREAMING, "Writing…", self.text)
        if isinstance(event, AnswerDone):
            usage = event.usage_by_model.get(event.aggregator)
            self._set_aggregator(
                event.aggregator,
                "failed" if event.fallback else "done",
                seconds=time.monotonic() - self._aggregating_since,
                tokens=usage.completion_tokens if usage else None,
                detail="the best draft is shown instead" if event.fallback else "",
            )
        return None

    def _set_aggregator(self, model: str, state: str, **fields: object) -> None:
        key = ("aggregator", self.preset.layers, 0)
        self._models[key] = ModelStatus(model, "aggregator", self.preset.layers, state, **fields)  # type: ignore[arg-type]


def _proposal_status(event: ProposalDone | ProposalFailed) -> ModelStatus:
    if isinstance(event, ProposalDone):
        return ModelStatus(event.model, "proposer", event.layer, "done", round(event.latency_s, 1),
                           event.usage.completion_tokens)
    state = "cut_off" if event.straggler else "failed"
    return ModelStatus(event.model, "proposer", event.layer, state, round(event.latency_s, 1),
                       detail=_why(event.error, event.straggler))


def _why(error: str, straggler: bool) -> str:
    """A failed draft's reason in a few words (the full error is in the run record)."""
    if straggler:
        return "too slow"
    lowered = error.lower()
    for words, reason in (("429", "rate limited"), ("rate limit", "rate limited"), ("timed out", "timed out"),
                          ("401", "key refused"), ("403", "key refused"), ("404", "model not found"),
                          ("cannot connect", "unreachable")):
        if words in lowered:
            return reason
    return "error"


class _Ledger:
    """What a run did, model by model, gathered from its events for the final view's report."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._proposals: list[ProposalDone | ProposalFailed] = []
        self._aggregation_started: float | None = None
        self._first_token_s: float | None = None

    def note(self, event: Event) -> None:
        if isinstance(event, ProposalDone):
            self._proposals.append(event)
        elif isinstance(event, ProposalFailed):
            self._proposals.append(replace(event, error=self._redact(event.error)))
        elif isinstance(event, AggregationStarted):
            self._aggregation_started = time.monotonic()
        elif isinstance(event, AnswerDelta) and self._first_token_s is None:
            self._first_token_s = self._since_aggregation()

    def report(self, done: AnswerDone) -> RunReport:
        done = replace(done, aggregator_error=self._redact(done.aggregator_error))
        return RunReport(done, tuple(self._proposals), self._since_aggregation(), self._first_token_s)

    def _since_aggregation(self) -> float:
        started = self._aggregation_started
        return 0.0 if started is None else time.monotonic() - started


def _overridden(preset: Preset, overrides: Overrides) -> Preset:
    """The preset with what the question changes for the aggregator."""
    if overrides == Overrides():
        return preset
    return replace(
        preset,
        aggregator_temperature=preset.aggregator_temperature if overrides.temperature is None else overrides.temperature,
        aggregator_max_tokens=preset.aggregator_max_tokens if overrides.max_tokens is None else overrides.max_tokens,
    )


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


def _proposal_record(event: ProposalDone | ProposalFailed, redact: Callable[[str], str]) -> ProposalRecord:
    if isinstance(event, ProposalDone):
        return ProposalRecord(event.layer, event.model, event.text, event.latency_s, event.usage)
    return ProposalRecord(
        event.layer, event.model, "", event.latency_s, Usage(), redact(event.error), event.straggler
    )
