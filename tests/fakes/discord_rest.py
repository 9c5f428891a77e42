"""The fake Discord's REST API: parse, check against the spec, inject faults, answer like Discord."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from tests.fakes.discord_models import (
    EPHEMERAL,
    LOADING,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
    InteractionCallback,
    mentioned_ids,
    now,
)
from tests.fakes.discord_spec import DiscordSpec, Operation

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

API_PREFIX = "/api/v10"
#: A bot's message content limit (the spec says 4000, which only Nitro users get).
BOT_CONTENT_LIMIT = 2000
#: Interaction tokens stop working after 15 minutes.
TOKEN_LIFETIME = 15 * 60
#: Which callback types Discord accepts for which interaction type.
CALLBACKS_FOR = {2: {4, 5, 9, 12}, 3: {4, 5, 6, 7, 9, 12}, 4: {8}, 5: {4, 5, 6, 7}}
#: Message flags a bot may set when sending (suppress embeds, ephemeral, silent, components v2).
SENDABLE_FLAGS = (1 << 2) | EPHEMERAL | (1 << 12) | (1 << 15)


@dataclass(frozen=True, slots=True)
class Upload:
    """A ``files[n]`` part of a multipart request."""

    index: int
    filename: str
    data: bytes
    content_type: str | None


@dataclass(slots=True)
class RestCall:
    """One REST request the client made, with what the fake answered."""

    method: str
    path: str
    template: str
    params: dict[str, str]
    query: dict[str, str]
    headers: CIMultiDict[str]
    json: Any
    uploads: list[Upload]
    at: float
    status: int = 0
    response: Any = None

    def matches(self, method: str, pattern: str) -> bool:
        """Method (or ``*``) and a spec template (``/channels/{channel_id}/messages``) or glob of the path."""
        return method in ("*", self.method) and (
            pattern == self.template or fnmatch.fnmatchcase(self.path, pattern)
        )

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} -> {self.status}>"


@dataclass(slots=True)
class Reply:
    """What the fake answers: status, JSON body (None: no body), headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: int, message: str, details: list[str] | None = None) -> Reply:
    """Discord's error shape; ``details`` go under ``errors`` (discord.py prints them)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["errors"] = {"request": {"_errors": [{"code": code, "message": d} for d in details]}}
    return Reply(status, body)


def rate_limited(retry_after: float, global_: bool) -> Reply:
    """A 429 as Discord sends it: discord.py retries only with ``Via`` and a JSON body."""
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "fakebucket0000000000000000000000",
        "X-RateLimit-Scope": "global" if global_ else "user",
    }
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global_,
        "code": 0,
    }
    return Reply(429, body, headers)


@dataclass(eq=False)
class InjectedFault:
    """Answer the next ``times`` matching requests with ``reply`` instead of serving them."""

    method: str
    pattern: str
    times: int
    reply: Callable[[], Reply]
    hits: list[RestCall] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """Some answers are still to be given."""
        return len(self.hits) < self.times


Handler = Callable[[RestCall], Awaitable[Reply]]


class RestApi:
    """Answers ``/api/v10/...`` for a ``FakeDiscord``, keeping its state."""

    def __init__(self, fake: FakeDiscord, spec: DiscordSpec, *, validate: bool) -> None:
        self.fake = fake
        self.spec = spec
        self.validate = validate
        self.handlers: dict[tuple[str, str], Handler] = {
            ("GET", "/users/@me"): self._get_me,
            ("GET", "/users/{user_id}"): self._get_user,
            ("POST", "/users/@me/channels"): self._open_dm,
            ("GET", "/oauth2/applications/@me"): self._get_application,
            ("GET", "/gateway"): self._get_gateway,
            ("GET", "/gateway/bot"): self._get_gateway,
            ("GET", "/applications/{application_id}/commands"): self._get_commands,
            ("PUT", "/applications/{application_id}/commands"): self._put_commands,
            ("POST", "/applications/{application_id}/commands"): self._post_command,
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands"): self._get_commands,
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"): self._put_commands,
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands"): self._post_command,
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"): self._callback,
            ("POST", "/webhooks/{webhook_id}/{webhook_token}"): self._followup,
            ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"): self._get_webhook_message,
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            ): self._edit_webhook_message,
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            ): self._delete_webhook_message,
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            ): self._get_webhook_message,
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            ): self._edit_webhook_message,
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            ): self._delete_webhook_message,
            ("GET", "/channels/{channel_id}"): self._get_channel,
            ("POST", "/channels/{channel_id}/typing"): self._typing,
            ("GET", "/channels/{channel_id}/messages"): self._history,
            ("POST", "/channels/{channel_id}/messages"): self._create_message,
            ("GET", "/channels/{channel_id}/messages/{message_id}"): self._get_message,
            ("PATCH", "/channels/{channel_id}/messages/{message_id}"): self._edit_message,
            ("DELETE", "/channels/{channel_id}/messages/{message_id}"): self._delete_message,
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"): self._react,
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
            ): self._unreact,
            ("GET", "/guilds/{guild_id}/members/{user_id}"): self._get_member,
        }
        for method, template in self.handlers:
            spec.operation(method, template)  # the fake must only serve routes Discord has

    # -- plumbing ---------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for every ``/api/v10/...`` request."""
        raw = request.rel_url.raw_path.removeprefix(API_PREFIX)
        path = "/" + "/".join(unquote(s) for s in raw.strip("/").split("/"))
        where = f"{request.method} {path}"
        matched = self.spec.match(request.method, path)
        if matched is None:
            allowed = self.spec.allowed_methods(path)
            problem = f"not in Discord's API (methods for this path: {allowed or 'none'})"
            self.fake.violations.append(f"{where}: {problem}")
            return _response(error(405 if allowed else 404, 0, f"{request.method} {path} {problem}"))
        op, params = matched
        body, uploads, problems = await _read_body(request)
        call = RestCall(
            method=request.method,
            path=path,
            template=op.template,
            params=params,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            json=body,
            uploads=uploads,
            at=asyncio.get_running_loop().time(),
        )
        reply = await self._answer(call, op, problems)
        call.status, call.response = reply.status, reply.body
        if self.validate:
            for problem in self.spec.check_response(op, reply.status, reply.body):
                self.fake.response_violations.append(f"{where} [{op.template}] -> {reply.status}: {problem}")
        self.fake.requests.append(call)
        self.fake.changed()
        return _response(reply)

    async def _answer(self, call: RestCall, op: Operation, problems: list[str]) -> Reply:
        auth = call.headers.get("Authorization")
        if auth is not None and auth != f"Bot {self.fake.token}":
            return error(401, 0, "401: Unauthorized")
        if auth is None and op.needs_auth:
            problems.append("no Authorization header on a route that needs the bot token")
        if self.validate:
            problems += self.spec.check_query(op, call.query)
            problems += self.spec.check_body(op, call.json)
        problems += self._check_semantics(call)
        if problems:
            self.fake.violations.extend(f"{call.method} {call.path} [{op.template}]: {p}" for p in problems)
            return error(400, 50035, "Invalid Form Body", problems)
        for fault in self.fake.faults:
            if fault.pending and call.matches(fault.method, fault.pattern):
                fault.hits.append(call)
                return fault.reply()
        handler = self.handlers.get((call.method, op.template))
        if handler is None:
            self.fake.unhandled.append(f"{call.method} {call.path} [{op.template}]")
            return error(404, 0, f"fake Discord does not implement {call.method} {op.template}")
        return await handler(call)

    def _check_semantics(self, call: RestCall) -> list[str]:
        """What Discord refuses beyond the schema: bot content length, attachments naming no file."""
        body = call.json if isinstance(call.json, dict) else {}
        message = body.get("data") if call.template.endswith("/callback") else body
        if not isinstance(message, dict):
            return []
        problems = []
        content = message.get("content")
        if isinstance(content, str) and len(content) > BOT_CONTENT_LIMIT:
            problems.append(f"$.content: {len(content)} characters; bots may send {BOT_CONTENT_LIMIT}")
        indexes = {u.index for u in call.uploads}
        for i, entry in enumerate(message.get("attachments") or []):
            ref = _int(entry.get("id")) if isinstance(entry, dict) else None
            if ref is not None and ref not in indexes and ref not in self.fake.attachments:
                problems.append(
                    f"$.attachments[{i}].id={ref} names no files[{ref}] part and no existing attachment"
                )
        return problems

    # -- users, application, gateway --------------------------------------------------------------------

    async def _get_me(self, call: RestCall) -> Reply:
        return Reply(200, self.fake.bot_pii_payload())

    async def _get_user(self, call: RestCall) -> Reply:
        user = self.fake.users.get(_int(call.params["user_id"]) or 0)
        return Reply(200, user.payload()) if user else error(404, 10013, "Unknown User")

    async def _open_dm(self, call: RestCall) -> Reply:
        user = self.fake.users.get(_int(call.json.get("recipient_id")) or 0)
        if user is None:
            return error(400, 50033, "Invalid Recipient(s)")
        return Reply(200, self.fake.dm_channel(user).payload())

    async def _get_application(self, call: RestCall) -> Reply:
        return Reply(200, self.fake.application_payload())

    async def _get_gateway(self, call: RestCall) -> Reply:
        body: dict[str, Any] = {"url": self.fake.gateway_url}
        if call.template == "/gateway/bot":
            limit = {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
            body |= {"shards": 1, "session_start_limit": limit}
        return Reply(200, body)

    async def _get_member(self, call: RestCall) -> Reply:
        guild = self.fake.guilds.get(_int(call.params["guild_id"]) or 0)
        if guild is None:
            return error(404, 10004, "Unknown Guild")
        member = guild.members.get(_int(call.params["user_id"]) or 0)
        return Reply(200, member.payload()) if member else error(404, 10007, "Unknown Member")

    # -- application commands ---------------------------------------------------------------------------

    def _scope(self, call: RestCall) -> int | Reply | None:
        if _int(call.params["application_id"]) != self.fake.application_id:
            return error(403, 50001, "Missing Access")
        if "guild_id" not in call.params:
            return None
        guild_id = _int(call.params["guild_id"])
        if guild_id not in self.fake.guilds:
            return error(403, 50001, "Missing Access")
        return guild_id

    async def _get_commands(self, call: RestCall) -> Reply:
        scope = self._scope(call)
        if isinstance(scope, Reply):
            return scope
        return Reply(200, self.fake.commands.get(scope, []))

    async def _put_commands(self, call: RestCall) -> Reply:
        scope = self._scope(call)
        if isinstance(scope, Reply):
            return scope
        sent = call.json or []
        names = [(c.get("type") or 1, c["name"]) for c in sent]
        if len(names) != len(set(names)):
            return error(400, 50035, "Invalid Form Body", ["Application command names must be unique"])
        old = {(c["type"], c["name"]): c for c in self.fake.commands.get(scope, [])}
        self.fake.commands[scope] = [self._command(c, scope, old) for c in sent]
        return Reply(200, self.fake.commands[scope])

    async def _post_command(self, call: RestCall) -> Reply:
        scope = self._scope(call)
        if isinstance(scope, Reply):
            return scope
        commands = self.fake.commands.setdefault(scope, [])
        old = {(c["type"], c["name"]): c for c in commands}
        command = self._command(call.json, scope, old)
        commands[:] = [c for c in commands if c["id"] != command["id"]] + [command]
        return Reply(200, command)

    def _command(
        self, sent: dict[str, Any], scope: int | None, old: dict[tuple[int, str], dict[str, Any]]
    ) -> dict[str, Any]:
        """A registered command as Discord stores it (same id when a command of that name existed)."""
        kind = sent.get("type") or 1
        previous = old.get((kind, sent["name"]))
        permissions = sent.get("default_member_permissions")
        command = {
            **_drop_nulls(sent),
            "id": previous["id"] if previous else str(self.fake.ids.next()),
            "application_id": str(self.fake.application_id),
            "version": str(self.fake.ids.next()),
            "type": kind,
            "description": sent.get("description") or "",
            "default_member_permissions": None if permissions is None else str(permissions),
            "dm_permission": sent.get("dm_permission", True) is not False,
            "nsfw": bool(sent.get("nsfw")),
            "integration_types": sent.get("integration_types") or [0],
            "contexts": sent.get("contexts"),
        }
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    # -- interactions ------------------------------------------------------------------------------------

    async def _callback(self, call: RestCall) -> Reply:
        ix = self.fake.interactions.get(_int(call.params["interaction_id"]) or 0)
        if ix is None or ix.token != call.params["interaction_token"]:
            return error(404, 10062, "Unknown interaction")
        latency = call.at - ix.created_at
        if ix.callbacks:
            ix.refusals.append(f"callback type {call.json['type']} after the interaction was acknowledged")
            return error(400, 40060, "Interaction has already been acknowledged.")
        if latency > self.fake.interaction_timeout:
            ix.refusals.append(f"callback after {latency:.2f} s (limit {self.fake.interaction_timeout} s)")
            return error(404, 10062, "Unknown interaction")
        kind = call.json["type"]
        if kind not in CALLBACKS_FOR.get(ix.type, set()):
            problem = f"callback type {kind} is not valid for interaction type {ix.type}"
            self.fake.violations.append(f"{call.method} {call.path} [{call.template}]: {problem}")
            return error(400, 50035, "Invalid Form Body", [problem])
        too_large = _too_large(call.uploads, ix.attachment_size_limit)
        if too_large:
            return too_large
        data = call.json.get("data") or {}
        message = await self._apply_callback(ix, kind, data, call)
        attachments = tuple(message.attachments) if message is not None and kind in (4, 7) else ()
        ix.callbacks.append(InteractionCallback(kind, call.json.get("data"), latency, attachments))
        self.fake.changed()
        if call.query.get("with_response", "").lower() not in ("1", "true"):
            return Reply(204)
        return Reply(200, _callback_response(ix, kind, message))

    async def _apply_callback(
        self, ix: FakeInteraction, kind: int, data: dict[str, Any], call: RestCall
    ) -> FakeMessage | None:
        if kind in (4, 5):
            loading = LOADING if kind == 5 else 0
            message = self.fake.new_message(
                ix.channel_id,
                self.fake.bot,
                type=20 if ix.type == 2 else 0,
                webhook_id=self.fake.application_id,
                application_id=self.fake.application_id,
                interaction_id=ix.id,
                interaction_metadata=_interaction_metadata(ix),
            )
            self._fill(message, data, call, editing=False)
            message.flags |= loading
            ix.original = message
            await self.fake.emit_message("MESSAGE_CREATE", message)
            return message
        if kind in (6, 7) and ix.message is not None:
            ix.original = ix.message
            if kind == 7:
                self._fill(ix.message, data, call, editing=True)
                await self.fake.emit_message("MESSAGE_UPDATE", ix.message)
            return ix.message
        return None

    def _interaction_for(self, call: RestCall) -> FakeInteraction | Reply:
        """The interaction a webhook route's token belongs to, or Discord's error."""
        token = call.params["webhook_token"]
        ix = next((i for i in self.fake.interactions.values() if i.token == token), None)
        if ix is None or _int(call.params["webhook_id"]) != self.fake.application_id:
            return error(404, 10015, "Unknown Webhook")
        if ix.expired or call.at - ix.created_at > TOKEN_LIFETIME:
            return error(401, 50027, "Invalid Webhook Token")
        if not ix.callbacks:
            # The webhook only exists once the interaction has been answered.
            ix.refusals.append(f"{call.method} {call.template} before the interaction was answered")
            return error(404, 10015, "Unknown Webhook")
        return ix

    async def _followup(self, call: RestCall) -> Reply:
        ix = self._interaction_for(call)
        if isinstance(ix, Reply):
            return ix
        too_large = _too_large(call.uploads, ix.attachment_size_limit)
        if too_large:
            return too_large
        message = self.fake.new_message(
            ix.channel_id,
            self.fake.bot,
            webhook_id=self.fake.application_id,
            application_id=self.fake.application_id,
            interaction_id=ix.id,
            interaction_metadata=_interaction_metadata(ix),
        )
        self._fill(message, call.json or {}, call, editing=False)
        ix.followups.append(message)
        await self.fake.emit_message("MESSAGE_CREATE", message)
        if call.query.get("wait", "").lower() in ("1", "true"):
            return Reply(200, message.payload())
        return Reply(204)

    def _webhook_message(self, call: RestCall) -> tuple[FakeInteraction, FakeMessage] | Reply:
        ix = self._interaction_for(call)
        if isinstance(ix, Reply):
            return ix
        wanted = call.params.get("message_id")
        if wanted is None:
            message = ix.original
        else:
            message = next((m for m in ix.messages if m.id == _int(wanted)), None)
        if message is None or message.deleted:
            return error(404, 10008, "Unknown Message")
        return ix, message

    async def _get_webhook_message(self, call: RestCall) -> Reply:
        found = self._webhook_message(call)
        return found if isinstance(found, Reply) else Reply(200, found[1].payload())

    async def _edit_webhook_message(self, call: RestCall) -> Reply:
        found = self._webhook_message(call)
        if isinstance(found, Reply):
            return found
        ix, message = found
        too_large = _too_large(call.uploads, ix.attachment_size_limit)
        if too_large:
            return too_large
        self._fill(message, call.json or {}, call, editing=True)
        await self.fake.emit_message("MESSAGE_UPDATE", message)
        return Reply(200, message.payload())

    async def _delete_webhook_message(self, call: RestCall) -> Reply:
        found = self._webhook_message(call)
        if isinstance(found, Reply):
            return found
        await self.fake.delete_message(found[1])
        return Reply(204)

    # -- channels and messages --------------------------------------------------------------------------

    def _channel(self, call: RestCall) -> FakeChannel | Reply:
        channel = self.fake.channels.get(_int(call.params["channel_id"]) or 0)
        return channel if channel is not None else error(404, 10003, "Unknown Channel")

    def _message(self, call: RestCall) -> FakeMessage | Reply:
        channel = self._channel(call)
        if isinstance(channel, Reply):
            return channel
        message = self.fake.messages.get(_int(call.params["message_id"]) or 0)
        if message is None or message.deleted or message.channel_id != channel.id:
            return error(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, call: RestCall) -> Reply:
        channel = self._channel(call)
        return channel if isinstance(channel, Reply) else Reply(200, channel.payload())

    async def _typing(self, call: RestCall) -> Reply:
        channel = self._channel(call)
        return channel if isinstance(channel, Reply) else Reply(204)

    async def _history(self, call: RestCall) -> Reply:
        channel = self._channel(call)
        if isinstance(channel, Reply):
            return channel
        messages = sorted(self.fake.messages_in(channel.id), key=lambda m: m.id, reverse=True)
        if (before := _int(call.query.get("before"))) is not None:
            messages = [m for m in messages if m.id < before]
        if (after := _int(call.query.get("after"))) is not None:
            messages = [m for m in messages if m.id > after]
        limit = _int(call.query.get("limit")) or 50
        return Reply(200, [m.payload() for m in messages[:limit]])

    async def _create_message(self, call: RestCall) -> Reply:
        channel = self._channel(call)
        if isinstance(channel, Reply):
            return channel
        too_large = _too_large(call.uploads, self.fake.upload_limit)
        if too_large:
            return too_large
        body = call.json or {}
        reference = body.get("message_reference")
        if reference:
            target = self.fake.messages.get(_int(reference.get("message_id")) or 0)
            if target is None and reference.get("fail_if_not_exists", True):
                return error(400, 50035, "Invalid Form Body", ["Unknown message"])
            reference = {"type": reference.get("type") or 0, "channel_id": str(channel.id)} | (
                {"message_id": str(target.id)} if target else {}
            )
        message = self.fake.new_message(channel.id, self.fake.bot, message_reference=reference or None)
        message.referenced = self.fake.messages.get(_int((reference or {}).get("message_id")) or 0)
        message.type = 19 if reference else 0
        self._fill(message, body, call, editing=False)
        message.flags &= ~EPHEMERAL  # only interaction answers can be ephemeral
        await self.fake.emit_message("MESSAGE_CREATE", message)
        return Reply(200, message.payload())

    async def _get_message(self, call: RestCall) -> Reply:
        message = self._message(call)
        return message if isinstance(message, Reply) else Reply(200, message.payload())

    async def _edit_message(self, call: RestCall) -> Reply:
        message = self._message(call)
        if isinstance(message, Reply):
            return message
        if message.author.id != self.fake.bot.id and set(call.json or {}) - {"flags"}:
            return error(403, 50005, "Cannot edit a message authored by another user")
        too_large = _too_large(call.uploads, self.fake.upload_limit)
        if too_large:
            return too_large
        self._fill(message, call.json or {}, call, editing=True)
        await self.fake.emit_message("MESSAGE_UPDATE", message)
        return Reply(200, message.payload())

    async def _delete_message(self, call: RestCall) -> Reply:
        message = self._message(call)
        if isinstance(message, Reply):
            return message
        await self.fake.delete_message(message)
        return Reply(204)

    async def _react(self, call: RestCall) -> Reply:
        message = self._message(call)
        if isinstance(message, Reply):
            return message
        await self.fake.react(message, call.params["emoji_name"], self.fake.bot)
        return Reply(204)

    async def _unreact(self, call: RestCall) -> Reply:
        message = self._message(call)
        if isinstance(message, Reply):
            return message
        users = message.reactions.get(call.params["emoji_name"], [])
        if self.fake.bot.id in users:
            users.remove(self.fake.bot.id)
        return Reply(204)

    # -- message bodies ---------------------------------------------------------------------------------

    def _fill(self, message: FakeMessage, body: dict[str, Any], call: RestCall, *, editing: bool) -> None:
        """Apply a create or edit body (JSON or ``payload_json``) and its files to ``message``."""
        if editing:
            message.history.append(message.payload())
            message.edit_times.append(call.at)
            if not message.loading:
                message.edited_at = now()
            message.flags &= ~LOADING
        if "content" in body:
            message.content = body["content"] or ""
            people = (self.fake.users.get(i) for i in mentioned_ids(message.content))
            message.mentions = [u for u in people if u is not None]
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = body["components"] or []
        if body.get("flags") is not None:
            sendable = body["flags"] & SENDABLE_FLAGS
            message.flags = (message.flags & EPHEMERAL) | (sendable & ~EPHEMERAL) if editing else sendable
        if body.get("tts"):
            message.tts = True
        if "attachments" in body or call.uploads:
            message.attachments = self._attachments(
                message.attachments, body.get("attachments"), call.uploads
            )

    def _attachments(
        self, existing: list[FakeAttachment], entries: list[dict[str, Any]] | None, uploads: list[Upload]
    ) -> list[FakeAttachment]:
        """The attachments after a request: kept ones by id, new ones from ``files[n]`` by index."""
        files = {u.index: u for u in uploads}
        if entries is None:
            return [*existing, *(self.fake.store_attachment(u.filename, u.data) for u in uploads)]
        kept = {a.id: a for a in existing}
        result = []
        for entry in entries:
            ref = _int(entry.get("id"))
            if ref in kept:
                result.append(kept[ref])
            elif ref is not None and ref in files:
                upload = files[ref]
                name = entry.get("filename") or upload.filename
                result.append(
                    self.fake.store_attachment(name, upload.data, description=entry.get("description"))
                )
        return result


async def _read_body(request: web.Request) -> tuple[Any, list[Upload], list[str]]:
    """The JSON body (or multipart ``payload_json``), the uploaded files, and what was malformed."""
    if not request.body_exists:
        return None, [], []
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request)
    raw = await request.read()
    if not raw:
        return None, [], []
    if request.content_type != "application/json":
        return None, [], [f"unsupported Content-Type {request.content_type!r}"]
    try:
        return json.loads(raw), [], []
    except ValueError as exc:
        return None, [], [f"body is not JSON: {exc}"]


