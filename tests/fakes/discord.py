"""A fake Discord (REST and gateway) on 127.0.0.1 that the real discord.py client talks to.

Typical use (give the client a small ``guild_ready_timeout``: discord.py waits that long for guilds)::

    async with FakeDiscord() as fake, run_client(bot, fake):
        ix = await fake.slash_command("imagine", {"prompt": "a cat"})
        assert (await ix.acknowledgement()).type == 5          # deferred within 3 s
        image = (await ix.followup()).attachments[0].image()   # a PIL image
        fake.assert_clean()                                    # no bad requests, no dead gateway

Every REST request is checked against Discord's OpenAPI spec (see ``discord_spec``).
"""

# The waits take a timeout so that their failure names what was awaited (and the last requests).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import secrets
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from enum import IntEnum
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import yarl
from aiohttp import web

from tests.fakes.discord_gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILD_PRESENCES,
    MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    Gateway,
    GatewayConnection,
    GatewaySession,
    Op,
)
from tests.fakes.discord_models import (
    DM,
    DM_PERMISSIONS,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Snowflakes,
    default_guild,
    emoji_payload,
    mentioned_ids,
)
from tests.fakes.discord_rest import InjectedFault, Reply, RestApi, RestCall, error, rate_limited
from tests.fakes.discord_spec import DiscordSpec, load_spec
from tests.fakes.loopback import serve

with warnings.catch_warnings():
    # discord.py's voice player imports audioop, deprecated since Python 3.11 (tests turn warnings
    # into errors, and this one fires at import time, before any pytest filter could be scoped).
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

__all__ = [
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "RestCall",
    "point_discord_py_at",
    "run_client",
]

_T = TypeVar("_T")

#: Discord's default upload limit per file (non-boosted guilds, bots).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
#: Intervals past the due time before a heartbeat counts as missed: real gateways drop a connection
#: about one interval after a missed beat; the wide margin keeps a loaded test machine from looking like
#: a blocked bot.
MISSED_BEATS = 5
#: Application flags saying which privileged intents the developer portal switched on.
_INTENT_APP_FLAGS = {GUILD_PRESENCES: 1 << 13, GUILD_MEMBERS: 1 << 15, MESSAGE_CONTENT: 1 << 19}


class OptionType(IntEnum):
    """Types of application command options."""

    SUBCOMMAND = 1
    GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


#: Application command types: slash commands, and the two right-click menus.
CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
#: Interaction types this fake dispatches.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
#: The callback type that opens a modal.
MODAL = 9

_NESTING = {OptionType.SUBCOMMAND, OptionType.GROUP}
#: Python types a test may pass for the options that carry a plain value (the rest are resolved objects).
_PLAIN: dict[int, type | tuple[type, ...]] = {
    OptionType.STRING: str,
    OptionType.INTEGER: int,
    OptionType.NUMBER: (int, float),
    OptionType.BOOLEAN: bool,
}


