"""Buttons under results that keep working after a restart.

Each button's custom id carries the action and the job id (``mb:var:<job>:3``); the parameters come from
the job store when it is clicked, never from this process's memory.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Protocol

import discord

TEMPLATE = (
    r"mb:(?P<action>reroll|var|up|del|cancel|remix|anim)"
    r":(?P<job>[A-Za-z0-9_-]{8,64})(?::(?P<index>[1-9]))?"
)
PER_ROW = 5


class Action(enum.StrEnum):
    """What a button does."""

    REROLL = "reroll"
    VARIATION = "var"
    UPSCALE = "up"
    DELETE = "del"
    CANCEL = "cancel"
    REMIX = "remix"
    ANIMATE = "anim"


class ButtonHandler(Protocol):
    """The bot, as the buttons see it."""

    async def on_job_button(
        self, interaction: discord.Interaction[Any], action: Action, job_id: str, index: int
    ) -> None:
        """Do what the button says."""


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """A button naming a job (and an image of it)."""

    def __init__(
        self,
        action: Action,
        job_id: str,
        index: int = 0,
        *,
        label: str = "",
        emoji: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        custom_id = f"mb:{action.value}:{job_id}" + (f":{index}" if index else "")
        super().__init__(
            discord.ui.Button(label=label or None, emoji=emoji, style=style, custom_id=custom_id), row=row
        )
        self.action = action
        self.job_id = job_id
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        """Rebuild the button from a click (after a restart too)."""
        index = int(match["index"]) if match["index"] else 0
        return cls(Action(match["action"]), match["job"], index)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the bot."""
        handler: ButtonHandler = interaction.client
        await handler.on_job_button(interaction, self.action, self.job_id, self.index)


def result_view(job_id: str, images: int, *, animate: bool = False) -> discord.ui.View:
    """🔄 and 🗑 (and 🎨 for pictures: clips have ``images`` 0; 🎬 too where a clip model can
    ``animate`` one), then V1..Vn and U1..Un for grids (rows of at most five)."""
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton(Action.REROLL, job_id, emoji="🔄", row=0))
    view.add_item(JobButton(Action.DELETE, job_id, emoji="🗑️", row=0))
    if images:
        view.add_item(JobButton(Action.REMIX, job_id, label="Remix", emoji="🎨", row=0))
    if images and animate:
        view.add_item(JobButton(Action.ANIMATE, job_id, label="Animate", emoji="🎬", row=0))
    rows_each = (images + PER_ROW - 1) // PER_ROW
    for group, (action, letter) in enumerate(((Action.VARIATION, "V"), (Action.UPSCALE, "U"))):
        for i in range(1, images + 1):
            row = 1 + group * rows_each + (i - 1) // PER_ROW
            view.add_item(JobButton(action, job_id, i, label=f"{letter}{i}", row=row))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    """The ✖ under a job that is still waiting or running."""
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton(Action.CANCEL, job_id, emoji="✖️", style=discord.ButtonStyle.danger))
    return view
