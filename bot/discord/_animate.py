"""Animate: a picture turned into a clip, from a message's menu or a result's 🎬 button.

An animation is a remix whose request is a clip: the same checks, acknowledgement, safe intake and
queueing as :mod:`bot.discord._remix`, with ``--video`` added to what the member typed. The clip model
(named, or the default one) must have an image-to-video form; the catalog refuses one that has not,
naming those that have, before anything is acknowledged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import discord
from discord import app_commands

from bot.discord._cogs import reply_error
from bot.discord._pictures import NO_PICTURE, Picture, picture_in
from bot.discord._remix import Remixes, RemixForm
from bot.discord._reposts import check_repost
from bot.store import JobRecord
from generators.errors import BadRequest, UserError
from generators.models import Catalog, ModelInfo
from generators.requests import GenerationRequest, Kind

MENU_NAME = "Animate with memebot"
PLACEHOLDER = "what happens in the clip; flags like --seed 7 work"
#: ``--video`` as the grammar reads a flag (any dash, any case), to add it only where it is missing.
_VIDEO_FLAG = re.compile(r"(?:(?<=\s)|^)(?:--|—|–)video(?=\s|$)", re.IGNORECASE)


def animators(catalog: Catalog) -> list[ModelInfo]:
    """The clip models that can animate a picture (whose family has an image-to-video form)."""
    return [model for model in catalog.of_kind(Kind.VIDEO) if model.takes_picture]


def as_clip(text: str) -> str:
    """The member's command line as an animation: ``--video`` added unless it is there already."""
    return text if _VIDEO_FLAG.search(text) else f"{text} --video"


def animation_command(
    request: GenerationRequest, catalog: Catalog, command_line: Callable[[GenerationRequest], str]
) -> str:
    """A picture's command line as the start of its animation: the image-only flags (--n, --strength,
    --steps and the image model) dropped, and a clip model that can animate named when the default
    cannot (without a negative prompt where that model takes none)."""
    can = animators(catalog)
    model = next((m for m in can if m.name == catalog.video), can[0] if can else None)
    clip_request = dataclasses.replace(
        request,
        kind=Kind.VIDEO,
        n=1,
        strength=None,
        steps=None,
        source=None,
        model=None if model is None or model.name == catalog.video else model.name,
        negative="" if model is not None and model.negative == "none" else request.negative,
    )
    return command_line(clip_request)


class Animations:
    """The message menu and the 🎬 button: both ask for a prompt, then animate a picture as a remix."""

    def __init__(self, remixes: Remixes) -> None:
        self.remixes = remixes

    @property
    def catalog(self) -> Catalog:
        """This bot's models, as the job service knows them now."""
        return self.remixes.service.catalog

    def can_animate(self) -> bool:
        """Whether any clip model here can animate a picture (else there is no 🎬 to show)."""
        return bool(animators(self.catalog))

    def _check_can(self) -> None:
        if not self.can_animate():
            raise BadRequest("no clip model here can animate a picture")

    # -- the message menu ---------------------------------------------------------------------------

    def menu(self) -> app_commands.ContextMenu:
        """Right-click a message → Apps → Animate with memebot."""
        return app_commands.ContextMenu(name=MENU_NAME, callback=self.animate_message)

    async def animate_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """Ask for a prompt (and a model) for the message's picture; no picture is refused at once."""
        try:
            self._check_can()
            picture = picture_in(message, self.remixes.fetcher)
            if picture is None:
                raise BadRequest(NO_PICTURE)
            self.remixes.check(picture)
        except UserError as error:
            await reply_error(interaction, str(error))
            return
        names = ", ".join(model.name for model in animators(self.catalog))
        form = RemixForm(
            title=MENU_NAME,
            submit=partial(self._animate_picture, picture),
            placeholder=PLACEHOLDER,
            models=f"the default clip model; these animate: {names}",
        )
        await interaction.response.send_modal(form)

    async def _animate_picture(
        self, picture: Picture, interaction: discord.Interaction[Any], text: str, _: int
    ) -> None:
        await self.remixes.start(interaction, as_clip(text), partial(self.remixes.take, picture))

    # -- the 🎬 button under a result ---------------------------------------------------------------

    async def open_result(self, interaction: discord.Interaction[Any], record: JobRecord) -> None:
        """The form for animating a result: its command line made a clip's and, for a grid, which image.

        Someone else's age-restricted result (or another server's) is refused, as for 🎨.
        """
        if record.job.request.kind is Kind.VIDEO or record.result is None:
            raise BadRequest("only finished pictures can be animated")
        check_repost(record, interaction)
        self._check_can()
        service = self.remixes.service
        form = RemixForm(
            title=f"Animate job {record.id}",
            submit=partial(self._animate_result, record),
            command=animation_command(record.job.request, self.catalog, service.command_line),
            images=len(record.result.seeds),
            placeholder=PLACEHOLDER,
        )
        await interaction.response.send_modal(form)

    async def _animate_result(
        self, record: JobRecord, interaction: discord.Interaction[Any], text: str, index: int
    ) -> None:
        await self.remixes.start_from_result(record, interaction, as_clip(text), index)