class FakeDiscord:
    """Discord's REST API and gateway on a free port of 127.0.0.1, with the state a test inspects."""

    def __init__(
        self,
        *,
        heartbeat_interval: float = 0.5,
        interaction_timeout: float = 3.0,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        allowed_intents: int = PRIVILEGED_INTENTS,
        bot_name: str = "memebot",
        validate: bool = True,
        spec: DiscordSpec | None = None,
    ) -> None:
        self.ids = Snowflakes()
        self.token = f"fake.{secrets.token_urlsafe(24)}"
        #: Newer applications share their id with their bot user.
        self.application_id = self.ids.next()
        self.bot = FakeUser(self.application_id, bot_name, bot=True)
        self.alice = FakeUser(self.ids.next(), "alice", "Alice")
        self.bob = FakeUser(self.ids.next(), "bob", "Bob")
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot, self.alice, self.bob)}
        self.guild = default_guild(self.ids, bot=self.bot, people=[self.alice, self.bob])
        self.guilds: dict[int, FakeGuild] = {self.guild.id: self.guild}
        self.channels: dict[int, FakeChannel] = {c.id: c for c in self.guild.channels}
        self.interaction_timeout = interaction_timeout
        self.upload_limit = upload_limit
        #: Registered application commands: ``None`` holds the global ones, else by guild id.
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        #: Ids of the attachments the bot downloaded, in order.
        self.attachment_downloads: list[int] = []
        self.requests: list[RestCall] = []
        #: Requests Discord would refuse (answered 400): "METHOD path [template]: problem".
        self.violations: list[str] = []
        #: The fake's own answers (REST and gateway) that do not match the spec: bugs in the fake.
        self.response_violations: list[str] = []
        #: Spec routes the fake does not serve (answered 404).
        self.unhandled: list[str] = []
        #: Events the helpers did not send because the session lacks the intent for them.
        self.filtered_events: list[str] = []
        self.faults: list[InjectedFault] = []
        #: Tasks running clients (``run_client`` adds them): ``wait_for`` fails at once when one ends.
        self.client_tasks: list[asyncio.Task[None]] = []
        self.spec = spec or load_spec()
        self.gateway = Gateway(
            self, token=self.token, heartbeat_interval=heartbeat_interval, allowed_intents=allowed_intents
        )
        self.rest = RestApi(self, self.spec, validate=validate)
        self._validate = validate
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.rest.handle)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/resume", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_route("*", "/{tail:.*}", self._stray)
        self._runner, self._port = await serve(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.gateway.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        """The TCP port (once started)."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not running: use `async with FakeDiscord() as fake`")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_url(self) -> str:
        """READY's ``resume_gateway_url``: discord.py resumes there, not on the configured gateway."""
        return f"ws://127.0.0.1:{self.port}/resume"

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["attachment_id"]))
        self.attachment_downloads.append(int(request.match_info["attachment_id"]))
        if attachment is None:
            return web.Response(status=404)
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    async def _stray(self, request: web.Request) -> web.Response:
        self.unhandled.append(f"{request.method} {request.path} (outside /api/v10)")
        self.changed()
        return web.Response(status=404)

    # -- state ---------------------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake everything waiting in ``wait_for`` (called on every request and gateway event)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def add_user(self, username: str, *, in_guild: bool = True, roles: Sequence[FakeRole] = ()) -> FakeUser:
        """A new user, a member of the default guild unless ``in_guild`` is False."""
        user = FakeUser(self.ids.next(), username, username.title())
        self.users[user.id] = user
        if in_guild:
            self.guild.members[user.id] = FakeMember(user, roles=[r.id for r in roles])
        return user

    def add_role(self, name: str, permissions: int = 0, *, guild: FakeGuild | None = None) -> FakeRole:
        """A new role in ``guild`` (the default one unless given); add it before the client connects, so
        its cache has it."""
        guild = guild or self.guild
        role = FakeRole(self.ids.next(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        return role

    def add_guild(self, name: str, *, owner: FakeUser | None = None) -> FakeGuild:
        """Another guild the bot is in, laid out like the default one (add it before the client connects,
        so READY lists it); ``owner`` (a new user unless given) is its only other member so far."""
        owner = owner or self.add_user(f"owner{len(self.guilds) + 1}", in_guild=False)
        guild = default_guild(self.ids, bot=self.bot, people=[owner], name=name)
        self.guilds[guild.id] = guild
        self.channels |= {c.id: c for c in guild.channels}
        return guild

    def join(self, user: FakeUser, guild: FakeGuild, *, roles: Sequence[FakeRole] = ()) -> None:
        """Make ``user`` a member of ``guild`` with ``roles``."""
        guild.members[user.id] = FakeMember(user, roles=[r.id for r in roles])

    def channel(self, name: str) -> FakeChannel:
        """A channel of the default guild by name: ``general``, ``memes``, ``nsfw`` (age-restricted)."""
        return self.guild.channel(name)

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The bot's DM channel with ``user`` (created on first use)."""
        for channel in self.channels.values():
            if channel.type == DM and channel.recipients == (user,):
                return channel
        channel = FakeChannel(self.ids.next(), "", None, type=DM, recipients=(user,))
        self.channels[channel.id] = channel
        return channel

    def store_attachment(
        self, filename: str, data: bytes, *, content_type: str | None = None, description: str | None = None
    ) -> FakeAttachment:
        """Keep a file and serve it at its URL (for attachment options and users' messages too)."""
        attachment_id = self.ids.next()
        url = f"{self.base_url}/attachments/{attachment_id}/{quote(filename)}"
        attachment = FakeAttachment(attachment_id, filename, data, url, content_type, description)
        self.attachments[attachment_id] = attachment
        return attachment

    def new_message(self, channel_id: int, author: FakeUser, **fields: Any) -> FakeMessage:
        """Create and keep a message (without announcing it)."""
        channel = self.channels[channel_id]
        message = FakeMessage(self.ids.next(), channel_id, channel.guild_id, author, **fields)
        self.messages[message.id] = message
        return message

    def messages_in(self, channel: int | FakeChannel) -> list[FakeMessage]:
        """The channel's messages that were not deleted, oldest first (ephemeral ones included)."""
        channel_id = channel.id if isinstance(channel, FakeChannel) else channel
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    def command(self, name: str, *, guild_id: int | None = None, kind: int = CHAT_INPUT) -> dict[str, Any]:
        """A registered command by name and kind (slash, user or message menu): the guild's first (when
        given), then the global ones."""
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command["type"] == kind:
                    return command
        registered = {scope: [c["name"] for c in cs] for scope, cs in self.commands.items()}
        raise LookupError(f"no command {name!r} of type {kind} registered (synced?): {registered}")

    # -- gateway payloads (GatewayWorld) ------------------------------------------------------------------

    def bot_pii_payload(self) -> dict[str, Any]:
        """``GET /users/@me`` and READY's ``user``."""
        extra = {"mfa_enabled": False, "locale": "en-US", "verified": True, "email": None}
        return self.bot.payload() | extra

    def application_payload(self) -> dict[str, Any]:
        """``GET /oauth2/applications/@me``."""
        return {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "",
            "type": None,
            "bot": self.bot.payload(),
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self._application_flags(),
            "flags_new": str(self._application_flags()),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": self.alice.payload(),
            "team": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": [],
            "rpc_origins": [],
            "tags": [],
            "integration_types_config": {"0": {}},
        }

    def _application_flags(self) -> int:
        return sum(
            flag for intent, flag in _INTENT_APP_FLAGS.items() if self.gateway.allowed_intents & intent
        )

    def ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        """READY: guilds unavailable until their GUILD_CREATE, as Discord does it."""
        data: dict[str, Any] = {
            "v": 10,
            "user": self.bot_pii_payload(),
            "user_settings": {},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.guilds.values()],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {"id": str(self.application_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
            "_trace": ["fake-gateway"],
        }
        if "shard" in session.identify:
            data["shard"] = session.identify["shard"]
        return data

    def guild_create_payloads(self) -> list[dict[str, Any]]:
        """GUILD_CREATE for every guild (roles, channels and members checked against the spec)."""
        payloads = [g.payload(joined_at=g.members[self.bot.id].joined_at) for g in self.guilds.values()]
        for payload in payloads:
            for name, schema in (("roles", "GuildRoleResponse"), ("channels", "GuildChannelResponse")):
                for item in payload[name]:
                    self._check_own("GUILD_CREATE", schema, item)
            for member in payload["members"]:
                self._check_own("GUILD_CREATE", "GuildMemberResponse", member)
        return payloads

    def member_payloads(self, guild_id: int) -> list[dict[str, Any]]:
        """Every member of the guild (GUILD_MEMBERS_CHUNK)."""
        return [m.payload() for m in self.guilds[guild_id].members.values()]

    def _check_own(self, where: str, schema: str, instance: Any) -> None:
        if self._validate:
            for problem in self.spec.check_schema(schema, instance):
                self.response_violations.append(f"{where} ({schema}): {problem}")

    # -- gateway events from the fake's state ------------------------------------------------------------

    def _intents_allow(self, event: str, needed: int) -> bool:
        session = self.gateway.session
        if session is None:
            return False
        if session.intents & needed:
            return True
        self.filtered_events.append(f"{event} (the session's intents {session.intents:#x} lack {needed:#x})")
        return False

    async def emit_message(self, event: str, message: FakeMessage) -> None:
        """MESSAGE_CREATE/MESSAGE_UPDATE for ``message`` as the bot's session would get it."""
        if message.ephemeral:
            return  # only the interaction's user sees those; no event goes out
        guild = self.guilds.get(message.guild_id or 0)
        if not self._intents_allow(event, GUILD_MESSAGES if guild else DIRECT_MESSAGES):
            return
        payload = message.payload()
        self._check_own(event, "MessageResponse", payload)
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            member = guild.members.get(message.author.id)
            if member is not None:
                payload["member"] = member.payload(with_user=False)
        session = self.gateway.session
        if session is not None and not session.intents & MESSAGE_CONTENT and self._content_hidden(message):
            # Without the privileged intent Discord blanks what others write in guilds.
            payload |= {"content": "", "embeds": [], "attachments": [], "components": []}
        await self.gateway.dispatch(event, payload)

    def _content_hidden(self, message: FakeMessage) -> bool:
        mentions_bot = any(u.id == self.bot.id for u in message.mentions)
        return message.guild_id is not None and message.author.id != self.bot.id and not mentions_bot

    async def delete_message(self, message: FakeMessage) -> None:
        """Mark deleted and announce MESSAGE_DELETE."""
        message.deleted = True
        self.changed()
        if message.ephemeral or not self._intents_allow(
            "MESSAGE_DELETE", GUILD_MESSAGES if message.guild_id else DIRECT_MESSAGES
        ):
            return
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE", data)

    async def react(self, message: FakeMessage, emoji: str, user: FakeUser) -> None:
        """Add ``user``'s reaction and announce MESSAGE_REACTION_ADD."""
        users = message.reactions.setdefault(emoji, [])
        if user.id in users:
            return
        users.append(user.id)
        self.changed()
        needed = GUILD_MESSAGE_REACTIONS if message.guild_id else DIRECT_MESSAGE_REACTIONS
        if not self._intents_allow("MESSAGE_REACTION_ADD", needed):
            return
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "message_author_id": str(message.author.id),
            "emoji": emoji_payload(emoji),
            "burst": False,
            "burst_colors": [],
            # Without "type" discord.py raises KeyError and Client.connect() ends.
            "type": 0,
        }
        guild = self.guilds.get(message.guild_id or 0)
        if guild is not None:
            data["guild_id"] = str(guild.id)
            member = guild.members.get(user.id)
            if member is not None:
                data["member"] = member.payload()
        await self.gateway.dispatch("MESSAGE_REACTION_ADD", data)

    # -- driving the bot -----------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send any gateway event as is (no intent filtering); returns its sequence number."""
        return await self.gateway.dispatch(event, data)

    async def post_user_message(
        self,
        channel: int | FakeChannel,
        content: str,
        *,
        author: FakeUser | None = None,
        mentions: Sequence[FakeUser] = (),
        attachments: Sequence[FakeAttachment] = (),
        embeds: Sequence[dict[str, Any]] = (),
        reply_to: FakeMessage | None = None,
        send_replied: bool = True,
        announce: bool = True,
    ) -> FakeMessage:
        """A person writes in a channel (MESSAGE_CREATE). ``<@id>`` in ``content`` counts as a mention.

        A reply (``reply_to``) carries ``message_reference`` and, as on Discord, the replied-to message
        itself as ``referenced_message``; ``send_replied=False`` leaves that out, as Discord may ("the
        backend did not attempt to fetch" it), so a client has to fetch it. ``announce=False`` keeps a
        message quiet: one from before the bot connected, known to it only through an interaction, a
        reply or a fetch.
        """
        channel_id = channel.id if isinstance(channel, FakeChannel) else channel
        author = author or self.alice
        people = [self.users[i] for i in mentioned_ids(content) if i in self.users]
        message = self.new_message(
            channel_id,
            author,
            content=content,
            mentions=list(dict.fromkeys([*people, *mentions])),
            attachments=list(attachments),
            embeds=list(embeds),
        )
        if reply_to is not None:
            message.type = 19
            message.referenced = reply_to if send_replied else None
            message.message_reference = {
                "type": 0,
                "channel_id": str(reply_to.channel_id),
                "message_id": str(reply_to.id),
            }
            if reply_to.guild_id is not None:
                message.message_reference["guild_id"] = str(reply_to.guild_id)
        if announce:
            await self.emit_message("MESSAGE_CREATE", message)
        return message

    async def add_reaction(
        self, channel: int | FakeChannel, message: int | FakeMessage, emoji: str, user: FakeUser | None = None
    ) -> None:
        """A person reacts (MESSAGE_REACTION_ADD); ``emoji`` is ``"👍"`` or ``"name:id"``."""
        channel_id = channel.id if isinstance(channel, FakeChannel) else channel
        found = message if isinstance(message, FakeMessage) else self.messages[message]
        if found.channel_id != channel_id:
            raise ValueError(f"message {found.id} is in channel {found.channel_id}, not {channel_id}")
        await self.react(found, emoji, user or self.alice)

    async def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A person runs ``/name`` (``"group sub"`` for subcommands) with option values by name.

        Values: str/int/float/bool, ``FakeUser``, ``FakeChannel``, ``FakeRole``, ``FakeAttachment`` (from
        ``store_attachment``). Checked as Discord's client would: names, required, choices, bounds.
        Default place: the default guild's ``#general``; a DM channel from ``dm_channel`` works too.
        """
        channel = self._place(channel_id, guild_id)
        root, *path = name.split()
        command = self.command(root, guild_id=channel.guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        data: dict[str, Any] = {"id": command["id"], "name": root, "type": CHAT_INPUT}
        data["options"] = self._options(command, path, dict(options or {}), resolved, focused=None)
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(APPLICATION_COMMAND, data, user, channel, attachment_size_limit, locale)

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """A person types in option ``focused`` of ``/name`` (type 4); ``choices`` holds the answer."""
        channel = self._place(channel_id, None)
        root, *path = name.split()
        command = self.command(root, guild_id=channel.guild_id)
        data: dict[str, Any] = {"id": command["id"], "name": root, "type": CHAT_INPUT}
        data["options"] = self._options(command, path, dict(options), {}, focused=focused)
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(AUTOCOMPLETE, data, user, channel, None, "en-US")

    async def message_command(
        self,
        name: str,
        target: FakeMessage,
        *,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
    ) -> FakeInteraction:
        """A person right-clicks ``target`` and picks the message command ``name`` (Apps → name).

        Discord sends the message itself under ``resolved.messages``, so the bot needs no fetch.
        """
        channel = self.channels[target.channel_id]
        command = self.command(name, guild_id=channel.guild_id, kind=MESSAGE_COMMAND)
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": MESSAGE_COMMAND,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): target.payload()}},
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self._interact(APPLICATION_COMMAND, data, user, channel, attachment_size_limit, "en-US")

    async def submit_modal(
        self,
        opened: FakeInteraction,
        values: Mapping[str, str] | None = None,
        *,
        user: FakeUser | None = None,
    ) -> FakeInteraction:
        """The person who was shown ``opened``'s modal fills it in and presses Submit (type 5).

        ``values`` by text input ``custom_id``; the others keep the value the modal was opened with.
        Checked as Discord's client would: known inputs, required ones filled, lengths within bounds.
        Waits for the modal to be shown first.
        """
        await opened.acknowledgement()
        modal = opened.modal
        if modal is None:
            raise ValueError(
                f"{opened} did not open a modal (callbacks {[c.type for c in opened.callbacks]})"
            )
        values = dict(values or {})
        components = [_submitted(component, values) for component in modal["components"]]
        if values:
            raise ValueError(f"the modal has no text input(s) {sorted(values)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        channel = self.channels[opened.channel_id]
        return await self._interact(
            MODAL_SUBMIT,
            data,
            user or opened.user,
            channel,
            opened.attachment_size_limit,
            "en-US",
            message=opened.message,
            opened_by=opened,
        )

    async def click(
        self,
        message: int | FakeMessage,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        values: Sequence[str] | None = None,
    ) -> FakeInteraction:
        """A person clicks a button (or picks ``values`` in a select) on a message the bot sent."""
        found = message if isinstance(message, FakeMessage) else self.messages[message]
        component = found.component(custom_id)
        if component.get("disabled"):
            raise ValueError(
                f"component {custom_id!r} on message {found.id} is disabled: nobody can click it"
            )
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = list(values)
        elif component["type"] != 2:
            raise ValueError(f"component {custom_id!r} is a select (type {component['type']}): pass values=")
        channel = self.channels[found.channel_id]
        return await self._interact(MESSAGE_COMPONENT, data, user, channel, None, "en-US", message=found)

    def _place(self, channel_id: int | None, guild_id: int | None) -> FakeChannel:
        if channel_id is not None:
            channel = self.channels[channel_id]
            if guild_id is not None and channel.guild_id != guild_id:
                raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
            return channel
        guild = self.guilds[guild_id] if guild_id is not None else self.guild
        return guild.channels[0]

    def _options(
        self,
        command: dict[str, Any],
        path: list[str],
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        *,
        focused: str | None,
    ) -> list[dict[str, Any]]:
        """The interaction's ``options``: nested under subcommands, typed as the command declares."""
        declared = command.get("options", [])
        if path:
            sub = next((o for o in declared if o["name"] == path[0] and o["type"] in _NESTING), None)
            if sub is None:
                raise LookupError(f"/{command['name']} has no subcommand {path[0]!r}")
            inner = self._options(sub, path[1:], values, resolved, focused=focused)
            return [{"name": sub["name"], "type": sub["type"], "options": inner}]
        by_name = {o["name"]: o for o in declared}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(
                f"/{command['name']} has no option(s) {sorted(unknown)}; it has {sorted(by_name)}"
            )
        missing = [o["name"] for o in declared if o.get("required") and o["name"] not in values]
        if missing and focused is None:
            raise ValueError(f"/{command['name']} needs {missing}: Discord's client would not send it")
        out = []
        for option_name, value in values.items():
            option = by_name[option_name]
            if option_name == focused:
                out.append(
                    {"name": option_name, "type": option["type"], "value": str(value), "focused": True}
                )
            else:
                value = self._option_value(option, value, resolved, check=focused is None)
                out.append({"name": option_name, "type": option["type"], "value": value})
        return out

    def _option_value(
        self, option: dict[str, Any], value: Any, resolved: dict[str, dict[str, Any]], *, check: bool
    ) -> Any:
        kind = option["type"]
        if kind not in _PLAIN:
            return self._resolve(kind, option["name"], value, resolved)
        if not isinstance(value, _PLAIN[kind]) or (kind != OptionType.BOOLEAN and isinstance(value, bool)):
            raise TypeError(f"option {option['name']!r} (type {kind}) cannot take {value!r}")
        if check:
            _check_bounds(option, value)
        return value

    def _resolve(self, kind: int, name: str, value: Any, resolved: dict[str, dict[str, Any]]) -> str:
        """Put a user, channel, role or attachment into ``resolved`` and return its id."""
        if isinstance(value, FakeUser) and kind in (OptionType.USER, OptionType.MENTIONABLE):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = self.guild.members.get(value.id)
            if member is not None:
                payload = member.payload(with_user=False) | {
                    "permissions": str(self.guild.permissions_of(value.id))
                }
                resolved.setdefault("members", {})[str(value.id)] = payload
            return str(value.id)
        if isinstance(value, FakeRole) and kind in (OptionType.ROLE, OptionType.MENTIONABLE):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if isinstance(value, FakeChannel) and kind == OptionType.CHANNEL:
            payload = value.payload() | {"permissions": str(self.guild.permissions_of(self.alice.id))}
            resolved.setdefault("channels", {})[str(value.id)] = payload
            return str(value.id)
        if isinstance(value, FakeAttachment) and kind == OptionType.ATTACHMENT:
            resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            return str(value.id)
        raise TypeError(f"option {name!r} (type {kind}) cannot take {value!r}")

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        user: FakeUser | None,
        channel: FakeChannel,
        size_limit: int | None,
        locale: str,
        *,
        message: FakeMessage | None = None,
        opened_by: FakeInteraction | None = None,
    ) -> FakeInteraction:
        """Build INTERACTION_CREATE with every field discord.py reads, dispatch it, return the handle."""
        user = user or self.alice
        interaction_id = self.ids.next()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(48)}"
        limit = size_limit or self.upload_limit
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel.id),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": limit,
        }
        guild = self.guilds.get(channel.guild_id or 0)
        self.users.setdefault(user.id, user)
        if guild is not None:
            if user.id not in guild.members:
                guild.members[user.id] = FakeMember(user)
            permissions = str(guild.permissions_of(user.id))
            payload |= {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": guild.members[user.id].payload() | {"permissions": permissions},
                "channel": channel.payload() | {"permissions": permissions},
                "app_permissions": str(guild.permissions_of(self.bot.id)),
                "authorizing_integration_owners": {"0": str(guild.id)},
                "context": 0,
            }
        else:
            payload |= {
                "user": user.payload(),
                "channel": channel.payload(),
                "app_permissions": str(DM_PERMISSIONS),
                "authorizing_integration_owners": {"0": "0"},
                "context": 1,
            }
        if message is not None:
            payload["message"] = message.payload()
        loop = asyncio.get_running_loop()
        ix = FakeInteraction(
            id=interaction_id,
            token=token,
            type=kind,
            payload=payload,
            user=user,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            created_at=loop.time(),
            attachment_size_limit=limit,
            _waiter=self,
            message=message,
            opened_by=opened_by,
        )
        self.interactions[ix.id] = ix
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return ix

    # -- faults --------------------------------------------------------------------------------------

    def rate_limit(
        self,
        method: str,
        path_pattern: str,
        *,
        times: int = 1,
        retry_after: float = 0.3,
        global_: bool = False,
    ) -> InjectedFault:
        """Answer the next ``times`` matching requests with 429 (discord.py sleeps ``retry_after``, retries).

        ``path_pattern``: a spec template (``/webhooks/{webhook_id}/{webhook_token}``) or a glob of the path.
        """
        fault = InjectedFault(method, path_pattern, times, lambda: rate_limited(retry_after, global_))
        self.faults.append(fault)
        return fault

    def fail(
        self, method: str, path_pattern: str, *, status: int, code: int, message: str, times: int = 1
    ) -> InjectedFault:
        """Answer the next ``times`` matching requests with a Discord error (e.g. 403, 50013)."""

        def reply() -> Reply:
            return error(status, code, message)

        fault = InjectedFault(method, path_pattern, times, reply)
        self.faults.append(fault)
        return fault

    # -- gateway control -----------------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats asked for in HELLO."""
        return self.gateway.heartbeat_interval

    @property
    def connections(self) -> list[GatewayConnection]:
        """Every gateway connection so far."""
        return self.gateway.connections

    @property
    def disconnects(self) -> list[GatewayConnection]:
        """Connections the client ended (or lost) without the fake asking: a dead bot shows here."""
        return self.gateway.disconnects

    def max_heartbeat_gap(self) -> float:
        """The longest time between heartbeats (or since the last one, on an open connection)."""
        return max(self.gateway.heartbeat_gaps(), default=0.0)

    def late_heartbeats(self, slack: float | None = None) -> list[float]:
        """Gaps longer than the interval plus ``slack`` (default: MISSED_BEATS intervals).

        The fake shares the bot's event loop and validates every request against the spec there, and a
        busy machine delays any thread, so a gap a little over the interval says nothing; the default
        flags only a connection the gateway would have dropped, with a wide margin. How regular the
        beats are under load is measured in ``benchmarks/bench_discord.py``, not asserted in tests.
        """
        slack = self.heartbeat_interval * MISSED_BEATS if slack is None else slack
        return [g for g in self.gateway.heartbeat_gaps() if g > self.heartbeat_interval + slack]

    async def close_gateway(
        self, code: int = 4000, reason: str = "fake Discord closed the connection"
    ) -> None:
        """Close the client's connection server-side (1000 and 4000 make discord.py RESUME)."""
        await self.gateway.close(code, reason)

    def abort_gateway(self) -> None:
        """Cut the client's TCP connection without a close frame."""
        self.gateway.abort()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT."""
        await self.gateway.send_op(Op.RECONNECT)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; not resumable means the client must IDENTIFY again."""
        await self.gateway.send_op(Op.INVALID_SESSION, resumable)

    async def wait_for_connection(
        self, mode: str, count: int = 1, timeout: float = 10.0
    ) -> GatewayConnection:
        """The ``count``-th open connection whose session started by ``mode`` (``identify``/``resume``)."""

        def found() -> GatewayConnection | None:
            matching = [c for c in self.connections if c.mode == mode]
            if len(matching) < count:
                return None
            conn = matching[count - 1]
            return conn if conn.ready and conn.open else None

        return await self.wait_for(found, timeout=timeout, what=f"gateway connection #{count} by {mode}")

    # -- waiting and checking ------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], _T | Literal[False] | None],
        *,
        timeout: float = 10.0,
        what: str = "a condition",
        allow_violations: bool = False,
    ) -> _T:
        """Return ``predicate()`` once truthy; fails early when the client breaks the API or disconnects."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen_violations, seen_disconnects = len(self.violations), len(self.disconnects)
        while True:
            result = predicate()
            if result:
                return result
            if not allow_violations and len(self.violations) > seen_violations:
                raise AssertionError(f"waiting for {what}, the client sent bad requests: {self.violations}")
            if len(self.disconnects) > seen_disconnects:
                raise AssertionError(f"waiting for {what}, the gateway connection died: {self.disconnects}")
            for task in self.client_tasks:
                if task.done():
                    error = None if task.cancelled() else task.exception()
                    raise AssertionError(
                        f"waiting for {what}, the discord client stopped: {error!r}"
                    ) from error
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = self.requests[-8:]
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; last requests: {recent}"
                )
            # The fake wakes us on its own changes; the short poll covers conditions on the bot's side.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    def requests_to(self, method: str, path_pattern: str) -> list[RestCall]:
        """Requests so far by method (or ``*``) and spec template or path glob."""
        return [r for r in self.requests if r.matches(method, path_pattern)]

    async def wait_for_request(
        self, method: str, path_pattern: str, *, count: int = 1, timeout: float = 10.0
    ) -> RestCall:
        """The ``count``-th matching request, once it has been answered."""

        def found() -> RestCall | None:
            matching = self.requests_to(method, path_pattern)
            return matching[count - 1] if len(matching) >= count else None

        return await self.wait_for(found, timeout=timeout, what=f"{method} {path_pattern} #{count}")

    def problems(self, *, heartbeats: bool = True) -> list[str]:
        """Everything that should not have happened: bad requests, bad fake answers, dead connections..."""
        late = self.late_heartbeats() if heartbeats else []
        return [
            *(f"violation: {v}" for v in self.violations),
            *(f"fake answered off-spec: {v}" for v in self.response_violations),
            *(f"unhandled: {u}" for u in self.unhandled),
            *(f"gateway: {p}" for p in self.gateway.problems),
            *(f"refused interaction callback: {r}" for ix in self.interactions.values() for r in ix.refusals),
            *(
                f"gateway connection {c.index} closed by the client ({c.close_code})"
                for c in self.disconnects
            ),
            *([f"late heartbeats (interval {self.heartbeat_interval} s): {late}"] if late else []),
        ]

    def assert_clean(self, *, heartbeats: bool = True) -> None:
        """Fail with everything ``problems()`` found (call it before stopping the client)."""
        found = self.problems(heartbeats=heartbeats)
        assert not found, "fake Discord saw problems:\n" + "\n".join(found)


def _submitted(component: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """What Discord sends back for one top-level component of a modal: rows and labels keep their
    shape, text inputs carry what was typed (``values`` is emptied of the ones used)."""
    if component["type"] == 1:  # an action row (the older layout)
        return {"type": 1, "components": [_submitted(c, values) for c in component["components"]]}
    if component["type"] == 18:  # a label around one input
        return {"type": 18, "component": _submitted(component["component"], values)}
    if component["type"] != 4:
        return {"type": component["type"]}  # text displays and the like send nothing back
    custom_id = component["custom_id"]
    value = values.pop(custom_id, component.get("value") or "")
    if component.get("required", True) and not value:
        raise ValueError(f"text input {custom_id!r} is required: Discord's client would not submit")
    if value and not component.get("min_length", 0) <= len(value) <= component.get("max_length", 4000):
        raise ValueError(f"text input {custom_id!r}: {len(value)} characters is out of the declared bounds")
    return {"type": 4, "custom_id": custom_id, "value": value}


def _check_bounds(option: dict[str, Any], value: Any) -> None:
    """What Discord's client enforces before sending: choices, lengths, ranges."""
    name = option["name"]
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(f"option {name!r} must be one of {[c['value'] for c in choices]}, not {value!r}")
    if isinstance(value, str):
        if len(value) < option.get("min_length", 0) or len(value) > option.get("max_length", 6000):
            raise ValueError(f"option {name!r}: {len(value)} characters is out of the declared bounds")
    elif value < option.get("min_value", float("-inf")) or value > option.get("max_value", float("inf")):
        raise ValueError(f"option {name!r}: {value} is out of the declared range")


