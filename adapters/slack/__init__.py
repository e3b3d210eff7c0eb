"""Slack: mentions, DMs, `/moa` and knowledge channels answered in threads (slack-bolt, Socket Mode or HTTP).

app.py         the adapter: bolt wiring, lifecycle, events -> questions
events.py      which events are questions, and where answers go (pure)
formatting.py  user text -> question; Markdown answer -> Slack messages (pure)
sink.py        one answer's placeholder, paced edits and final messages
outbox.py      posting and editing within Slack's rate limits
api.py         the Web API seam: timeouts, metrics, error mapping
"""

from __future__ import annotations

from adapters.slack.api import check_auth
from adapters.slack.app import SlackAdapter
from adapters.slack.outbox import SlackPacing

__all__ = ["SlackAdapter", "SlackPacing", "check_auth"]
