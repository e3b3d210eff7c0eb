"""Slack: mentions, DMs, `/moa`, knowledge channels and the assistant pane answered in threads (slack-bolt, Socket
Mode or HTTP), streamed natively where Slack allows it.

app.py         the adapter: bolt wiring, lifecycle, events -> questions
addressing.py  which events are addressed to the bot, and where answers go (pure)
formatting.py  user text -> question; Markdown answer -> Slack messages, stream frames, sources, buttons (pure)
streaming.py   every answer's sink: native streaming, else (and after it) the paced edits of sink.py
sink.py        one answer by paced edits on the shared delivery core (adapters/delivery.py)
status.py      the thread's status line while drafting
refusals.py    where Slack refused streaming or the status, so later answers skip it
clicks.py      Stop, 👍/👎 and Show drafts
assistant.py   the assistant pane: greeting, suggested prompts, titles, the channel in view
knowledge.py   team knowledge: knowledge channels backfilled and indexed live, edits, deletions, files, ✅
documents.py   Slack messages and files as team-knowledge documents (text, author, privacy, permalink, bytes)
inbound.py     HTTP mode: signature and body checks before anything parses a request
directory.py   names of people, and a thread read once as context
outbox.py      posting, editing and streaming within Slack's rate limits
api.py         the Web API seam: timeouts, metrics, error mapping
"""

from __future__ import annotations

from adapters.slack.api import check_auth
from adapters.slack.app import SlackAdapter
from adapters.slack.outbox import SlackPacing

__all__ = ["SlackAdapter", "SlackPacing", "check_auth"]
