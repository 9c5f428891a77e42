"""Workers announce themselves: a hash per worker that expires unless the worker renews it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from generators.streams.keys import Keys


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker says about itself: what it runs, how busy and how fast, and when it last said so."""

    name: str
    model: str
    device: str
    busy: int = 0
    done: int = 0
    images_per_s: float | None = None
    seen_at: float = 0.0

    def to_fields(self) -> dict[str, str]:
        """Hash fields (see :meth:`from_fields`); an unknown speed is left out."""
        values = dataclasses.asdict(self)
        return {name: str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> WorkerStatus:
        """Rebuild a status written by :meth:`to_fields`."""
        text = {_text(key): _text(value) for key, value in fields.items()}
        speed = text.get("images_per_s")
        return cls(
            name=text["name"],
            model=text["model"],
            device=text["device"],
            busy=int(text.get("busy", 0)),
            done=int(text.get("done", 0)),
            images_per_s=None if speed is None else float(speed),
            seen_at=float(text.get("seen_at", 0.0)),
        )


async def announce(client: Redis, keys: Keys, status: WorkerStatus, ttl_s: float) -> None:
    """Write ``status``, to expire after ``ttl_s`` unless announced again."""
    key = keys.worker(status.name)
    fields = dataclasses.replace(status, seen_at=time.time()).to_fields()
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)  # a field from an older announcement (a speed) must not linger
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        pipe.pexpire(key, max(1, int(ttl_s * 1000)))
        await pipe.execute()


async def withdraw(client: Redis, keys: Keys, name: str) -> None:
    """Remove a stopping worker's announcement at once."""
    await client.delete(keys.worker(name))


async def live_workers(client: Redis, keys: Keys) -> list[WorkerStatus]:
    """Every worker whose announcement has not expired, by name."""
    names = [key async for key in client.scan_iter(match=keys.worker_pattern, count=100)]
    statuses = []
    for key in sorted(names):
        fields = await client.hgetall(key)
        if fields:  # expired between the scan and the read
            statuses.append(WorkerStatus.from_fields(fields))
    return statuses


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
