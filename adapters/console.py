"""The terminal as a platform: the answer streams to stdout, progress goes to stderr.

On a terminal, progress is one line rewritten in place, with a mark per model as it finishes
("drafting: ✓ llama-3.3-70b 2.1 s · ✗ qwen-72b · … synthesizing…"); when stderr is a pipe or a file, every step
is a line of its own, so logs and scripts read it as before.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from moa.answering import short_model
from moa.conversation import Phase, ReplyView
from moa.errors import ProviderError
from moa.events import AggregationStarted, Event, ProposalDone, ProposalFailed, ProposalStarted
from moa.failure import Audience, readdress

CLEAR_LINE = "\r\x1b[K"
STOPPED_TEXT = "Stopped."


def _with_subclasses(cls: type) -> set[type]:
    return {cls, *(c for sub in cls.__subclasses__() for c in _with_subclasses(sub))}


# the type names that `ProviderError.short` puts before a message ("ProviderUnavailable 503: ...")
_ERROR_TAGS = {cls.__name__ for cls in _with_subclasses(ProviderError)}


class Progress:
    """What the models are doing, on stderr: in place on a terminal (`live`), plain lines otherwise."""

    def __init__(self, err: TextIO, *, live: bool, show_proposals: bool = False) -> None:
        self.err = err
        self.live = live
        self.show_proposals = show_proposals
        self._status = ""  # the answerer's status line: "Asking 4 models…", "Queued, 2 ahead…"
        self._marks: list[str] = []  # "✓ llama-3.3-70b 2.1 s", in the order the models finished
        self._pending = 0
        self._round = ""  # "round 2: " from the second proposer layer on
        self._synthesizing = False
        self._shown = ""  # what the live line shows now

    def status(self, text: str) -> None:
        if text == self._status:
            return
        self._status = text
        if self.live:
            self._redraw()
        else:
            self._line(text)

    def event(self, event: Event) -> None:
        if isinstance(event, ProposalStarted):
            if event.index == 0:  # a new layer: its own marks
                self._marks, self._pending, self._synthesizing = [], 0, False
                self._round = f"round {event.layer}: " if event.layer > 1 else ""
            self._pending += 1
        elif isinstance(event, (ProposalDone, ProposalFailed)):
            self._pending -= 1
            self._marks.append(_mark(event))
            if not self.live:
                self._line(describe_event(event, show_proposals=self.show_proposals) or "")
            elif isinstance(event, ProposalDone) and self.show_proposals:
                self.note(f"  draft by {event.model}:\n{_draft_block(event)}")
        elif isinstance(event, AggregationStarted):
            self._synthesizing = event.proposers > 0
        else:
            return
        if self.live:
            self._redraw()

    def note(self, text: str) -> None:
        """A line that stays (above the live line, which is drawn again below it)."""
        if self.live and self._shown:
            self.err.write(CLEAR_LINE)
            self._line(text)
            self._write_live(self._shown)
        else:
            self._line(text)

    def end(self) -> None:
        """Stop updating in place: the model marks stay as a line of their own, a bare status is cleared."""
        if not self.live or not self._shown:
            return
        self.err.write(CLEAR_LINE)
        if self._marks:
            self._line(f"drafts: {' · '.join(self._marks)}")
        self.err.flush()
        self._shown = ""

    def _redraw(self) -> None:
        if self._marks or self._synthesizing:
            parts = list(self._marks)
            if self._pending:
                parts.append("…")
            if self._synthesizing:
                parts.append("synthesizing…")
            text = f"{self._round}drafting: {' · '.join(parts)}"
        else:
            text = self._status
        if text != self._shown:
            self._write_live(text)

    def _write_live(self, text: str) -> None:
        # a line longer than the terminal wraps, and a wrapped line cannot be rewritten with a carriage return
        width = shutil.get_terminal_size().columns - 1
        visible = text if len(text) <= width else "…" + text[len(text) - width + 1 :]
        self.err.write(CLEAR_LINE + visible)
        self.err.flush()
        self._shown = text

    def _line(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


class ConsoleSink:
    """One answer in the terminal. `stopped` is set by whoever stops the answer on the user's behalf (Ctrl-C),
    so that the end reads "Stopped." whether the core stopped the run or its task was cancelled before it began."""

    def __init__(self, out: TextIO, progress: Progress, *, stream_answer: bool = True) -> None:
        self.out = out
        self.progress = progress
        self.stream_answer = stream_answer
        self.printed = ""
        self.final: ReplyView | None = None
        self.stopped = False
        self.run_id = ""  # known once the question is stored

    async def open(self, view: ReplyView) -> dict[str, str]:
        await self.show(view)
        return {"platform": "console"}

    async def show(self, view: ReplyView) -> None:
        self.run_id = view.run_id or self.run_id
        if view.phase in (Phase.STREAMING, Phase.DONE):
            self.progress.end()
            self._print_answer(view.text)
        elif not view.final:
            self.progress.status(view.status)
        if not view.final:
            return
        self.progress.end()
        self.final = view
        if self.printed and self.stream_answer:
            self.out.write("\n")
            self.out.flush()
        if view.phase is Phase.DONE:
            self.progress.note(f"— {view.footer}")
        elif view.phase is Phase.STOPPED or (view.phase is Phase.INTERRUPTED and self.stopped):
            self.progress.note(STOPPED_TEXT)
        else:
            self.progress.note(readdress(view.text, Audience.TERMINAL))

    async def refuse(self, message: str) -> None:
        self.final = ReplyView(Phase.FAILED, "Refused", message)
        self.progress.note(message)

    def _print_answer(self, text: str) -> None:
        if not self.stream_answer:
            return
        if not text.startswith(self.printed):
            # the aggregator was retried or replaced by a fallback: start the answer over on a new line
            self.progress.note("(the answer restarts)")
            self.out.write("\n")
            self.printed = ""
        self.out.write(text[len(self.printed) :])
        self.out.flush()
        self.printed = text


class Console:
    """The terminal for a whole session: one sink per answer, and the core's events routed to the current one."""

    def __init__(
        self, out: TextIO, err: TextIO, *, live: bool, show_proposals: bool = False, stream_answer: bool = True
    ) -> None:
        self.out = out
        self.err = err
        self.live = live
        self.show_proposals = show_proposals
        self.stream_answer = stream_answer
        self.current: ConsoleSink | None = None

    def sink(self) -> ConsoleSink:
        progress = Progress(self.err, live=self.live, show_proposals=self.show_proposals)
        self.current = ConsoleSink(self.out, progress, stream_answer=self.stream_answer)
        return self.current

    def on_event(self, run_id: str, event: Event) -> None:
        if self.current is not None:
            self.current.progress.event(event)

    def say(self, text: str) -> None:
        """A line for the user on stderr, outside any answer."""
        self.err.write(text + "\n")
        self.err.flush()


