"""Discord: `/moa`, mentions answered in threads, knowledge channels and DMs (discord.py 2.x).

app.py         the adapter: discord.py client lifecycle, events -> questions
addressing.py  which messages are addressed to the bot, and where their conversations live
formatting.py  message text -> question; views -> message contents within 2,000 characters (pure)
sink.py        one answer to a message on the shared delivery core: placeholder, paced edits, final messages
controls.py    the buttons under answers (Stop; 👍, 👎, Show drafts), with the run id in their custom_ids
clicks.py      a click on one of them: the core stops the run, stores the feedback or reads the drafts
interaction.py one answer to /moa: the command's reply while its 15-minute token works, then channel messages
knowledge.py   team knowledge: knowledge channels indexed live and backfilled, their files, ✅ verifications
pacing.py      how fast the adapter writes: settings and the per-channel budgets
commands.py    the slash commands and their sync, only when the definitions changed
api.py         the REST seam: gateway discovery, token check, call metrics, error mapping
"""

from __future__ import annotations

from adapters.discord.api import DiscordSetupError, check_token
from adapters.discord.app import DiscordAdapter
from adapters.discord.pacing import DiscordPacing

__all__ = ["DiscordAdapter", "DiscordPacing", "DiscordSetupError", "check_token"]
