"""Workers announce themselves: a hash per worker that expires unless the worker renews it.

A sorted set of names (scored by when each announcement expires) lists them, so reading the live
workers costs one range and one pipeline, not a scan of the whole keyspace.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from generators.streams.keys import Keys


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker says about itself: the models it serves, how busy and fast, and when it last said so."""

    name: str
    models: tuple[str, ...]
    device: str
    busy: int = 0
    done: int = 0
    images_per_s: float | None = None
    seen_at: float = 0.0

    def serves(self, model: str) -> bool:
        """Whether this worker takes jobs of ``model``."""
        return model in self.models

    def to_fields(self) -> dict[str, str]:
        """Hash fields (see :meth:`from_fields`): the models comma-joined; an unknown speed is left out."""
        values = dataclasses.asdict(self) | {"models": ",".join(self.models)}
        return {name: str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> WorkerStatus:
        """Rebuild a status written by :meth:`to_fields` (or by an older worker, which wrote ``model``)."""
        text = {_text(key): _text(value) for key, value in fields.items()}
        speed = text.get("images_per_s")
        models = text.get("models", text.get("model", ""))
        return cls(
            name=text["name"],
            models=tuple(name for name in models.split(",") if name),
            device=text["device"],
            busy=int(text.get("busy", 0)),
            done=int(text.get("done", 0)),
            images_per_s=None if speed is None else float(speed),
            seen_at=float(text.get("seen_at", 0.0)),
        )


async def announce(client: Redis, keys: Keys, status: WorkerStatus, ttl_s: float) -> None:
    """Write ``status``, to expire after ``ttl_s`` unless announced again."""
    key = keys.worker(status.name)
    now = time.time()
    fields = dataclasses.replace(status, seen_at=now).to_fields()
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)  # a field from an older announcement (a speed) must not linger
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        pipe.pexpire(key, max(1, int(ttl_s * 1000)))
        pipe.zadd(keys.workers, {status.name: now + ttl_s})
        await pipe.execute()


async def withdraw(client: Redis, keys: Keys, name: str) -> None:
    """Remove a stopping worker's announcement at once."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.worker(name))
        pipe.zrem(keys.workers, name)
        await pipe.execute()


async def live_workers(client: Redis, keys: Keys) -> list[WorkerStatus]:
    """Every worker whose announcement has not expired, by name."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(keys.workers, "-inf", time.time())  # those that stopped announcing
        pipe.zrange(keys.workers, 0, -1)
        _, names = await pipe.execute()
    if not names:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for name in sorted(names):
            pipe.hgetall(keys.worker(_text(name)))
        found = await pipe.execute()
    return [WorkerStatus.from_fields(fields) for fields in found if fields]  # empty: expired meanwhile


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