def describe_event(event: Event, *, show_proposals: bool) -> str | None:
    """A progress line for stderr about one model, or None."""
    if isinstance(event, ProposalDone):
        line = (
            f"  ✓ {event.model} (layer {event.layer}) {event.latency_s:.1f} s, "
            f"{event.usage.completion_tokens} tokens"
        )
        if event.attempts > 1:
            line += f", after {event.attempts} attempts"
        if show_proposals:
            line += "\n" + _draft_block(event)
        return line
    if isinstance(event, ProposalFailed):
        line = f"  ✗ {event.model} (layer {event.layer}) {event.latency_s:.1f} s: {failure_detail(event)}"
        return line + (f", after {event.attempts} attempts" if event.attempts > 1 else "")
    return None


def failure_detail(event: ProposalFailed) -> str:
    """Why a model failed, without repeating its name or the error's type ("HTTP 503: overloaded")."""
    tag, sep, rest = event.error.partition(": ")
    detail = rest if sep and tag.split(" ")[0] in _ERROR_TAGS else event.error
    return detail.removeprefix(f"{event.model}: ")


def _mark(event: ProposalDone | ProposalFailed) -> str:
    name = short_model(event.model)
    if isinstance(event, ProposalFailed):
        return f"✗ {name} cut off" if event.straggler else f"✗ {name}"
    retried = f" ({event.attempts} tries)" if event.attempts > 1 else ""
    return f"✓ {name} {event.latency_s:.1f} s{retried}"


def _draft_block(event: ProposalDone) -> str:
    return "\n".join(f"    | {row}" for row in event.text.strip().splitlines())