async def _read_multipart(request: web.Request) -> tuple[Any, list[Upload], list[str]]:
    reader = await request.multipart()
    payload: Any = None
    uploads: list[Upload] = []
    problems: list[str] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            problems.append("nested multipart body")
            continue
        name = part.name or ""
        if name == "payload_json":
            try:
                payload = json.loads(await part.text())
            except ValueError as exc:
                problems.append(f"payload_json is not JSON: {exc}")
        elif match := re.fullmatch(r"files\[(\d+)\]", name):
            data = bytes(await part.read())
            uploads.append(Upload(int(match[1]), part.filename or "", data, part.headers.get("Content-Type")))
        else:
            problems.append(f"unexpected multipart field {name!r}")
    return payload, uploads, problems


def _response(reply: Reply) -> web.Response:
    headers = dict(reply.headers)
    if reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    # Exactly "application/json": discord.py reads "...; charset=utf-8" as text and then fails.
    headers["Content-Type"] = "application/json"
    return web.Response(status=reply.status, body=json.dumps(reply.body).encode(), headers=headers)


def _too_large(uploads: list[Upload], limit: int) -> Reply | None:
    big = [u.filename for u in uploads if len(u.data) > limit]
    return error(413, 40005, f"Request entity too large: {', '.join(big)}") if big else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _drop_nulls(node: Any) -> Any:
    """Discord leaves out what a request set to null."""
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node]
    return node


