"""Remix: a picture redrawn from a prompt, from /imagine's image, a message's menu, a result's 🎨 button
or a reply in a meme channel.

Every way in takes the same steps in the same order. What Discord reports about the picture and the
prompt itself are checked first, so a refusal costs nothing and is seen only by the member; then the
interaction is acknowledged, since a download can outlast Discord's three seconds; then the picture is
fetched from Discord's media hosts into the job service's source store and the job is queued. A picture
refused after the acknowledgement takes the "thinking…" message away again and says why, to the member
alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
import discord
from discord import app_commands

from bot.discord._cogs import reply_error
from bot.discord._pictures import NO_PICTURE, Picture, check_reported, picture_in
from bot.discord._policy import GuildSettings
from bot.discord._reposts import is_restricted
from bot.discord._requests import Requests
from bot.discord._text import error_text
from bot.jobs import JobService
from bot.store import JobRecord
from generators.errors import BadRequest, UserError
from generators.intake import MEDIA_HOSTS, Fetcher, IntakeLimits
from generators.requests import GenerationRequest, Kind, Source
from generators.text import clip

MENU_NAME = "Remix with memebot"
#: Stands in for the picture while the prompt is checked: the picture is fetched only after that.
PENDING = Source(digest="")
#: How long an opened form waits for its Submit (Discord sets no limit; the bot keeps it in memory).
FORM_TIMEOUT_S = 15 * 60
#: Discord's longest text input, and its longest placeholder.
INPUT_LIMIT = 4000
PLACEHOLDER_LIMIT = 100
PLACEHOLDER = "what it should become; flags like --strength 0.5 --seed 7 work"

#: Fetches the picture a remix starts from into the source store (run after acknowledging).
Take = Callable[[], Awaitable[Source]]
#: What a submitted form hands on: the interaction, the prompt typed, and the image picked (1 if none).
Submit = Callable[[discord.Interaction[Any], str, int], Awaitable[None]]


class RemixForm(discord.ui.Modal):
    """The form a remix (or an animation) asks for: the prompt with its flags, for a grid which image to
    start from, and where asked for, a model."""

    def __init__(
        self,
        *,
        title: str,
        submit: Submit,
        command: str = "",
        images: int = 0,
        placeholder: str = PLACEHOLDER,
        models: str = "",
    ) -> None:
        """``models``: the hint of an optional field naming the model (none without it)."""
        super().__init__(title=clip(title, 45), timeout=FORM_TIMEOUT_S)
        self._submit = submit
        self.prompt: discord.ui.TextInput[RemixForm] = discord.ui.TextInput(
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            default=clip(command, INPUT_LIMIT) or None,
            placeholder=clip(placeholder, PLACEHOLDER_LIMIT),
            max_length=INPUT_LIMIT,
        )
        self.add_item(discord.ui.Label(text="Prompt", component=self.prompt))
        self.index: discord.ui.TextInput[RemixForm] | None = None
        if images > 1:
            self.index = discord.ui.TextInput(custom_id="index", default="1", max_length=1)
            self.add_item(discord.ui.Label(text=f"Which image (1-{images})", component=self.index))
        self.model: discord.ui.TextInput[RemixForm] | None = None
        if models:
            self.model = discord.ui.TextInput(
                custom_id="model", required=False, max_length=100, placeholder=clip(models, PLACEHOLDER_LIMIT)
            )
            self.add_item(discord.ui.Label(text="Model (optional)", component=self.model))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the prompt and the image picked on; a refusal is the member's own message."""
        try:
            text = _with_model(self.prompt.value, self.model)
            await self._submit(interaction, text, _index(self.index))
        except UserError as error:
            await reply_error(interaction, str(error))


