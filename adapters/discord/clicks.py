"""A click on an answer's button: the core is asked, and the person who clicked gets an answer.

Discord drops a click not answered within 3 s, so each one is acknowledged before anything slow:
- Stop: allowed, a deferred update (the answer itself shows "(stopped)" a moment later); refused, an ephemeral
  note saying why.
- 👍 / 👎: a deferred update at once (a quiet acknowledgement: the answer is everyone's, so it cannot show one
  person's choice), then stored; a run no longer stored gets an ephemeral note.
- Show drafts: an ephemeral "thinking…" at once, then the drafts in it and in ephemeral follow-ups.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.controls import DRAFTS, STOP
from adapters.discord.formatting import draft_pieces
from adapters.discord.sink import NO_PINGS
from moa.answering import Answerer, StopResult
from moa.errors import StorageError

log = logging.getLogger("adapters.discord")

STOP_REFUSED = {
    StopResult.NOT_ASKER: "Only the person who asked can stop this answer.",
    StopResult.NOT_RUNNING: "This answer is not being written any more, so there is nothing to stop.",
}
FEEDBACK_GONE = "That answer is no longer stored, so I can't record feedback on it."
DRAFTS_GONE = "That answer is no longer stored, so its drafts can't be shown."
NO_DATABASE = "I can't reach my database right now, so I can't do that. Please try again later."


class Clicks:
    def __init__(self, answerer: Answerer) -> None:
        self._answerer = answerer

    async def handle(self, interaction: discord.Interaction, action: str, run_id: str) -> None:
        """Answer one click on a button of `run_id`'s answer; Discord refusing a reply is logged."""
        try:
            if action == STOP:
                await self._stop(interaction, run_id)
            elif action == DRAFTS:
                await self._drafts(interaction, run_id)
            else:
                await self._feedback(interaction, run_id, action)
        except discord.HTTPException as exc:
            log.warning(
                "could not answer a click on %s of run %s: %s %s %s", action, run_id, exc.status, exc.code, exc.text
            )

    async def _stop(self, interaction: discord.Interaction, run_id: str) -> None:
        result = self._answerer.stop(run_id, by=str(interaction.user.id))
        if result is StopResult.STOPPED:
            await interaction.response.defer()
        else:
            await _tell(interaction, STOP_REFUSED[result])

    async def _feedback(self, interaction: discord.Interaction, run_id: str, value: str) -> None:
        await interaction.response.defer()
        try:
            recorded = await self._answerer.feedback(run_id, str(interaction.user.id), value)
        except StorageError as exc:
            log.error("could not store feedback on run %s: %s", run_id, exc)
            await _tell(interaction, NO_DATABASE)
            return
        if not recorded:
            await _tell(interaction, FEEDBACK_GONE)

    async def _drafts(self, interaction: discord.Interaction, run_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            drafts = await self._answerer.drafts(run_id)
        except StorageError as exc:
            log.error("could not read the drafts of run %s: %s", run_id, exc)
            pieces = [NO_DATABASE]
        else:
            pieces = draft_pieces(drafts) if drafts is not None else [DRAFTS_GONE]
        await interaction.edit_original_response(content=pieces[0], allowed_mentions=NO_PINGS)
        for piece in pieces[1:]:
            await interaction.followup.send(piece, ephemeral=True, allowed_mentions=NO_PINGS)


async def _tell(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral note to the person who clicked: the click's response, or a follow-up once it is answered."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
