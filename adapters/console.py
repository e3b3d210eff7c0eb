"""The terminal as a platform: the answer streams to stdout, progress goes to stderr."""

from __future__ import annotations

from typing import TextIO

from moa.conversation import Phase, ReplyView
from moa.events import Event, ProposalDone, ProposalFailed


class ConsoleSink:
    def __init__(self, out: TextIO, err: TextIO, *, stream_answer: bool = True) -> None:
        self.out = out
        self.err = err
        self.stream_answer = stream_answer
        self.printed = ""
        self.status = ""
        self.final: ReplyView | None = None

    async def open(self, view: ReplyView) -> dict[str, str]:
        await self.show(view)
        return {"platform": "console"}

    async def show(self, view: ReplyView) -> None:
        if view.status != self.status and not view.final and view.phase is not Phase.STREAMING:
            self.status = view.status
            self._err(view.status)
        if view.phase is Phase.STREAMING or view.has_answer:
            self._print_answer(view.text)
        if view.final:
            self.final = view
            if view.has_answer:
                if self.stream_answer:
                    self.out.write("\n")
                    self.out.flush()
                self._err(f"— {view.footer}")
            else:
                self._err(view.text)

    async def refuse(self, message: str) -> None:
        self.final = ReplyView(Phase.FAILED, "Refused", message)
        self._err(message)

    def _print_answer(self, text: str) -> None:
        if not self.stream_answer:
            return
        if not text.startswith(self.printed):
            # the aggregator was retried or replaced by a fallback: start the answer over on a new line
            self._err("(the answer restarts)")
            self.out.write("\n")
            self.printed = ""
        self.out.write(text[len(self.printed):])
        self.out.flush()
        self.printed = text

    def _err(self, line: str) -> None:
        self.err.write(line + "\n")
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
            line += "\n" + "\n".join("    | " + row for row in event.text.strip().splitlines())
        return line
    if isinstance(event, ProposalFailed):
        return f"  ✗ {event.model} (layer {event.layer}) {event.latency_s:.1f} s: {event.error}"
    return None
