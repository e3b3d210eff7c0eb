"""Discord: `/moa`, mentions answered in threads, knowledge channels and DMs (discord.py 2.x).

app.py         the adapter: discord.py client lifecycle, events -> questions
events.py      which messages are questions, and where their conversations live
formatting.py  message text -> question; views -> message contents within 2,000 characters (pure)
sink.py        one answer's placeholder, paced edits, final messages, the 15-minute token handover
commands.py    the slash commands and their sync, only when the definitions changed
api.py         the REST seam: gateway discovery, token check, call metrics, error mapping
"""

from __future__ import annotations

from adapters.discord.api import DiscordSetupError, check_token
from adapters.discord.app import DiscordAdapter
from adapters.discord.sink import DiscordPacing

__all__ = ["DiscordAdapter", "DiscordPacing", "DiscordSetupError", "check_token"]
