"""The buttons under an answer: Stop while it is written; 👍, 👎 and Show drafts once it is done.

Each button's custom_id names its action and the run (`moa:stop:RUNID`), so a click needs no state in the process:
`AnswerButton` is a discord.py `DynamicItem`, registered once on the client (`client.add_dynamic_items`), and
discord.py rebuilds it from the custom_id of any click on any message, including messages sent before a restart.
A message's buttons are described by `Controls` (a value) and turned into a `discord.ui.View` only when sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import discord

from moa.conversation import ReplyView

STOP = "stop"
UP = "up"
DOWN = "down"
DRAFTS = "drafts"
CUSTOM_ID = re.compile(rf"moa:(?P<action>{STOP}|{UP}|{DOWN}|{DRAFTS}):(?P<run>[0-9A-Za-z_-]{{1,80}})")

# how each button looks: label, emoji (all are grey: none of them should draw the eye from the answer)
_LOOKS: dict[str, tuple[str | None, str | None]] = {
    STOP: ("Stop", "⏹️"),
    UP: (None, "👍"),
    DOWN: (None, "👎"),
    DRAFTS: ("Show drafts", None),
}


@dataclass(frozen=True)
class Controls:
    """The buttons of one message: which actions, on which run."""

    run_id: str = ""
    actions: tuple[str, ...] = ()


NO_CONTROLS = Controls()


def while_writing(view: ReplyView) -> Controls:
    """Stop, on every message of an answer still being written (only its asker may use it)."""
    return Controls(view.run_id, (STOP,)) if view.run_id else NO_CONTROLS


def on_answer(view: ReplyView) -> Controls:
    """Feedback, and the drafts when there were any, on the last message of a finished answer."""
    if not view.run_id:
        return NO_CONTROLS
    drafted = any(model.role == "proposer" for model in view.models)  # not so for one model alone (layers = 1)
    return Controls(view.run_id, (UP, DOWN, DRAFTS) if drafted else (UP, DOWN))


@runtime_checkable
class ClickTarget(Protocol):
    """The client a click arrives on hands it to the adapter."""

    async def clicked(self, interaction: discord.Interaction, action: str, run_id: str) -> None: ...


class AnswerButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID):
    """One button under an answer; rebuilt from its custom_id whenever someone clicks it."""

    def __init__(self, action: str, run_id: str) -> None:
        label, emoji = _LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=f"moa:{action}:{run_id}",
            )
        )
        self.action = action
        self.run_id = run_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AnswerButton:
        return cls(match["action"], match["run"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if isinstance(interaction.client, ClickTarget):
            await interaction.client.clicked(interaction, self.action, self.run_id)


def as_view(controls: Controls) -> discord.ui.View | None:
    """The buttons as discord.py sends them; None for none (an edit with None removes a message's buttons)."""
    if not controls.actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in controls.actions:
        view.add_item(AnswerButton(action, controls.run_id))
    return view
