"""The fake Discord gateway: HELLO, heartbeats, IDENTIFY/READY, RESUME with replay, server-side closes."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from aiohttp import WSMsgType, web

#: Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class Op(IntEnum):
    """Gateway opcodes."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class GatewayWorld(Protocol):
    """What the gateway asks the rest of the fake for."""

    def ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        """READY's data for a new session."""
        ...

    def guild_create_payloads(self) -> list[dict[str, Any]]:
        """GUILD_CREATE data for every guild the bot is in."""
        ...

    def member_payloads(self, guild_id: int) -> list[dict[str, Any]]:
        """Members of a guild, for GUILD_MEMBERS_CHUNK."""
        ...

    def changed(self) -> None:
        """Wake whoever waits on the fake's state."""
        ...


@dataclass(eq=False)
class GatewaySession:
    """One identified session: survives reconnects that RESUME, keeps every event for replay."""

    id: str
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)


@dataclass(eq=False)
class GatewayConnection:
    """One websocket the client opened."""

    index: int
    path: str
    opened_at: float
    ws: web.WebSocketResponse = field(repr=False)
    request: web.Request = field(repr=False)
    mode: str | None = None
    session: GatewaySession | None = None
    #: READY or RESUMED went out on this connection.
    ready: bool = False
    closed_at: float | None = None
    close_code: int | None = None
    #: Ended on purpose (the fake's close, op 7, op 9, shutdown; ``run_client`` stopping the client).
    planned: bool = False
    heartbeats: list[float] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Still connected."""
        return self.closed_at is None and not self.ws.closed

    def heartbeat_gaps(self, until: float) -> list[float]:
        """Seconds between heartbeats, plus, while open, since the last one (a stalled client shows)."""
        beats = [self.opened_at, *self.heartbeats] if not self.heartbeats else self.heartbeats
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        if self.open:
            gaps.append(until - beats[-1])
        return gaps


class Gateway:
    """Serves the gateway websocket (initial URL and READY's ``resume_gateway_url`` alike)."""

    def __init__(
        self, world: GatewayWorld, *, token: str, heartbeat_interval: float, allowed_intents: int
    ) -> None:
        self._world = world
        self._token = token
        self.heartbeat_interval = heartbeat_interval
        self.allowed_intents = allowed_intents
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.session: GatewaySession | None = None
        #: Things the client did that Discord would refuse (binary frames, unknown ops...).
        self.problems: list[str] = []

    @property
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The websocket handler: one client connection from HELLO to close."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(len(self.connections), request.path_qs, self._now, ws, request)
        self.connections.append(conn)
        self._world.changed()
        try:
            hello = {"heartbeat_interval": round(self.heartbeat_interval * 1000), "_trace": ["fake-gateway"]}
            await self._send(conn, {"op": Op.HELLO, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(conn, json.loads(msg.data))
                else:
                    self.problems.append(f"connection {conn.index}: unexpected {msg.type.name} frame")
        finally:
            conn.closed_at = self._now
            conn.close_code = ws.close_code
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            self._world.changed()
        return ws

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        conn.received.append(frame)
        op = frame.get("op")
        data: Any = frame.get("d")
        if op == Op.HEARTBEAT:
            conn.heartbeats.append(self._now)
            await self._send(conn, {"op": Op.HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == Op.IDENTIFY:
            await self._identify(conn, data)
        elif op == Op.RESUME:
            await self._resume(conn, data)
        elif op == Op.REQUEST_GUILD_MEMBERS:
            await self._members_chunk(conn, data)
        elif op not in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            self.problems.append(f"connection {conn.index}: unknown op {op}")
        self._world.changed()

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await self._refuse(conn, 4005, "Already authenticated.")
            return
        if data.get("token") != self._token:
            await self._refuse(conn, 4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await self._refuse(conn, 4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
            # Real Discord refuses privileged intents that are not switched on in the developer portal.
            await self._refuse(conn, 4014, "Disallowed intent(s).")
            return
        session = GatewaySession(uuid.uuid4().hex, intents, data)
        self.sessions[session.id] = self.session = session
        conn.mode, conn.session, session.connection = "identify", session, conn
        await self.dispatch("READY", self._world.ready_payload(session), session=session)
        for guild in self._world.guild_create_payloads():
            await self.dispatch("GUILD_CREATE", guild, session=session)
        conn.ready = True

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if data.get("token") != self._token:
            await self._refuse(conn, 4004, "Authentication failed.")
            return
        session = self.sessions.get(data.get("session_id", ""))
        if session is None:
            conn.planned = True
            await self._send(conn, {"op": Op.INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        conn.mode, conn.session = "resume", session
        async with session.lock:
            session.connection = conn
            seen = data.get("seq") or 0
            for frame in session.log:
                if frame["s"] > seen:
                    await self._send(conn, frame)
        await self.dispatch("RESUMED", {"_trace": ["fake-gateway"]}, session=session)
        conn.ready = True

    async def _refuse(self, conn: GatewayConnection, code: int, reason: str) -> None:
        """Close as Discord does on a bad IDENTIFY/RESUME, and remember why."""
        self.problems.append(f"connection {conn.index} refused: {code} {reason}")
        await self.close(code, reason, conn)

    async def _members_chunk(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        guild_id = int(data["guild_id"])
        chunk = {
            "guild_id": str(guild_id),
            "members": self._world.member_payloads(guild_id),
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk, session=conn.session)

    async def dispatch(
        self, event: str, data: dict[str, Any], *, session: GatewaySession | None = None
    ) -> int:
        """Send an event to the session (kept for replay when it is between connections); its seq."""
        session = session or self.session
        if session is None:
            raise RuntimeError(f"cannot dispatch {event}: no client has identified with the fake gateway yet")
        async with session.lock:
            session.seq += 1
            frame = {"op": Op.DISPATCH, "t": event, "s": session.seq, "d": data}
            session.log.append(frame)
            conn = session.connection
            if conn is not None and conn.open:
                await self._send(conn, frame)
        self._world.changed()
        return session.seq

    async def _send(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        try:
            await conn.ws.send_str(json.dumps(frame))
        except ConnectionError:
            # Closing under us: a RESUME replays what this connection missed.
            pass

    def current(self) -> GatewayConnection | None:
        """The connection of the current session, if it is open."""
        conn = self.session.connection if self.session else None
        return conn if conn is not None and conn.open else None

    async def close(self, code: int = 4000, reason: str = "", conn: GatewayConnection | None = None) -> None:
        """Close a connection (default: the current one) from the server side."""
        conn = conn or self.current()
        if conn is None:
            raise RuntimeError("no open gateway connection to close")
        conn.planned = True
        await conn.ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        """Drop the current connection's TCP stream without a close frame (a network failure)."""
        conn = self.current()
        if conn is None or conn.request.transport is None:
            raise RuntimeError("no open gateway connection to abort")
        conn.planned = True
        conn.request.transport.abort()

    async def send_op(self, op: Op, data: Any = None) -> None:
        """Send a non-dispatch op (RECONNECT, INVALID_SESSION, HEARTBEAT) on the current connection."""
        conn = self.current()
        if conn is None:
            raise RuntimeError(f"no open gateway connection to send {op.name} on")
        if op in (Op.RECONNECT, Op.INVALID_SESSION):
            conn.planned = True
        if op == Op.INVALID_SESSION and not data and conn.session is not None:
            self.sessions.pop(conn.session.id, None)
        await self._send(conn, {"op": op, "d": data, "s": None, "t": None})

    async def shutdown(self) -> None:
        """Close every open connection (the fake is going away)."""
        for conn in self.connections:
            if conn.open:
                conn.planned = True
                await conn.ws.close(code=1001, message=b"fake Discord shutting down")

    def heartbeat_gaps(self) -> list[float]:
        """Gaps between heartbeats over all connections (see ``GatewayConnection.heartbeat_gaps``)."""
        until = self._now
        return [gap for conn in self.connections for gap in conn.heartbeat_gaps(until)]

    @property
    def disconnects(self) -> list[GatewayConnection]:
        """Connections that ended without the fake asking for it (the client closed or died)."""
        return [c for c in self.connections if not c.open and not c.planned]
