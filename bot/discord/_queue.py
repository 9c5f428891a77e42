"""/queue, /cancel and /show: the user's jobs, waiting, running or done."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.addresses import as_discord
from bot.discord._cogs import FeatureCog, job_choices
from bot.discord._delivery import result_file
from bot.discord._reposts import check_repost
from bot.discord._requests import checked_job_id, owner_of
from bot.discord._text import code, escape, result_text
from bot.store import JobStatus
from generators.errors import BadRequest, NotFound
from generators.text import clip

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class QueueCommands(FeatureCog):
    """What a user asks about their jobs."""

    @app_commands.command()
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        """Your jobs in the queue, and how long the queue is"""
        owner = owner_of(interaction.user)
        order = self.service.runner.queue.order()
        lines = [
            f"{code(job.id, 80)} {position} ahead · {escape(clip(job.request.prompt, 60))}"
            for position, job in enumerate(order)
            if job.owner == owner
        ]
        running = await self.service.store.jobs_of(owner, {JobStatus.RUNNING})
        lines += [
            f"{code(r.id, 80)} generating now · {escape(clip(r.job.request.prompt, 60))}" for r in running
        ]
        mine = "\n".join(lines) or "You have no jobs waiting."
        await interaction.response.send_message(f"{mine}\nIn the queue: {len(order)} jobs.", ephemeral=True)

    @app_commands.command()
    @app_commands.describe(job="Which job (default: your latest)")
    async def cancel(self, interaction: discord.Interaction[Any], job: str | None = None) -> None:
        """Cancel one of your jobs"""
        owner = owner_of(interaction.user)
        if job is None:
            active = await self.service.store.jobs_of(owner, ACTIVE, limit=1)
            if not active:
                raise NotFound("you have no job waiting or running")
            job = active[0].id
        job = checked_job_id(job)
        await self.service.cancel(job, by=owner)
        await interaction.response.send_message(f"Cancelling {code(job, 80)}.", ephemeral=True)

    @app_commands.command()
    @app_commands.describe(job="The job id")
    async def show(self, interaction: discord.Interaction[Any], job: str) -> None:
        """Post a result again, with its parameters"""
        # Reposting never pings the requester, and keeps age-restricted results in their own server.
        record = await self.service.store.get(checked_job_id(job))
        if record is None:
            raise NotFound(f"there is no job {job.strip()}")
        if record.result is None:
            raise BadRequest(f"job {record.id} has no result ({record.status.value})")
        hidden = check_repost(record, interaction)
        self.requests.limits.take(interaction.user.id, interaction.guild_id)
        guild = await self.requests.guild(interaction.guild_id)
        content = result_text(
            record.job.request,
            seed=record.result.seeds[0],
            job_id=record.id,
            user_id=int(as_discord(record.reply_to).get("user_id", interaction.user.id)),
            command=self.service.command_line(record.job.request),
        )
        spoiler = hidden or self.requests.spoiler(interaction.channel, guild)
        file = await result_file(record.result.primary.path, spoiler=spoiler)
        await interaction.response.send_message(content, file=file)

    @cancel.autocomplete("job")
    @show.autocomplete("job")
    async def _job_choices(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        return await job_choices(self.service, interaction, typed)
