"""The Discord client: commands, result buttons, meme channels and the hall of fame."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from typing import Any

import discord
from discord.ext import commands

from bot.discord._animate import Animations
from bot.discord._buttons import Action, JobButton
from bot.discord._cogs import reply_error
from bot.discord._commands import Generation
from bot.discord._delivery import Delivery, result_file
from bot.discord._info import Info
from bot.discord._pictures import Picture, picture_in
from bot.discord._queue import QueueCommands
from bot.discord._remix import PENDING, Remixes
from bot.discord._reposts import check_repost, hall_spoiler
from bot.discord._requests import (
    Requests,
    is_moderator,
    owner_of,
    single_of,
    variation_of,
)
from bot.discord._settings import ServerSettings
from bot.discord._text import error_text, prompt_line
from bot.jobs import JobService
from bot.settings import DiscordConfig
from bot.store import JobRecord
from generators.errors import Forbidden, NotFound, UserError
from generators.intake import Fetcher
from generators.requests import GenerationRequest
from generators.safety.config import SafetyConfig

log = logging.getLogger(__name__)

STAR = "⭐"
#: This platform's name in ``service.health``.
HEALTH = "discord"
HALL_OF_FAME = "discord:hall-of-fame"
_JOB_IN_CUSTOM_ID = re.compile(r"^mb:[a-z]+:([A-Za-z0-9_-]{8,64})")


class MemeBot(commands.Bot):
    """memebot on Discord; built with its job service and config, nothing global."""

    def __init__(
        self,
        service: JobService,
        config: DiscordConfig,
        *,
        fetcher: Fetcher | None = None,
        safety: SafetyConfig | None = None,
        **options: Any,
    ) -> None:
        """``fetcher`` downloads members' pictures; by default one for Discord's media hosts."""
        intents = discord.Intents.default()
        # Reading "!imagine ..." in meme channels needs the privileged message-content intent.
        intents.message_content = bool(config.meme_channels)
        # Nobody is pinged unless a message names them in its own allowed_mentions (the requester).
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None, **options
        )
        self.service = service
        self.config = config
        self.requests = Requests(service, config)
        #: The image classifier's settings: what a flagged result does in a safe channel, and /info.
        self.safety = safety or SafetyConfig()
        self.delivery = Delivery(self, service, config, flagged_default=self.safety.flagged_in_safe_channel)
        self.remixes = Remixes(service, self.requests, fetcher)
        self.animations = Animations(self.remixes)
        self.generation = Generation(service, self.requests, self.remixes)
        self._resumed = False
        self._set_up = False

    async def setup_hook(self) -> None:
        """Commands, the message menu, persistent buttons, command sync.

        A login that failed after this ran (the sync lost its connection) runs it again: the parts
        added once are skipped, the sync is repeated.
        """
        if not self._set_up:
            await self.remixes.open()
            await self.add_cog(self.generation)
            self.tree.add_command(self.remixes.menu())
            self.tree.add_command(self.animations.menu())
            for cog in (QueueCommands, ServerSettings):
                await self.add_cog(cog(self.service, self.requests))
            await self.add_cog(Info(self.service, self.requests, classifier=self.safety.status()))
            self.add_dynamic_items(JobButton)
            self._set_up = True
        if self.config.sync_guilds:
            for guild_id in self.config.sync_guilds:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def close(self) -> None:
        """Log out, then close what the bot opened for itself."""
        await super().close()
        await self.remixes.close()

    async def on_ready(self) -> None:
        """Deliver what finished while the bot was away (once per process)."""
        self.service.health.report(HEALTH, None)
        if not self._resumed:
            self._resumed = True
            await self.delivery.resume()
        log.info("discord: ready as %s in %d servers", self.user, len(self.guilds))

    async def on_resumed(self) -> None:
        """The gateway connection is back after a drop."""
        self.service.health.report(HEALTH, None)

    async def on_disconnect(self) -> None:
        """The gateway connection dropped: discord.py reconnects, ``/healthz`` says so meanwhile."""
        if not self.is_closed():
            self.service.health.report(HEALTH, "disconnected from the gateway, reconnecting")

    # -- buttons ----------------------------------------------------------------------------------

    async def on_job_button(
        self, interaction: discord.Interaction[Any], action: Action, job_id: str, index: int
    ) -> None:
        """A result's button was clicked (possibly long after a restart)."""
        try:
            record = await self.service.store.get(job_id)
            if record is None:
                raise NotFound("that job is no longer known")
            guild = await self.requests.guild(interaction.guild_id)
            moderator = is_moderator(interaction)
            mine = record.job.owner == owner_of(interaction.user)
            if guild.requester_only_buttons and not (mine or moderator):
                raise Forbidden("on this server only the person who asked can use these buttons")
            await self._button(interaction, action, record, index, mine=mine, moderator=moderator)
        except UserError as error:
            await reply_error(interaction, str(error))

    async def _button(
        self,
        interaction: discord.Interaction[Any],
        action: Action,
        record: JobRecord,
        index: int,
        *,
        mine: bool,
        moderator: bool,
    ) -> None:
        request = record.job.request
        seeds = record.result.seeds if record.result else (request.seed or 0,)
        if action is Action.DELETE:
            if not (mine or moderator):
                raise Forbidden("only the person who asked, or a moderator, can delete this")
            await self.service.delete(record.id)  # the file and its page go too
            await interaction.response.send_message("Deleted.", ephemeral=True)
            if interaction.message is not None:
                await interaction.message.delete()
        elif action is Action.CANCEL:
            await self.service.cancel(record.id, by=None if moderator else owner_of(interaction.user))
            await interaction.response.send_message("Cancelling…", ephemeral=True)
        elif action is Action.REMIX:
            check_repost(record, interaction)  # someone else's age-restricted picture, or another server's
            await self.remixes.open_result(interaction, record)
        elif action is Action.ANIMATE:
            await self.animations.open_result(interaction, record)  # checks the repost rules itself
        else:
            if action is Action.REROLL:
                new = _reroll(request)
            elif action is Action.VARIATION:
                new = variation_of(request, seeds, index)
            else:
                new = single_of(request, seeds, index)
            guild = await self.requests.guild(interaction.guild_id)
            await self.generation.start_request(interaction, new, guild)

    # -- meme channels ----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """In configured meme channels, "!imagine ..." (or a mention of the bot) is a prompt."""
        if message.author.bot or message.channel.id not in self.config.meme_channels:
            return
        text = self._prompt_in(message.content)
        if text is None:
            return
        guild_id = message.guild.id if message.guild else None
        try:
            picture = await self._picture_for(message)
            if picture is not None:
                self.remixes.check(picture)
            guild = await self.requests.guild(guild_id)
            pending = None if picture is None else PENDING
            request = self.requests.parse(text, guild, message.channel.id, source=pending)
            request = self.requests.check(
                request, user=message.author, guild_id=guild_id, channel=message.channel, guild=guild
            )
            if picture is not None:
                source = await self.remixes.take(picture)
                request = self.remixes.attach(request, source, text, guild, message.channel.id)
            await self.requests.submit_message(message, request, guild)
        except UserError as error:
            await message.reply(error_text(str(error)), mention_author=False)

    async def _picture_for(self, message: discord.Message) -> Picture | None:
        """A meme-channel prompt's picture: attached to it, else in the message it replies to."""
        own = picture_in(message, self.remixes.fetcher)
        if own is not None:
            return own
        replied = await _replied_to(message)
        return None if replied is None else picture_in(replied, self.remixes.fetcher)

    def _prompt_in(self, content: str) -> str | None:
        trigger = self.config.trigger.strip()
        if trigger and content.lower().startswith(trigger.lower()):
            return content[len(trigger) :].strip()
        if self.user is not None:
            for mention in (f"<@{self.user.id}>", f"<@!{self.user.id}>"):
                if content.startswith(mention):
                    return content[len(mention) :].strip()
        return None

    # -- hall of fame -----------------------------------------------------------------------------

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """Results that reach N ⭐ are re-posted to the hall-of-fame channel, once."""
        target = self.config.hall_of_fame_channel
        if target is None or str(payload.emoji) != STAR or payload.channel_id == target:
            return
        channel = self.get_partial_messageable(payload.channel_id)
        message = await channel.fetch_message(payload.message_id)
        stars = next((r.count for r in message.reactions if str(r.emoji) == STAR), 0)
        job_id = _job_of(message)
        if (
            job_id is None
            or self.user is None
            or message.author.id != self.user.id
            or stars < self.config.hall_of_fame_stars
        ):
            return
        if not await self.service.store.kv_add(HALL_OF_FAME, str(message.id), job_id):
            return  # already in the hall of fame
        record = await self.service.store.get(job_id)
        if record is None or record.result is None:
            return
        # An age-restricted result goes only to a hall in its own server, hidden unless the hall is
        # age-restricted too; a hall the bot cannot see counts as elsewhere.
        spoiler = hall_spoiler(record, self.get_channel(target))
        if spoiler is None:
            return
        path = record.result.primary.path
        hall = self.get_partial_messageable(target)
        text = f"{STAR} **{stars}** · {message.jump_url}\n{prompt_line(record.job.request.prompt)}"
        with contextlib.suppress(discord.HTTPException):
            await hall.send(text, file=await result_file(path, spoiler=spoiler))


class ShardedMemeBot(MemeBot, commands.AutoShardedBot):
    """The same bot on several gateway shards, for bots in very many servers."""


def _reroll(request: GenerationRequest) -> GenerationRequest:
    return dataclasses.replace(request, seed=None)


async def _replied_to(message: discord.Message) -> discord.Message | None:
    """The message ``message`` replies to (sent along by Discord, else fetched); None when gone."""
    reference = message.reference
    if reference is None or reference.type is not discord.MessageReferenceType.reply:
        return None
    if isinstance(reference.resolved, discord.Message):
        return reference.resolved
    if reference.message_id is None or reference.channel_id != message.channel.id:
        return None
    try:
        return await message.channel.fetch_message(reference.message_id)
    except discord.HTTPException:
        return None  # deleted, or not readable by the bot


def _job_of(message: discord.Message) -> str | None:
    for row in message.components:
        for item in getattr(row, "children", ()):
            match = _JOB_IN_CUSTOM_ID.match(getattr(item, "custom_id", None) or "")
            if match:
                return match.group(1)
    return None