class Remixes:
    """The remix steps every entry point shares, and the fetcher they download pictures with."""

    def __init__(self, service: JobService, requests: Requests, fetcher: Fetcher | None = None) -> None:
        self.service = service
        self.requests = requests
        self._fetcher = fetcher
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Without a fetcher handed in, one for Discord's media hosts on a session of its own."""
        if self._fetcher is None:
            self._session = aiohttp.ClientSession()
            limits = IntakeLimits.of(self.service.limits)
            self._fetcher = Fetcher(self._session, MEDIA_HOSTS["discord"], limits)

    async def close(self) -> None:
        """Close the session :meth:`open` made (a fetcher handed in belongs to whoever made it)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._fetcher = None

    @property
    def fetcher(self) -> Fetcher:
        """What downloads members' pictures (only once the bot has started)."""
        if self._fetcher is None:
            raise RuntimeError("Remixes.open() has not run: the bot has not started")
        return self._fetcher

    # -- the shared steps ---------------------------------------------------------------------------

    def check(self, picture: Picture) -> None:
        """Refuse a picture from what Discord reports about it, before downloading it."""
        check_reported(picture, self.service.limits)

    async def take(self, picture: Picture) -> Source:
        """Download a picture from Discord's media hosts and keep it for the worker."""
        self.check(picture)
        data = await self.fetcher.fetch(picture.url)
        return await self.service.sources.take(data)

    def parse(self, text: str, guild: GuildSettings, channel_id: int | None) -> GenerationRequest:
        """The prompt as a remix (its picture still to come): flags such as --strength checked now."""
        return self.requests.parse(text, guild, channel_id, source=PENDING)

    def attach(
        self,
        request: GenerationRequest,
        source: Source,
        text: str,
        guild: GuildSettings,
        channel_id: int | None,
    ) -> GenerationRequest:
        """The checked request with its picture, in the picture's shape unless ``--ar`` said otherwise.

        Parsed again with the picture for its shape alone; everything else stays as checked.
        """
        shaped = self.requests.parse(text, guild, channel_id, source=source)
        return dataclasses.replace(request, source=source, aspect=shaped.aspect)

    async def start(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        take: Take,
        *,
        seed_of: Callable[[GenerationRequest], int | None] | None = None,
        restricted: bool = False,
    ) -> None:
        """Check the prompt, acknowledge, take the picture, queue: refusals before the acknowledgement
        raise; after it, the "thinking…" message is withdrawn and the member alone is told why.

        ``seed_of`` picks the seed from the parsed request; ``restricted``: the picture is a result
        made under age-restricted rules, and its remix counts as one too.
        """
        guild = await self.requests.guild(interaction.guild_id)
        request = self.parse(text, guild, interaction.channel_id)
        if seed_of is not None:
            request = dataclasses.replace(request, seed=seed_of(request))
        request = self.requests.check_interaction(request, interaction, guild)
        await interaction.response.defer(thinking=True)
        try:
            request = self.attach(request, await take(), text, guild, interaction.channel_id)
            await self.requests.submit_interaction(interaction, request, guild, restricted=restricted)
        except UserError as error:
            await withdraw(interaction, str(error))

    # -- the message menu ---------------------------------------------------------------------------

    def menu(self) -> app_commands.ContextMenu:
        """Right-click a message → Apps → Remix with memebot."""
        return app_commands.ContextMenu(name=MENU_NAME, callback=self.remix_message)

    async def remix_message(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """Ask for a prompt for the message's picture; a message without one is refused at once."""
        try:
            picture = picture_in(message, self.fetcher)
            if picture is None:
                raise BadRequest(NO_PICTURE)
            self.check(picture)
        except UserError as error:
            await reply_error(interaction, str(error))
            return
        form = RemixForm(title=MENU_NAME, submit=partial(self._remix_picture, picture))
        await interaction.response.send_modal(form)

    async def _remix_picture(
        self, picture: Picture, interaction: discord.Interaction[Any], text: str, _: int
    ) -> None:
        await self.start(interaction, text, partial(self.take, picture))

    # -- the 🎨 button under a result ---------------------------------------------------------------

    async def open_result(self, interaction: discord.Interaction[Any], record: JobRecord) -> None:
        """The form for remixing a result: its command line to edit and, for a grid, which image."""
        if record.job.request.kind is Kind.VIDEO or record.result is None:
            raise BadRequest("only finished pictures can be remixed")
        form = RemixForm(
            title=f"Remix job {record.id}",
            submit=partial(self.start_from_result, record),
            command=self.service.command_line(record.job.request),
            images=len(record.result.seeds),
        )
        await interaction.response.send_modal(form)

    async def start_from_result(
        self, record: JobRecord, interaction: discord.Interaction[Any], text: str, index: int
    ) -> None:
        """Start from tile ``index`` of a result, at that tile's seed unless the member changed --seed;
        the source names the job, and a result made under age-restricted rules passes them on."""
        seeds = record.result.seeds if record.result else ()
        if not 1 <= index <= len(seeds):
            raise BadRequest(f"pick an image from 1 to {len(seeds)}")
        shown = record.job.request.seed

        def seed_of(request: GenerationRequest) -> int | None:
            return seeds[index - 1] if request.seed == shown else request.seed

        await self.start(
            interaction,
            text,
            partial(self.service.sources.take_result, record, index),
            seed_of=seed_of,
            restricted=is_restricted(record),
        )


async def withdraw(interaction: discord.Interaction[Any], message: str) -> None:
    """Take back an acknowledged interaction's "thinking…" message and tell the member alone why."""
    with contextlib.suppress(discord.HTTPException):
        await interaction.delete_original_response()
    await interaction.followup.send(error_text(message), ephemeral=True)


def _with_model(prompt: str, field: discord.ui.TextInput[RemixForm] | None) -> str:
    """The prompt with the model the form's field names as its ``--model`` (the grammar checks it)."""
    name = "" if field is None else field.value.strip()
    if not name:
        return prompt
    if len(name.split()) > 1 or name.startswith(("-", "—", "–")):
        raise BadRequest("give one model name in the model field, like the ones /info lists")
    return f"{prompt} --model {name}"


def _index(field: discord.ui.TextInput[RemixForm] | None) -> int:
    """The image picked in the form (1 without the field); BadRequest for anything but plain digits."""
    if field is None:
        return 1
    typed = field.value.strip()
    # isdigit() takes "²" and isdecimal() takes "٣", which int() reads as 3: only ASCII digits are asked for.
    if not (typed.isascii() and typed.isdecimal()):
        raise BadRequest("give the number of the image to start from, like 1")
    return int(typed)
