"""Slack: mentions, DMs, `/moa` and knowledge channels answered in threads (slack-bolt, Socket Mode or HTTP).

app.py         the adapter: bolt wiring, lifecycle, events -> questions
addressing.py  which events are addressed to the bot, and where answers go (pure)
formatting.py  user text -> question; Markdown answer -> Slack messages (pure)
sink.py        one answer in a thread on the shared delivery core (adapters/delivery.py)
inbound.py     HTTP mode: signature and body checks before anything parses a request
directory.py   names of people, and a thread read once as context
outbox.py      posting and editing within Slack's rate limits
api.py         the Web API seam: timeouts, metrics, error mapping
"""

from __future__ import annotations

from adapters.slack.api import check_auth
from adapters.slack.app import SlackAdapter
from adapters.slack.outbox import SlackPacing

__all__ = ["SlackAdapter", "SlackPacing", "check_auth"]
