"""Slack's assistant pane (the AI-app view): a greeting and suggested prompts in every new assistant thread, the
thread's title from its first question, and the channel its user is looking at.

Questions asked in the pane arrive as direct messages in its thread and are answered like any other (streamed,
with the thread's status while drafting); this module adds what is the pane's own. The thread's context (the
channel the user has open beside the pane, which decides the team knowledge an answer there may use) is kept for
the thread while the bot runs, and `assistant_thread_context_changed` updates it. Everything here is best effort:
a failure is logged and the pane still works as a direct message.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.pacing import RetryLater
from adapters.slack.api import SlackCallError
from adapters.slack.formatting import SlackMessage, seal_plain
from adapters.slack.outbox import Outbox
from moa.presets import Catalog

log = logging.getLogger("adapters.slack")

GREETING = (
    "Hi! I'm moa. Each question goes to several AI models at once: each writes a draft, and one more model "
    "combines the best of them into one answer. Ask me anything, or start with one of these."
)
# (title, message): what MoA and the team's knowledge do. A channel's `suggested_prompts` replace them.
DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = (
    ("What is a Mixture of Agents?", "What is a Mixture of Agents, and why can several models answer better than one?"),
    ("Compare two approaches", "Compare a message queue and a cron job for sending nightly reports: when is each the better choice?"),
    ("Review a plan", "Here is my plan for moving our service to a new database. What could go wrong, and what should I do first?"),
    ("What did the team decide?", "What has the team decided recently about how we deploy, and where was it discussed?"),
)  # fmt: skip
PROMPTS_TITLE = "Try asking"
TITLE_CHARS = 80
REMEMBERED_THREADS = 10_000


@dataclass
class _Thread:
    context: str  # the channel the user is looking at ("" when none)
    titled: bool = False


class AssistantPane:
    def __init__(self, outbox: Outbox, catalog: Catalog) -> None:
        self._outbox = outbox
        self._catalog = catalog
        self._threads: OrderedDict[tuple[str, str], _Thread] = OrderedDict()

    def context(self, channel: str, thread_ts: str) -> str | None:
        """The channel the user was looking at in this assistant thread; None when it is no assistant thread
        this process has seen start."""
        thread = self._threads.get((channel, thread_ts))
        return thread.context if thread is not None else None

    async def started(self, team: str, event: Mapping[str, Any]) -> None:
        """A new assistant thread: remember its context, greet, suggest prompts."""
        where = pane_thread(event)
        if where is None:
            return
        channel, thread_ts, context = where
        self._remember(channel, thread_ts, context)
        try:
            await self._outbox.reply(team, channel, thread_ts, SlackMessage(GREETING))
        except (SlackCallError, RetryLater) as exc:
            log.info("assistant thread %s not greeted: %s", thread_ts, exc)
        prompts = [
            {"title": seal_plain(title), "message": seal_plain(message, 2_000)}
            for title, message in self._prompts(channel, context)
        ]
        await self._outbox.assistant(
            team,
            "assistant.threads.setSuggestedPrompts",
            channel_id=channel,
            thread_ts=thread_ts,
            title=PROMPTS_TITLE,
            prompts=prompts,
        )

    def context_changed(self, event: Mapping[str, Any]) -> None:
        where = pane_thread(event)
        if where is not None:
            self._remember(*where)

    async def title(self, team: str, channel: str, thread_ts: str, question: str) -> None:
        """Title an assistant thread after its first question (once)."""
        thread = self._threads.get((channel, thread_ts))
        if thread is None or thread.titled or not question.strip():
            return
        thread.titled = True
        line = " ".join(question.split())
        await self._outbox.assistant(
            team,
            "assistant.threads.setTitle",
            channel_id=channel,
            thread_ts=thread_ts,
            title=seal_plain(line, TITLE_CHARS),
        )

    def _prompts(self, channel: str, context: str) -> Sequence[tuple[str, str]]:
        """The pane's own channel settings, else those of the channel the user looks at, else the defaults."""
        settings = self._catalog.channel("slack", channel, context)
        if settings is None or not settings.suggested_prompts:
            return DEFAULT_PROMPTS
        return [(prompt, prompt) for prompt in settings.suggested_prompts]

    def _remember(self, channel: str, thread_ts: str, context: str) -> None:
        thread = self._threads.pop((channel, thread_ts), None)
        self._threads[(channel, thread_ts)] = _Thread(context, thread.titled if thread else False)
        while len(self._threads) > REMEMBERED_THREADS:
            self._threads.popitem(last=False)


def pane_thread(event: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(channel, thread_ts, context channel) of an `assistant_thread_*` event; None when it names no thread."""
    thread = event.get("assistant_thread")
    if not isinstance(thread, dict):
        return None
    channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
    if not (isinstance(channel, str) and channel and isinstance(thread_ts, str) and thread_ts):
        return None
    context = thread.get("context")
    viewed = context.get("channel_id") if isinstance(context, dict) else None
    return channel, thread_ts, viewed if isinstance(viewed, str) else ""
