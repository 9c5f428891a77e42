"""What the fake Discord knows: users, guilds, channels, messages, attachments, as Discord's JSON."""

# The waits take a timeout so that their failure names what was awaited.
# ruff: noqa: ASYNC109

from __future__ import annotations

import io
import itertools
import mimetypes
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from PIL import Image

_T = TypeVar("_T")

DISCORD_EPOCH_MS = 1_420_070_400_000

#: Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
EVERYONE_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES
#: What ``app_permissions`` says in a DM.
DM_PERMISSIONS = (
    ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
)

#: Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

#: Channel types.
GUILD_TEXT = 0
DM = 1


class Snowflakes:
    """Ids that grow and carry the current time, as Discord's do (discord.py derives ``created_at``)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> int:
        """A fresh id."""
        now_ms = int(time.time() * 1000)
        return ((now_ms - DISCORD_EPOCH_MS) << 22) | (next(self._counter) & 0x3FFFFF)


def iso(moment: datetime | None) -> str | None:
    """Discord's timestamp format."""
    return None if moment is None else moment.isoformat()


def now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FakeUser:
    """A Discord user (a person or a bot)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @property
    def mention(self) -> str:
        """``<@id>``, as typed in a message."""
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        """The user object (``UserResponse``; ``primary_guild`` is required there)."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(frozen=True, slots=True)
class FakeRole:
    """A guild role."""

    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    @property
    def mention(self) -> str:
        """``<@&id>``."""
        return f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        """The role object (``GuildRoleResponse``)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(slots=True)
class FakeMember:
    """A user's membership of a guild."""

    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime = field(default_factory=now)

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """The member object (``GuildMemberResponse``); gateway messages send it without ``user``."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(slots=True)
class FakeChannel:
    """A text channel in a guild, or a DM channel (``guild_id`` None)."""

    id: int
    name: str
    guild_id: int | None
    type: int = GUILD_TEXT
    nsfw: bool = False
    position: int = 0
    recipients: tuple[FakeUser, ...] = ()

    @property
    def mention(self) -> str:
        """``<#id>``."""
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        """The channel object (``GuildChannelResponse`` or ``PrivateChannelResponse``)."""
        if self.guild_id is None:
            return {
                "id": str(self.id),
                "type": self.type,
                "flags": 0,
                "last_message_id": None,
                "recipients": [u.payload() for u in self.recipients],
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "flags": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "parent_id": None,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }


@dataclass(slots=True)
class FakeGuild:
    """A guild with its channels, roles and members, as GUILD_CREATE describes it."""

    id: int
    name: str
    owner_id: int
    channels: list[FakeChannel]
    roles: list[FakeRole]
    members: dict[int, FakeMember]

    def channel(self, name: str) -> FakeChannel:
        """The channel called ``name`` (``general``, ``memes``, ``nsfw`` in the default guild)."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(f"guild {self.name!r} has no channel {name!r}: {[c.name for c in self.channels]}")

    def permissions_of(self, user_id: int) -> int:
        """The member's guild-wide permissions (roles only: the fake keeps no overwrites)."""
        member = self.members.get(user_id)
        role_ids = {self.id, *(member.roles if member else ())}
        bits = 0
        for role in self.roles:
            if role.id in role_ids:
                bits |= role.permissions
        return bits

    def payload(self, *, joined_at: datetime) -> dict[str, Any]:
        """The GUILD_CREATE data."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "channels": [c.payload() for c in self.channels],
            "threads": [],
            "members": [m.payload() for m in self.members.values()],
            "member_count": len(self.members),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "joined_at": iso(joined_at),
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
        }


@dataclass(slots=True, eq=False)
class FakeAttachment:
    """A file on a message (or given to a slash command): its bytes stay here for the test to open."""

    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.content_type is None:
            # discord.py sends every file as application/octet-stream; Discord goes by the name.
            self.content_type = mimetypes.guess_type(self.filename)[0]

    @property
    def size(self) -> int:
        """Bytes."""
        return len(self.data)

    def image(self) -> Image.Image:
        """The file opened with Pillow (fully loaded, so the bytes are checked now)."""
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img

    def payload(self) -> dict[str, Any]:
        """The attachment object (``MessageAttachmentResponse``)."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description:
            data["description"] = self.description
        if self.content_type and self.content_type.startswith("image/"):
            size = _image_size(self.data)
            if size is not None:
                data["width"], data["height"] = size
        return data


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # only the header is read, as Discord does for its metadata
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None