@contextlib.contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and gateway URL at ``fake``, and put them back afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@contextlib.asynccontextmanager
async def run_client(
    client: discord.Client, fake: FakeDiscord, *, ready_timeout: float = 10.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``client`` against ``fake`` until the block ends: started, ready, alive at the end, closed.

    Pass ``guild_ready_timeout`` small to the client: discord.py waits that long after the last
    GUILD_CREATE before ``on_ready``.
    """
    with point_discord_py_at(fake):
        earlier = len(fake.disconnects)
        task = asyncio.create_task(client.start(fake.token), name="discord-client")
        fake.client_tasks.append(task)
        try:
            await _until_ready(client, task, ready_timeout)
            yield task
            if task.done():
                raise AssertionError("the discord client stopped while the test ran") from task.exception()
            if len(fake.disconnects) > earlier:
                raise AssertionError(f"the gateway connection died while the test ran: {fake.disconnects}")
        finally:
            fake.client_tasks.remove(task)
            for conn in fake.connections:
                conn.planned = conn.planned or conn.open  # this close is the harness's doing
            await client.close()
            done, _ = await asyncio.wait({task}, timeout=10)
            if not done:
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved here so asyncio does not log it; raised above if it mattered


async def _until_ready(client: discord.Client, task: asyncio.Task[None], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not client.is_ready():
        if task.done():
            raise AssertionError("the discord client stopped before it was ready") from task.exception()
        if loop.time() > deadline:
            raise AssertionError(f"the discord client was not ready after {timeout} s")
        await asyncio.sleep(0.01)
