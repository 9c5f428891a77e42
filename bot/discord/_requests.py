"""From an interaction or a message to a queued job: the checks, the acknowledgement, the submit.

Every check that can refuse runs before anything is written or acknowledged publicly, so a refused
request is an ephemeral message that loses nothing.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import discord

from bot import addresses
from bot.discord._policy import GuildSettings, Limits, Moderation, load_guild
from bot.discord._text import prompt_line
from bot.jobs import JobService
from bot.settings import DiscordConfig
from bot.store import JobRecord
from generators.errors import BadRequest, Forbidden, NotFound
from generators.requests import GenerationRequest, Source

PLATFORM = "discord"
#: What a job id can look like (``secrets.token_urlsafe``), with room for older and longer ones.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def owner_of(user: discord.abc.User) -> str:
    """The job owner id of a Discord user (fairness and caps are per owner)."""
    return f"{PLATFORM}:{user.id}"


def checked_job_id(typed: str) -> str:
    """A typed job id, or NotFound for anything that cannot be one (without echoing it back)."""
    job = typed.strip()
    if not JOB_ID.fullmatch(job):
        raise NotFound("there is no job with that id; /queue lists yours")
    return job


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Messages or Manage Server where the interaction happened (nobody is, in DMs)."""
    permissions = interaction.permissions
    return bool(permissions.manage_messages or permissions.manage_guild)


def made_age_restricted(record: JobRecord) -> bool:
    """Whether a result was made under age-restricted rules (unknown: assume it was)."""
    return addresses.made_age_restricted(record.reply_to)


