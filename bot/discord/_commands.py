"""The generating commands: /imagine, /animate and /meme."""

from __future__ import annotations

import asyncio
import io
import logging
from functools import partial
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from PIL import Image

from bot.discord._cogs import KIND_WORDS, FeatureCog, job_choices, model_choices
from bot.discord._pictures import Picture, check_reported
from bot.discord._policy import GuildSettings
from bot.discord._remix import Remixes, withdraw
from bot.discord._reposts import check_repost
from bot.discord._requests import Requests, checked_job_id
from bot.jobs import JobService
from generators import render
from generators.errors import BadRequest, NotFound, UserError
from generators.intake import IntakeLimits, decode_isolated
from generators.requests import GenerationRequest, Kind

log = logging.getLogger(__name__)

ASPECTS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9"]
#: /meme captions a picture at most this big on its long side: plenty for a meme, and it fits the upload.
MEME_SIDE = 2048


def command_text(prompt: str, **options: Any) -> str:
    """The slash command's options as the one grammar's flags, after the prompt."""
    flags = {"negative": "no", "n": "n", "seed": "seed", "aspect": "ar", "steps": "steps", "top": "top"}
    flags |= {"bottom": "bottom", "model": "model", "strength": "strength"}
    parts = [prompt]
    for name, flag in flags.items():
        value = options.get(name)
        if value is not None and value != "":
            parts.append(f"--{flag} {value}")
    if options.get("video"):
        parts.append("--video")
    return " ".join(parts)


class Generation(FeatureCog):
    """The commands that make something: /imagine, /animate and /meme."""

    def __init__(self, service: JobService, requests: Requests, remixes: Remixes) -> None:
        super().__init__(service, requests)
        self.remixes = remixes

    async def start(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Parse, check, acknowledge and queue: the path every generating command takes."""
        guild = await self.requests.guild(interaction.guild_id)
        request = self.requests.parse(text, guild, interaction.channel_id)
        await self.start_request(interaction, request, guild)

    async def start_request(
        self, interaction: discord.Interaction[Any], request: GenerationRequest, guild: GuildSettings
    ) -> None:
        """Check and queue a request (also used by the buttons)."""
        request = self.requests.check_interaction(request, interaction, guild)
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
        image="A picture to start from (a remix)",
        strength="With a picture: how much of it to redraw, from 0.05 to 1",
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
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.05, 1.0] | None = None,
    ) -> None:
        """Draw a grid of pictures (or a clip) from a prompt, or from a picture and a prompt."""
        options = {"negative": negative, "n": n, "seed": seed, "aspect": aspect, "steps": steps, "top": top}
        options |= {"bottom": bottom, "video": video, "model": self.checked_model(model, None)}
        # The grammar takes at most three decimals; the client sends whatever float was typed.
        options["strength"] = None if strength is None else f"{round(strength, 3):g}"
        await self.start_with(interaction, command_text(prompt, **options), image)

    async def start_with(
        self, interaction: discord.Interaction[Any], text: str, image: discord.Attachment | None
    ) -> None:
        """:meth:`start`, or with a picture a remix of it (an animation when ``text`` asks for a clip)."""
        if image is None:
            await self.start(interaction, text)
            return
        picture = Picture.of_attachment(image)
        self.remixes.check(picture)  # from what Discord reports: a bomb is never downloaded
        await self.remixes.start(interaction, text, partial(self.remixes.take, picture))

    @app_commands.command()
    @app_commands.describe(
        prompt="What happens in the clip",
        seed="A seed",
        top="Caption at the top",
        bottom="Caption at the bottom",
        model="Which clip model makes it (see /info)",
        image="A picture to animate (its first frame)",
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
        image: discord.Attachment | None = None,
    ) -> None:
        """Make a short animated clip from a prompt, or make a picture move."""
        model = self.checked_model(model, Kind.VIDEO)
        text = command_text(prompt, seed=seed, top=top, bottom=bottom, video=True, model=model)
        await self.start_with(interaction, text, image)

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

    @app_commands.command()
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
        """Put meme captions on an image or on one of your results"""
        # Captions are drawn here, no GPU involved.
        if not (top or bottom):
            raise BadRequest("give a top or bottom text")
        guild = await self.requests.guild(interaction.guild_id)
        self.requests.check_captions(top or "", bottom or "", channel=interaction.channel, guild=guild)
        source, hidden = await self._meme_source(interaction, image, job)
        self.requests.limits.take(interaction.user.id, interaction.guild_id)
        spoiler = hidden or self.requests.spoiler(interaction.channel, guild)
        await interaction.response.defer(thinking=True)
        try:
            file = await self._meme_file(interaction, source, (top or "", bottom or ""), spoiler=spoiler)
        except UserError as error:  # a picture refused once fetched: the "thinking…" goes away again
            await withdraw(interaction, str(error))
            return
        await interaction.edit_original_response(content=None, attachments=[file])

    async def _meme_file(
        self,
        interaction: discord.Interaction[Any],
        source: Picture | Path,
        captions: tuple[str, str],
        *,
        spoiler: bool,
    ) -> discord.File:
        """The captioned picture: fetched like every member's picture, decoded in a process of its own."""
        if isinstance(source, Picture):
            data = await self.remixes.fetcher.fetch(source.url)
        else:
            try:
                data = await _read(source)
            except FileNotFoundError as error:  # retention removed it since the job was looked up
                raise NotFound("that result's picture is gone; make it again") from error
        limits = IntakeLimits.of(self.service.limits)
        picture = await decode_isolated(data, limits=limits, max_side=MEME_SIDE)
        budget = interaction.filesize_limit
        encoded = await asyncio.to_thread(_caption_bytes, picture, *captions, budget)
        return discord.File(io.BytesIO(encoded.data), filename=f"meme.{encoded.ext}", spoiler=spoiler)

    async def _meme_source(
        self, interaction: discord.Interaction[Any], image: discord.Attachment | None, job: str | None
    ) -> tuple[Picture | Path, bool]:
        """What to caption, and whether the result must be spoilered (an age-restricted result)."""
        if image is not None:
            # Discord read the header for us: refused without downloading it at all.
            picture = Picture.of_attachment(image)
            check_reported(picture, self.service.limits)
            return picture, False
        record = await self.service.store.get(checked_job_id(job)) if job else None
        if record is None or record.result is None:
            raise NotFound("attach an image or give the id of a finished job")
        return record.result.primary.path, check_repost(record, interaction)

    @meme.autocomplete("job")
    async def _job_choices(
        self, interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        return await job_choices(self.service, interaction, typed)

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


async def _read(path: Path) -> bytes:
    return await asyncio.to_thread(path.read_bytes)


def _caption_bytes(picture: Image.Image, top: str, bottom: str, budget: int) -> render.Encoded:
    return render.encode_image(render.caption(picture, top=top, bottom=bottom), budget_bytes=budget)
