"""Who may ask for what, where: ban lists, the NSFW rule, rate limits and per-server settings."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.moderation import WordList, normalise
from bot.ratelimit import SlidingWindow
from bot.settings import DiscordConfig
from bot.store import Store
from generators.errors import BadRequest, Banned, Forbidden, RateLimited
from generators.models import ModelInfo
from generators.requests import GenerationRequest, Kind

GUILDS = "discord:guild"


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a server's admins set with /settings (stored in the store's key-value table)."""

    ban_words: tuple[str, ...] = ()
    default_n: int | None = None
    max_n: int | None = None
    allow_nsfw: bool = True  # False: flagged prompts are refused even in age-restricted channels
    requester_only_buttons: bool = False
    spoiler: bool = False
    channel_n: dict[str, int] = field(default_factory=dict)  # channel id → default --n there
    # A default model per kind ("image", "video"), so a server can pick both a picture and a clip model.
    models: dict[str, str] = field(default_factory=dict)
    channel_models: dict[str, dict[str, str]] = field(default_factory=dict)  # channel id → the same, there

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GuildSettings:
        """Tolerates missing keys (older versions) by falling back to defaults."""
        data = data or {}
        return cls(
            ban_words=tuple(data.get("ban_words", ())),
            default_n=data.get("default_n"),
            max_n=data.get("max_n"),
            allow_nsfw=bool(data.get("allow_nsfw", True)),
            requester_only_buttons=bool(data.get("requester_only_buttons", False)),
            spoiler=bool(data.get("spoiler", False)),
            channel_n={str(k): int(v) for k, v in data.get("channel_n", {}).items()},
            models={str(k): str(v) for k, v in data.get("models", {}).items()},
            channel_models={
                str(channel): {str(k): str(v) for k, v in models.items()}
                for channel, models in data.get("channel_models", {}).items()
            },
        )

    def n_for(self, channel_id: int | None) -> int | None:
        """The default image count in a channel: the channel's, else the server's."""
        return self.channel_n.get(str(channel_id), self.default_n)

    def model_for(self, channel_id: int | None, kind: Kind) -> str | None:
        """The default model for ``kind`` in a channel: the channel's, else the server's, else none."""
        return self.channel_models.get(str(channel_id), {}).get(kind.value, self.models.get(kind.value))

    def with_model(self, model: ModelInfo | None, channel_id: int | None) -> GuildSettings:
        """These settings with ``model`` as the default for its kind (None: back to the bot's defaults)."""
        key = None if channel_id is None else str(channel_id)
        current = self.models if key is None else self.channel_models.get(key, {})
        chosen = {} if model is None else current | {model.kind.value: model.name}
        if key is None:
            return replace(self, models=chosen)
        channel_models = {c: m for c, m in self.channel_models.items() if c != key}
        return replace(self, channel_models=channel_models | ({key: chosen} if chosen else {}))


async def load_guild(store: Store, guild_id: int | None) -> GuildSettings:
    """A server's settings (defaults in DMs)."""
    if guild_id is None:
        return GuildSettings()
    return GuildSettings.from_dict(await store.kv_get(GUILDS, str(guild_id)))


async def save_guild(store: Store, guild_id: int, settings: GuildSettings) -> None:
    """Write a server's settings."""
    await store.kv_set(GUILDS, str(guild_id), settings.to_dict())


class Moderation:
    """The global rules from config plus each server's ban list (matching rules: ``bot.moderation``)."""

    def __init__(self, config: DiscordConfig) -> None:
        self.config = config
        self._global_words = WordList.of(config.ban_words)
        self._patterns = [re.compile(p, re.IGNORECASE) for p in config.ban_patterns]
        self._nsfw = WordList.of(config.nsfw_words, inside=True)  # "softporn" holds a listed stem

    def check_banned(self, request: GenerationRequest, guild: GuildSettings) -> None:
        """Raise Banned when the prompt or a caption matches a ban-list entry."""
        self.check_text(_text_of(request), guild)

    def check_text(self, text: str, guild: GuildSettings) -> None:
        """Raise Banned when ``text`` matches a ban-list entry (a word, or a pattern of the config)."""
        found = self._global_words.find(text) or WordList.of(guild.ban_words).find(text)
        if found is None:
            plain = normalise(text)
            found = next(
                (m.group(0) for p in self._patterns for t in (text, plain) if (m := p.search(t))), None
            )
        if found is not None:
            raise Banned(f"“{found[:100]}” is not allowed here; change the text and try again")

    def is_nsfw(self, request: GenerationRequest) -> bool:
        """Whether the prompt asks for something only age-restricted channels may get."""
        return self.is_nsfw_text(_text_of(request))

    def is_nsfw_text(self, text: str) -> bool:
        """Whether ``text`` holds a word only age-restricted channels may use."""
        return self._nsfw.find(text) is not None

    def check_nsfw(self, request: GenerationRequest, guild: GuildSettings, *, age_restricted: bool) -> None:
        """Raise Forbidden for an NSFW prompt outside an age-restricted channel (or anywhere, if the
        server says so)."""
        self.check_nsfw_text(_text_of(request), guild, age_restricted=age_restricted)

    def check_nsfw_text(self, text: str, guild: GuildSettings, *, age_restricted: bool) -> None:
        """The NSFW rule for any text (prompts, captions)."""
        if not self.is_nsfw_text(text):
            return
        if not guild.allow_nsfw:
            raise Forbidden("this server does not allow that kind of prompt")
        if not age_restricted:
            raise Forbidden("that prompt can only be used in an age-restricted (NSFW) channel")

    @staticmethod
    def check_size(request: GenerationRequest, guild: GuildSettings) -> None:
        """Raise BadRequest when the request asks for more images than this server allows."""
        if guild.max_n is not None and request.n > guild.max_n:
            raise BadRequest(f"--n may be at most {guild.max_n} on this server", flag="--n")

    def with_negative_prefix(self, request: GenerationRequest) -> GenerationRequest:
        """Prepend the forced negative prompt, if one is configured."""
        prefix = self.config.negative_prefix.strip()
        if not prefix or request.negative.startswith(prefix):
            return request
        return replace(request, negative=f"{prefix}, {request.negative}" if request.negative else prefix)


class Limits:
    """Per-user and per-server rate limits, checked together and counted only when both pass."""

    def __init__(self, config: DiscordConfig) -> None:
        self.users = SlidingWindow(config.user_rate, config.rate_window_s)
        self.servers = SlidingWindow(config.server_rate, config.rate_window_s)

    def take(self, user_id: int, guild_id: int | None) -> None:
        """Count a request, or raise RateLimited saying when to try again."""
        user_wait = self.users.retry_after(str(user_id))
        server_wait = self.servers.retry_after(str(guild_id)) if guild_id is not None else 0.0
        wait = max(user_wait, server_wait)
        if wait > 0:
            who = "you are" if user_wait >= server_wait else "this server is"
            raise RateLimited(f"{who} asking too fast; try again in {wait:.0f} s", retry_after=wait)
        self.users.hit(str(user_id))
        if guild_id is not None:
            self.servers.hit(str(guild_id))


def _text_of(request: GenerationRequest) -> str:
    """Everything of a request that is drawn or echoed: the prompt and the captions."""
    return " ".join((request.prompt, request.top, request.bottom))