def age_restricted(channel: Any) -> bool:
    """Whether a channel is marked NSFW (DMs and threads of unmarked channels are not)."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


class Requests:
    """The checks and bookkeeping shared by /imagine, buttons and meme channels."""

    def __init__(self, service: JobService, config: DiscordConfig) -> None:
        self.service = service
        self.config = config
        self.moderation = Moderation(config)
        self.limits = Limits(config)
        self._guilds: dict[int, GuildSettings] = {}

    async def guild(self, guild_id: int | None) -> GuildSettings:
        """A server's settings, cached (the cache is updated by /settings)."""
        if guild_id is None:
            return GuildSettings()
        if guild_id not in self._guilds:
            self._guilds[guild_id] = await load_guild(self.service.store, guild_id)
        return self._guilds[guild_id]

    def remember(self, guild_id: int, settings: GuildSettings) -> None:
        """Update the cache after /settings wrote the store."""
        self._guilds[guild_id] = settings

    def parse(
        self, text: str, guild: GuildSettings, channel_id: int | None, *, source: Source | None = None
    ) -> GenerationRequest:
        """The one grammar, with this server's (or channel's) default image count and model; with
        ``source``, a remix of that picture."""
        default_n = guild.n_for(channel_id)
        if guild.max_n is not None:
            default_n = min(default_n or guild.max_n, guild.max_n)
        request = self.service.parse(text, default_n=default_n, source=source)
        # The kind (picture or clip) is known once parsed; only then is it clear which default applies.
        default_model = guild.model_for(channel_id, request.kind)
        if default_model is None or default_model == request.model:
            return request
        return self.service.parse(text, default_n=default_n, default_model=default_model, source=source)

    def check(
        self,
        request: GenerationRequest,
        *,
        user: discord.abc.User,
        guild_id: int | None,
        channel: Any,
        guild: GuildSettings,
    ) -> GenerationRequest:
        """Refuse (raising a UserError) or return the request as it will run; counts toward rate limits."""
        if guild_id is None and not self.config.allow_dms:
            raise Forbidden("this bot does not work in DMs here; use it in a server channel")
        self.moderation.check_banned(request, guild)
        self.moderation.check_size(request, guild)
        self.moderation.check_nsfw(request, guild, age_restricted=age_restricted(channel))
        self.service.runner.queue.check_room(owner_of(user))
        self.limits.take(user.id, guild_id)
        return self.moderation.with_negative_prefix(request)

    def check_interaction(
        self, request: GenerationRequest, interaction: discord.Interaction[Any], guild: GuildSettings
    ) -> GenerationRequest:
        """:meth:`check` for a request made through an interaction (a command, a button, a form)."""
        return self.check(
            request,
            user=interaction.user,
            guild_id=interaction.guild_id,
            channel=interaction.channel,
            guild=guild,
        )

    def check_captions(self, top: str, bottom: str, *, channel: Any, guild: GuildSettings) -> None:
        """/meme's captions: the length cap, the ban list and the NSFW rule that prompts' captions get."""
        limit = self.service.limits.max_caption_chars
        if max(len(top), len(bottom)) > limit:
            raise BadRequest(f"a caption may be at most {limit} characters")
        text = f"{top} {bottom}"
        self.moderation.check_text(text, guild)
        self.moderation.check_nsfw_text(text, guild, age_restricted=age_restricted(channel))

    def check_repost(self, record: JobRecord, interaction: discord.Interaction[Any]) -> bool:
        """Refuse to post someone else's age-restricted result for a member; True when the result
        must be hidden behind a spoiler here (made under NSFW rules, shown in a safe channel)."""
        restricted = made_age_restricted(record)
        mine = record.job.owner == owner_of(interaction.user)
        if restricted and not (mine or is_moderator(interaction)):
            raise Forbidden(
                "that result was made in an age-restricted channel: only the person who asked for it "
                "or a moderator can post it again"
            )
        return restricted and not age_restricted(interaction.channel)

    def spoiler(self, channel: Any, guild: GuildSettings) -> bool:
        """Whether results posted in ``channel`` are hidden behind a spoiler."""
        return guild.spoiler or (self.config.spoiler_outside_nsfw and not age_restricted(channel))

    async def submit_interaction(
        self,
        interaction: discord.Interaction[Any],
        request: GenerationRequest,
        guild: GuildSettings,
        *,
        restricted: bool = False,
    ) -> JobRecord:
        """Acknowledge at once (thinking…) unless that was done, then store and queue the job; its
        message is the original. ``restricted``: it remixes a result made under age-restricted rules,
        so it is held to them too."""
        if not interaction.response.is_done():
            await interaction.response.defer(thinking=True)
        original = await interaction.original_response()
        here = age_restricted(interaction.channel)
        reply_to = addresses.discord_interaction(
            application_id=interaction.application_id,
            token=interaction.token,
            message_id=original.id,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            spoiler=self.spoiler(interaction.channel, guild) or (restricted and not here),
            age_restricted=here or restricted,
        )
        return await self.service.submit(
            request,
            owner=owner_of(interaction.user),
            platform=PLATFORM,
            reply_to=reply_to,
            budget_bytes=interaction.filesize_limit,
        )

    async def submit_message(
        self, message: discord.Message, request: GenerationRequest, guild: GuildSettings
    ) -> JobRecord:
        """A meme-channel prompt: reply to it with a progress message, then queue the job."""
        progress = await message.reply(f"{prompt_line(request.prompt)}\n⏳ Queued…", mention_author=False)
        reply_to = addresses.discord_message(
            message_id=progress.id,
            channel_id=message.channel.id,
            guild_id=None if message.guild is None else message.guild.id,
            user_id=message.author.id,
            spoiler=self.spoiler(message.channel, guild),
            age_restricted=age_restricted(message.channel),
        )
        limit = message.guild.filesize_limit if message.guild is not None else None
        return await self.service.submit(
            request, owner=owner_of(message.author), platform=PLATFORM, reply_to=reply_to, budget_bytes=limit
        )


def variation_of(request: GenerationRequest, seeds: tuple[int, ...], index: int) -> GenerationRequest:
    """V<index>: the same prompt around the seed of image ``index`` (a nearby, unused seed)."""
    base = seeds[index - 1] if index <= len(seeds) else (request.seed or 0)
    return dataclasses.replace(request, seed=(base + 1_000) % 2**32)


def single_of(request: GenerationRequest, seeds: tuple[int, ...], index: int) -> GenerationRequest:
    """U<index>: image ``index`` alone at full size (a generator per image makes it the same picture)."""
    return dataclasses.replace(request, seed=seeds[index - 1], n=1)