@dataclass(slots=True, eq=False)
class FakeMessage:
    """A message in a channel: sent by the bot (REST, interaction answers, follow-ups) or by a user."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    mentions: list[FakeUser] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    edited_at: datetime | None = None
    deleted: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    #: The message this one replies to (sent along as ``referenced_message``).
    referenced: FakeMessage | None = None
    #: emoji (``"👍"`` or ``"name:id"``) -> ids of the users who reacted.
    reactions: dict[str, list[int]] = field(default_factory=dict)
    #: Earlier versions of this message (payloads), oldest first: progress edits show up here.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: When each edit arrived (event loop time).
    edit_times: list[float] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        """Only the interaction's user sees it."""
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred answer still "thinking"."""
        return bool(self.flags & LOADING)

    def max_edits_within(self, seconds: float) -> int:
        """The most edits in any window of ``seconds`` (Discord allows about 5 per 5 s per message)."""
        best, start = 0, 0
        for end, moment in enumerate(self.edit_times):
            while moment - self.edit_times[start] > seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component, nested ones included (rows, containers, sections)."""
        yield from _walk_components(self.components)

    @property
    def custom_ids(self) -> list[str]:
        """The custom ids of the interactive components, in order."""
        return [c["custom_id"] for c in self.iter_components() if "custom_id" in c]

    def component(self, custom_id: str) -> dict[str, Any]:
        """The component with ``custom_id`` (KeyError listing the ones there are)."""
        for component in self.iter_components():
            if component.get("custom_id") == custom_id:
                return component
        raise KeyError(f"message {self.id} has no component {custom_id!r}; it has {self.custom_ids}")

    def payload(self, *, nested: bool = True) -> dict[str, Any]:
        """The message object (``MessageResponse``)."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.type,
            "content": self.content,
            "author": self.author.payload(),
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [],
            "mention_everyone": False,
            "attachments": [a.payload() for a in self.attachments],
            "embeds": [_embed_response(e, self.attachments) for e in self.embeds],
            "components": _components_response(self.components),
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at),
            "flags": self.flags,
            "pinned": False,
            "tts": self.tts,
        }
        if self.reactions:
            data["reactions"] = [
                _reaction_response(e, users, self.author.id) for e, users in self.reactions.items()
            ]
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        if self.referenced is not None and nested:
            # Discord sends the replied-to message along, one level deep (null once deleted).
            data["referenced_message"] = (
                None if self.referenced.deleted else self.referenced.payload(nested=False)
            )
        return data


def _walk_components(components: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk_components(component.get("components", []))
        for key in ("accessory", "component"):  # a section's accessory, a label's input
            if isinstance(component.get(key), dict):
                yield from _walk_components([component[key]])


def _components_response(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Request-shaped components as Discord echoes them: nulls dropped, every one numbered."""
    counter = itertools.count(1)

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: convert(v) for k, v in node.items() if v is not None}
        if "type" in out and isinstance(out["type"], int):
            out.setdefault("id", next(counter))
        return out

    return [convert(c) for c in components]


def _embed_response(embed: dict[str, Any], attachments: list[FakeAttachment]) -> dict[str, Any]:
    """An embed as sent, as Discord returns it: ``type`` set, ``attachment://`` resolved."""
    out: dict[str, Any] = {k: v for k, v in embed.items() if v is not None}
    out.setdefault("type", "rich")
    for key in ("image", "thumbnail"):
        media = out.get(key)
        if isinstance(media, dict) and str(media.get("url", "")).startswith("attachment://"):
            name = media["url"].removeprefix("attachment://")
            match = next((a for a in attachments if a.filename == name), None)
            if match is not None:
                out[key] = {"url": match.url, "proxy_url": match.url}
    for item in out.get("fields", []):
        item.setdefault("inline", False)
    return out


def _reaction_response(emoji: str, users: list[int], me: int) -> dict[str, Any]:
    name, _, emoji_id = emoji.partition(":")
    return {
        "emoji": {"id": emoji_id or None, "name": name},
        "count": len(users),
        "count_details": {"burst": 0, "normal": len(users)},
        "burst_colors": [],
        "me_burst": False,
        "me": me in users,
    }


_MENTION = re.compile(r"<@!?(\d+)>")


def mentioned_ids(content: str) -> list[int]:
    """User ids mentioned in ``content`` (``<@id>``), in order, without repeats."""
    return list(dict.fromkeys(int(m) for m in _MENTION.findall(content)))


def emoji_payload(emoji: str) -> dict[str, Any]:
    """``"👍"`` or ``"name:id"`` as a partial emoji object."""
    name, _, emoji_id = emoji.partition(":")
    return {"id": emoji_id or None, "name": name}


