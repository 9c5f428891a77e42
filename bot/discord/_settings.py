"""/settings: a server's defaults, policies and ban list (Manage Server)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast

import discord
from discord import app_commands

from bot.discord._cogs import KIND_WORDS, FeatureCog, model_choices
from bot.discord._policy import GuildSettings, save_guild
from bot.discord._text import escape
from bot.store import Store
from generators.errors import Forbidden
from generators.models import ModelInfo
from generators.text import clip

#: What /settings set model: takes to go back to the bot's own defaults.
BOT_DEFAULT = "default"
#: Where each server's choice for flagged results in safe channels is kept (beside its settings).
FLAGGED = "discord:guild-flagged"

Flagged = Literal["block", "spoiler"]


class ServerSettings(FeatureCog):
    """Server admins' commands."""

    settings = app_commands.Group(
        name="settings",
        description="This server's memebot settings (Manage Server)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )
    ban = app_commands.Group(name="ban", description="The server's ban list", parent=settings)

    async def _admin(self, interaction: discord.Interaction[Any]) -> tuple[int, GuildSettings]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise Forbidden("only people with Manage Server can change memebot's settings")
        return interaction.guild_id, await self.requests.guild(interaction.guild_id)

    async def _save(
        self, interaction: discord.Interaction[Any], guild_id: int, settings: GuildSettings
    ) -> None:
        await save_guild(self.service.store, guild_id, settings)
        self.requests.remember(guild_id, settings)
        await self._show(interaction, guild_id, settings)

    async def _show(
        self, interaction: discord.Interaction[Any], guild_id: int, settings: GuildSettings
    ) -> None:
        flagged = await load_flagged(self.service.store, guild_id)
        await interaction.response.send_message(describe_settings(settings, flagged), ephemeral=True)

    @settings.command(name="show")
    async def settings_show(self, interaction: discord.Interaction[Any]) -> None:
        """Show this server's settings"""
        guild_id, settings = await self._admin(interaction)
        await self._show(interaction, guild_id, settings)

    @settings.command(name="set")
    @app_commands.describe(
        default_n="Images per request here (1-9)",
        model=f"Default model for its kind (images or clips) here; {BOT_DEFAULT}: the bot's own",
        channel="Apply default_n and model to this channel only",
        max_n="Most images one request may ask for on this server",
        allow_nsfw="Allow flagged prompts in age-restricted channels (off: nowhere)",
        requester_only_buttons="Only the requester (or moderators) may use a result's buttons",
        spoiler="Post every result as a spoiler",
        flagged="A result the image check flags, in a channel that is not age-restricted: block or spoiler",
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
        flagged: Flagged | None = None,
    ) -> None:
        """Change defaults and policies."""
        guild_id, settings = await self._admin(interaction)
        if flagged is not None:
            await save_flagged(self.service.store, guild_id, flagged)
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

    @ban.command(name="add")
    async def ban_add(
        self, interaction: discord.Interaction[Any], word: app_commands.Range[str, 1, 100]
    ) -> None:
        """Refuse prompts containing a word"""
        guild_id, settings = await self._admin(interaction)
        words = tuple(dict.fromkeys((*settings.ban_words, word.strip().lower())))
        await self._save(interaction, guild_id, _replace(settings, {"ban_words": words}))

    @ban.command(name="remove")
    async def ban_remove(self, interaction: discord.Interaction[Any], word: str) -> None:
        """Allow a banned word again"""
        guild_id, settings = await self._admin(interaction)
        words = tuple(w for w in settings.ban_words if w != word.strip().lower())
        await self._save(interaction, guild_id, _replace(settings, {"ban_words": words}))


def _replace(settings: GuildSettings, changes: dict[str, Any]) -> GuildSettings:
    return dataclasses.replace(settings, **changes)


async def load_flagged(store: Store, guild_id: int | None) -> Flagged | None:
    """A server's choice for flagged results in its safe channels; None: the bot's default."""
    if guild_id is None:
        return None
    stored = (await store.kv_get(FLAGGED, str(guild_id)) or {}).get("choice")
    return cast(Flagged, stored) if stored in ("block", "spoiler") else None


async def save_flagged(store: Store, guild_id: int, choice: Flagged) -> None:
    """Keep a server's choice for flagged results in its safe channels."""
    await store.kv_set(FLAGGED, str(guild_id), {"choice": choice})


def describe_settings(settings: GuildSettings, flagged: Flagged | None = None) -> str:
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
            f"Results the image check flags, outside age-restricted channels: {flagged or 'bot default'}",
            f"Banned words: {escape(clip(', '.join(settings.ban_words), 1000)) or 'none'}",
        ]
    )


def _models(models: dict[str, str]) -> str:
    words = {kind.value: word for kind, word in KIND_WORDS.items()}
    return ", ".join(f"{words.get(kind, kind)} {name}" for kind, name in models.items()) or "bot default"
