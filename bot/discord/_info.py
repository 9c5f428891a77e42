"""/info and /help: what this bot runs and how to ask it."""

from __future__ import annotations

import time
from typing import Any

import discord
from discord import app_commands

from bot.discord._cogs import FeatureCog
from bot.discord._requests import Requests
from bot.discord._text import help_lines, models_lines, workers_line
from bot.jobs import JobService


class Info(FeatureCog):
    """What the bot can tell anyone about itself; ``classifier`` says whether results are judged."""

    def __init__(
        self, service: JobService, requests: Requests, *, classifier: str = "image classifier: off"
    ) -> None:
        super().__init__(service, requests)
        self.classifier = classifier

    @app_commands.command()
    async def info(self, interaction: discord.Interaction[Any]) -> None:
        """The models, the queue and recent speed."""
        hour_ago = time.time() - 3600
        recent = await self.service.store.recent(500)
        finished = [r for r in recent if r.result is not None and (r.finished_at or 0) > hour_ago]
        seconds = [r.result.elapsed_s for r in finished if r.result is not None]
        speed = f", {sum(seconds) / len(seconds):.1f} s each on average" if seconds else ""
        lines = [
            *models_lines(self.service.catalog, self.service.runner.model_states()),
            f"Queue: {len(self.service.runner.queue)} waiting",
            f"Last hour: {len(finished)} jobs finished{speed}",
            workers_line(self.service.runner.workers),
            self.classifier[:1].upper() + self.classifier[1:],
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(name="help")
    async def help_(self, interaction: discord.Interaction[Any]) -> None:
        """How to write a prompt: the flags, and the models to pick from"""
        text = "\n".join(help_lines(self.service.limits, self.service.catalog))
        await interaction.response.send_message(text, ephemeral=True)