def default_guild(
    ids: Snowflakes, *, bot: FakeUser, people: Iterable[FakeUser], name: str = "Meme Lab"
) -> FakeGuild:
    """A guild with ``#general``, ``#memes``, an age-restricted ``#nsfw``, two roles and the bot; the
    first of ``people`` owns it."""
    guild_id = ids.next()
    owner, *others = list(people)
    bot_role = FakeRole(ids.next(), bot.username, BOT_PERMISSIONS, position=1, managed=True)
    roles = [FakeRole(guild_id, "@everyone", EVERYONE_PERMISSIONS), bot_role]
    channels = [
        FakeChannel(ids.next(), "general", guild_id, position=0),
        FakeChannel(ids.next(), "memes", guild_id, position=1),
        FakeChannel(ids.next(), "nsfw", guild_id, nsfw=True, position=2),
    ]
    members = {bot.id: FakeMember(bot, roles=[bot_role.id])}
    for person in (owner, *others):
        members[person.id] = FakeMember(person)
    return FakeGuild(guild_id, name, owner.id, channels, roles, members)


class Waiter(Protocol):
    """Something that can wait for a condition on the fake's state (the fake itself)."""

    async def wait_for(
        self, predicate: Callable[[], _T | Literal[False] | None], *, timeout: float = ..., what: str = ...
    ) -> _T:
        """Return ``predicate()`` once it is truthy."""
        ...


@dataclass(frozen=True, slots=True)
class InteractionCallback:
    """One answer the bot gave to an interaction (``POST /interactions/{id}/{token}/callback``)."""

    type: int
    data: dict[str, Any] | None
    #: Seconds between dispatching the interaction and this answer arriving.
    latency: float
    attachments: tuple[FakeAttachment, ...] = ()


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any] = field(repr=False)
    user: FakeUser
    channel_id: int
    guild_id: int | None
    created_at: float
    attachment_size_limit: int
    _waiter: Waiter = field(repr=False)
    #: The message a component interaction (or a modal opened from one) came from.
    message: FakeMessage | None = None
    #: For a modal's submission: the interaction that opened the modal.
    opened_by: FakeInteraction | None = None
    callbacks: list[InteractionCallback] = field(default_factory=list)
    #: The response message: created by callback 4/5, or the clicked message after 6/7.
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    #: Why callbacks were refused (late, acknowledged twice...).
    refusals: list[str] = field(default_factory=list)
    expired: bool = False

    @property
    def acknowledged(self) -> bool:
        """The bot answered the callback in time."""
        return bool(self.callbacks)

    @property
    def response_type(self) -> int | None:
        """The callback type (4 message, 5 deferred, 6 deferred update, 7 update, 8 choices, 9 modal)."""
        return self.callbacks[0].type if self.callbacks else None

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot answered with (callback type 9): ``custom_id``, ``title``, ``components``."""
        first = self.callbacks[0] if self.callbacks else None
        return first.data if first is not None and first.type == 9 else None

    def text_inputs(self) -> dict[str, dict[str, Any]]:
        """The modal's text inputs by ``custom_id`` (inside rows or labels), as the bot declared them."""

        components = _walk_components((self.modal or {}).get("components", []))
        return {c["custom_id"]: c for c in components if c["type"] == 4}

    @property
    def choices(self) -> list[dict[str, Any]]:
        """An autocomplete answer's choices."""
        data = self.callbacks[0].data if self.callbacks else None
        return list((data or {}).get("choices", []))

    @property
    def messages(self) -> list[FakeMessage]:
        """The original response (if any) followed by the follow-ups."""
        return [*([self.original] if self.original else []), *self.followups]

    def expire(self) -> None:
        """Make the token invalid, as 15 minutes after the interaction (webhook calls get 401 50027)."""
        self.expired = True

    async def acknowledgement(self, timeout: float = 3.0) -> InteractionCallback:
        """The first callback, once it arrives (Discord's limit is 3 s); fails if the fake refused it."""
        what = f"an answer to {self}"
        await self._waiter.wait_for(lambda: self.callbacks or self.refusals, timeout=timeout, what=what)
        if not self.callbacks:
            raise AssertionError(f"the answer to {self} was refused: {self.refusals}")
        return self.callbacks[0]

    async def followup(self, index: int = 0, timeout: float = 10.0) -> FakeMessage:
        """The ``index``-th follow-up message, once it exists."""
        what = f"follow-up #{index} to interaction {self.id}"
        await self._waiter.wait_for(lambda: len(self.followups) > index, timeout=timeout, what=what)
        return self.followups[index]

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] = lambda m: True, timeout: float = 10.0
    ) -> FakeMessage:
        """The response message once ``predicate`` holds for it (e.g. an edit landed)."""

        def ready() -> FakeMessage | None:
            original = self.original
            return original if original is not None and predicate(original) else None

        return await self._waiter.wait_for(ready, timeout=timeout, what=f"the original response of {self.id}")

    def __repr__(self) -> str:
        data = self.payload.get("data") or {}
        name = data.get("name") or data.get("custom_id")
        kinds = [c.type for c in self.callbacks]
        return f"<FakeInteraction id={self.id} type={self.type} {name!r} callbacks={kinds}>"
