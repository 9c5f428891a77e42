"""What every command cog shares: the error handler, the ephemeral error reply, and autocompletes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord._requests import Requests, owner_of
from bot.discord._text import error_text
from bot.jobs import JobService
from generators.errors import UserError
from generators.models import ModelInfo
from generators.requests import Kind
from generators.text import clip

log = logging.getLogger(__name__)

KIND_WORDS = {Kind.IMAGE: "image", Kind.VIDEO: "clip"}


class FeatureCog(commands.Cog):
    """A feature's commands, with the job service and the shared request checks handed in."""

    def __init__(self, service: JobService, requests: Requests) -> None:
        self.service = service
        self.requests = requests

    async def cog_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """Errors a user caused become an ephemeral message; others are logged once."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, UserError):
            await reply_error(interaction, str(cause))
            return
        log.error("command %s failed", interaction.command and interaction.command.name, exc_info=cause)
        await reply_error(interaction, "something went wrong on our side; the admins can see it in the logs")


async def job_choices(
    service: JobService, interaction: discord.Interaction[Any], typed: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete entries for the user's recent jobs whose id or prompt contains what was typed."""
    records = await service.store.jobs_of(owner_of(interaction.user), limit=25)
    return [
        app_commands.Choice(name=clip(f"{r.id} · {r.status.value} · {r.job.request.prompt}", 100), value=r.id)
        for r in records
        if typed.lower() in r.id.lower() or typed.lower() in r.job.request.prompt.lower()
    ][:25]


def model_choices(models: Iterable[ModelInfo], typed: str) -> list[app_commands.Choice[str]]:
    """Autocomplete entries for the models whose name contains what was typed."""
    typed = typed.strip().lower()
    return [
        app_commands.Choice(name=clip(f"{m.name} · {KIND_WORDS[m.kind]}, {m.size} px", 100), value=m.name)
        for m in models
        if typed in m.name
    ][:25]


async def reply_error(interaction: discord.Interaction[Any], message: str) -> None:
    """An ephemeral error, whether or not the interaction was answered already."""
    text = error_text(message)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)