def _interaction_metadata(ix: FakeInteraction) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(ix.id),
        "type": ix.type,
        "user": ix.user.payload(),
        "authorizing_integration_owners": ix.payload["authorizing_integration_owners"],
    }
    if ix.type == 3 and ix.message is not None:
        data["interacted_message_id"] = str(ix.message.id)
    target = (ix.payload.get("data") or {}).get("target_id")
    if ix.type == 2 and target is not None:
        key = "target_message_id" if ix.payload["data"].get("type") == 3 else "target_user"
        data[key] = target if key == "target_message_id" else ix.payload["data"]["resolved"]["users"][target]
    if ix.type == 5 and ix.opened_by is not None:
        data["triggering_interaction_metadata"] = _interaction_metadata(ix.opened_by)
    return data


def _callback_response(ix: FakeInteraction, kind: int, message: FakeMessage | None) -> dict[str, Any]:
    """``InteractionCallbackResponse``: ``resource`` only for types 4 and 7, as the spec has it."""
    interaction: dict[str, Any] = {"id": str(ix.id), "type": ix.type, "channel_id": str(ix.channel_id)}
    if ix.guild_id is not None:
        interaction["guild_id"] = str(ix.guild_id)
    if message is not None:
        interaction |= {
            "response_message_id": str(message.id),
            "response_message_loading": message.loading,
            "response_message_ephemeral": message.ephemeral,
        }
    body: dict[str, Any] = {"interaction": interaction}
    if kind in (4, 7) and message is not None:
        body["resource"] = {"type": kind, "message": message.payload()}
    return body
