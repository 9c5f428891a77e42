"""Slash commands: /imagine, /animate, /meme, /queue, /cancel, /show, /info and /settings."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands
from PIL import Image

from bot.addresses import as_discord
from bot.discord._delivery import result_file
from bot.discord._policy import GuildSettings, save_guild
from bot.discord._requests import Requests, checked_job_id, owner_of
from bot.discord._text import code, error_text, escape, models_lines, result_text, workers_line
from bot.jobs import JobService
from bot.store import JobStatus
from generators import render
from generators.errors import BadRequest, Forbidden, NotFound, UserError
from generators.models import ModelInfo
from generators.requests import GenerationRequest, Kind
from generators.text import clip

log = logging.getLogger(__name__)

ASPECTS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9"]
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
KIND_WORDS = {Kind.IMAGE: "image", Kind.VIDEO: "clip"}
#: What /settings set model: takes to go back to the bot's own defaults.
BOT_DEFAULT = "default"


def command_text(prompt: str, **options: Any) -> str:
    """The slash command's options as the one grammar's flags, after the prompt."""
    flags = {"negative": "no", "n": "n", "seed": "seed", "aspect": "ar", "steps": "steps", "top": "top"}
    flags |= {"bottom": "bottom", "model": "model"}
    parts = [prompt]
    for name, flag in flags.items():
        value = options.get(name)
        if value is not None and value != "":
            parts.append(f"--{flag} {value}")
    if options.get("video"):
        parts.append("--video")
    return " ".join(parts)


class Generation(commands.Cog):
    """Everything users type."""

    settings = app_commands.Group(
        name="settings",
        description="This server's memebot settings (Manage Server)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )
    ban = app_commands.Group(name="ban", description="The server's ban list", parent=settings)

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

    async def start(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Parse, check, acknowledge and queue: the path every generating command takes."""
        guild = await self.requests.guild(interaction.guild_id)
        request = self.requests.parse(text, guild, interaction.channel_id)
        await self.start_request(interaction, request, guild)

    async def start_request(
        self, interaction: discord.Interaction[Any], request: GenerationRequest, guild: GuildSettings
    ) -> None:
        """Check and queue a request (also used by the buttons)."""
        request = self.requests.check(
            request,
            user=interaction.user,
            guild_id=interaction.guild_id,
            channel=interaction.channel,
            guild=guild,
        )
        try:
            await self.requests.submit_interaction(interaction, request, guild)
        except UserError as error:  # lost a race for the last queue slot after acknowledging
            await interaction.edit_original_response(content=f"❌ {error}")

    @app_commands.command()
    @app_commands.describe(
        prompt="What to draw; flags like --no, --seed, --ar 16:9 work here too",
        negative="What to keep out",
        n="How many images (1-9)",
        seed="A seed, to get the same picture again",
        aspect="Aspect ratio",
        steps="Denoising steps",
        top="Meme caption at the top",
        bottom="Meme caption at the bottom",
        video="A short clip instead of a grid",
        model="Which image model draws it (see /info)",
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECTS])
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 600],
        negative: str | None = None,
        n: app_commands.Range[int, 1, 9] | None = None,
        seed: app_commands.Range[int, 0, 4294967295] | None = None,
        aspect: str | None = None,
        steps: app_commands.Range[int, 1, 100] | None = None,
        top: str | None = None,
        bottom: str | None = None,
        video: bool = False,
        model: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """Draw a grid of pictures (or a clip) from a prompt."""
        options = {"negative": negative, "n": n, "seed": seed, "aspect": aspect, "steps": steps, "top": top}
        options |= {"bottom": bottom, "video": video, "model": self.checked_model(model, None)}
        await self.start(interaction, command_text(prompt, **options))

    @app_commands.command()
    @app_commands.describe(
        prompt="What happens in the clip",
        seed="A seed",
        top="Caption at the top",
        bottom="Caption at the bottom",
        model="Which clip model makes it (see /info)",
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def animate(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 600],
        seed: app_commands.Range[int, 0, 4294967295] | None = None,
        top: str | None = None,
        bottom: str | None = None,
        model: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """Make a short animated clip from a prompt."""
        model = self.checked_model(model, Kind.VIDEO)
        text = command_text(prompt, seed=seed, top=top, bottom=bottom, video=True, model=model)
        await self.start(interaction, text)

    def checked_model(self, name: str | None, kind: Kind | None) -> str | None:
        """A model option as typed (the client lets anyone type anything): one of this bot's models,
        of ``kind`` when given, else BadRequest naming the ones there are."""
        if name is None:
            return None
        model = self.service.catalog.check_name(name.strip().lower())
        if kind is not None and model.kind is not kind:
            names = ", ".join(m.name for m in self.service.catalog.of_kind(kind)) or "none"
            what = KIND_WORDS[kind]
            raise BadRequest(f"{model.name} is not a {what} model; the {what} models here are {names}")
        return model.name

    @app_commands.command(description="Put meme captions on an image or on one of your results")
    @app_commands.describe(
        image="An image to caption", job="Or the id of a result", top="Top text", bottom="Bottom text"
    )
    async def meme(
        self,
        interaction: discord.Interaction[Any],
        top: str | None = None,
        bottom: str | None = None,
        image: discord.Attachment | None = None,
        job: str | None = None,
    ) -> None:
        """/meme: captions are drawn here, no GPU involved."""
        if not (top or bottom):
            raise BadRequest("give a top or bottom text")
        guild = await self.requests.guild(interaction.guild_id)
        self.requests.check_captions(top or "", bottom or "", channel=interaction.channel, guild=guild)
        source, hidden = await self._meme_source(interaction, image, job)
        self.requests.limits.take(interaction.user.id, interaction.guild_id)
        await interaction.response.defer(thinking=True)
        data = await source.read() if isinstance(source, discord.Attachment) else await _read(source)
        budget = interaction.filesize_limit
        encoded = await asyncio.to_thread(_caption_bytes, data, top or "", bottom or "", budget)
        spoiler = hidden or self.requests.spoiler(interaction.channel, guild)
        file = discord.File(io.BytesIO(encoded.data), filename=f"meme.{encoded.ext}", spoiler=spoiler)
        await interaction.edit_original_response(content=None, attachments=[file])

    async def _meme_source(
        self, interaction: discord.Interaction[Any], image: discord.Attachment | None, job: str | None
    ) -> tuple[discord.Attachment | Path, bool]:
        """What to caption, and whether the result must be spoilered (a result made under NSFW rules)."""
        if image is not None:
            if not (image.content_type or "").startswith("image/") or image.size > 20 * 1024 * 1024:
                raise BadRequest("attach a picture (PNG, JPEG, GIF or WebP) under 20 MiB")
            return image, False
        record = await self.service.store.get(checked_job_id(job)) if job else None
        if record is None or record.result is None:
            raise NotFound("attach an image or give the id of a finished job")
        return record.result.primary.path, self.requests.check_repost(record, interaction)

    @app_commands.command(description="Your jobs in the queue, and how long the queue is")
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        """/queue."""
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

    @app_commands.command(description="Cancel one of your jobs")
    @app_commands.describe(job="Which job (default: your latest)")
    async def cancel(self, interaction: discord.Interaction[Any], job: str | None = None) -> None:
        """/cancel."""
        owner = owner_of(interaction.user)
        if job is None:
            active = await self.service.store.jobs_of(owner, ACTIVE, limit=1)
            if not active:
                raise NotFound("you have no job waiting or running")
            job = active[0].id
        job = checked_job_id(job)
        await self.service.cancel(job, by=owner)
        await interaction.response.send_message(f"Cancelling {code(job, 80)}.", ephemeral=True)

    @app_commands.command(name="show", description="Post a result again, with its parameters")
    @app_commands.describe(job="The job id")
    async def show(self, interaction: discord.Interaction[Any], job: str) -> None:
        """/show: reposting never pings the requester, and keeps age-restricted results where they belong."""
        record = await self.service.store.get(checked_job_id(job))
        if record is None:
            raise NotFound(f"there is no job {job.strip()}")
        if record.result is None:
            raise BadRequest(f"job {record.id} has no result ({record.status.value})")
        hidden = self.requests.check_repost(record, interaction)
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
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @cancel.autocomplete("job")
    @show.autocomplete("job")
    @meme.autocomplete("job")
    async def _job_choices(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        records = await self.service.store.jobs_of(owner_of(interaction.user), limit=25)
        return [
            app_commands.Choice(
                name=clip(f"{r.id} · {r.status.value} · {r.job.request.prompt}", 100), value=r.id
            )
            for r in records
            if typed.lower() in r.id.lower() or typed.lower() in r.job.request.prompt.lower()
        ][:25]

    @imagine.autocomplete("model")
    async def _imagine_models(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        kind = Kind.VIDEO if getattr(interaction.namespace, "video", False) else Kind.IMAGE
        return model_choices(self.service.catalog.of_kind(kind), typed)

    @animate.autocomplete("model")
    async def _clip_models(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        return model_choices(self.service.catalog.of_kind(Kind.VIDEO), typed)

    # -- /settings (Manage Server) -----------------------------------------------------------------

    async def _admin(self, interaction: discord.Interaction[Any]) -> tuple[int, GuildSettings]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise Forbidden("only people with Manage Server can change memebot's settings")
        return interaction.guild_id, await self.requests.guild(interaction.guild_id)

    async def _save(
        self, interaction: discord.Interaction[Any], guild_id: int, settings: GuildSettings
    ) -> None:
        await save_guild(self.service.store, guild_id, settings)
        self.requests.remember(guild_id, settings)
        await interaction.response.send_message(describe_settings(settings), ephemeral=True)

    @settings.command(name="show", description="Show this server's settings")
    async def settings_show(self, interaction: discord.Interaction[Any]) -> None:
        """/settings show."""
        _, settings = await self._admin(interaction)
        await interaction.response.send_message(describe_settings(settings), ephemeral=True)

    @settings.command(name="set")
    @app_commands.describe(
        default_n="Images per request here (1-9)",
        model=f"Default model for its kind (images or clips) here; {BOT_DEFAULT}: the bot's own",
        channel="Apply default_n and model to this channel only",
        max_n="Most images one request may ask for on this server",
        allow_nsfw="Allow flagged prompts in age-restricted channels (off: nowhere)",
        requester_only_buttons="Only the requester (or moderators) may use a result's buttons",
        spoiler="Post every result as a spoiler",
    )
    async def settings_set(
        self,
        interaction: discord.Interaction[Any],
        default_n: app_commands.Range[int, 1, 9] | None = None,
        channel: discord.TextChannel | None = None,
        max_n: app_commands.Range[int, 1, 9] | None = None,
        allow_nsfw: bool | None = None,
        requester_only_buttons: bool | None = None,
        spoiler: bool | None = None,
        model: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """Change defaults and policies."""
        guild_id, settings = await self._admin(interaction)
        if model is not None:
            where = None if channel is None else channel.id
            settings = settings.with_model(self._model_setting(model), where)
        changes: dict[str, Any] = {
            name: value for name, value in (("max_n", max_n), ("allow_nsfw", allow_nsfw)) if value is not None
        }
        if default_n is not None and channel is not None:
            changes["channel_n"] = settings.channel_n | {str(channel.id): default_n}
        elif default_n is not None:
            changes["default_n"] = default_n
        if requester_only_buttons is not None:
            changes["requester_only_buttons"] = requester_only_buttons
        if spoiler is not None:
            changes["spoiler"] = spoiler
        await self._save(interaction, guild_id, _replace(settings, changes))

    def _model_setting(self, typed: str) -> ModelInfo | None:
        name = typed.strip().lower()
        if name == BOT_DEFAULT and name not in self.service.catalog:
            return None
        return self.service.catalog.check_name(name)

    @settings_set.autocomplete("model")
    async def _any_models(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        back = app_commands.Choice(name=f"{BOT_DEFAULT} (the bot's own defaults)", value=BOT_DEFAULT)
        return [*model_choices(self.service.catalog, typed), back][:25]

    @ban.command(name="add", description="Refuse prompts containing a word")
    async def ban_add(
        self, interaction: discord.Interaction[Any], word: app_commands.Range[str, 1, 100]
    ) -> None:
        """/settings ban add."""
        guild_id, settings = await self._admin(interaction)
        words = tuple(dict.fromkeys((*settings.ban_words, word.strip().lower())))
        await self._save(interaction, guild_id, _replace(settings, {"ban_words": words}))

    @ban.command(name="remove", description="Allow a banned word again")
    async def ban_remove(self, interaction: discord.Interaction[Any], word: str) -> None:
        """/settings ban remove."""
        guild_id, settings = await self._admin(interaction)
        words = tuple(w for w in settings.ban_words if w != word.strip().lower())
        await self._save(interaction, guild_id, _replace(settings, {"ban_words": words}))


def _replace(settings: GuildSettings, changes: dict[str, Any]) -> GuildSettings:
    return dataclasses.replace(settings, **changes)


def model_choices(models: Iterable[ModelInfo], typed: str) -> list[app_commands.Choice[str]]:
    """Autocomplete entries for the models whose name contains what was typed."""
    typed = typed.strip().lower()
    return [
        app_commands.Choice(name=clip(f"{m.name} · {KIND_WORDS[m.kind]}, {m.size} px", 100), value=m.name)
        for m in models
        if typed in m.name
    ][:25]


def describe_settings(settings: GuildSettings) -> str:
    """The settings as an admin reads them."""
    channels = ", ".join(f"<#{c}>: {n}" for c, n in settings.channel_n.items()) or "none"
    channel_models = ", ".join(f"<#{c}>: {_models(m)}" for c, m in settings.channel_models.items())
    return "\n".join(
        [
            f"Default images: {settings.default_n or 'bot default'} (per channel: {channels})",
            f"Default models: {_models(settings.models)} (per channel: {channel_models or 'none'})",
            f"Most images per request: {settings.max_n or 'bot limit'}",
            f"Flagged prompts in age-restricted channels: {'allowed' if settings.allow_nsfw else 'never'}",
            f"Buttons only for the requester: {'yes' if settings.requester_only_buttons else 'no'}",
            f"Spoiler on every result: {'yes' if settings.spoiler else 'no'}",
            f"Banned words: {escape(clip(', '.join(settings.ban_words), 1000)) or 'none'}",
        ]
    )


def _models(models: dict[str, str]) -> str:
    words = {kind.value: word for kind, word in KIND_WORDS.items()}
    return ", ".join(f"{words.get(kind, kind)} {name}" for kind, name in models.items()) or "bot default"


async def reply_error(interaction: discord.Interaction[Any], message: str) -> None:
    """An ephemeral error, whether or not the interaction was answered already."""
    text = error_text(message)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


async def _read(path: Path) -> bytes:
    return await asyncio.to_thread(path.read_bytes)


def _caption_bytes(data: bytes, top: str, bottom: str, budget: int) -> render.Encoded:
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    return render.encode_image(render.caption(picture, top=top, bottom=bottom), budget_bytes=budget)
