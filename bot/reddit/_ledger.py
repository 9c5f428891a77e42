"""The handled-items ledger: one record per Reddit comment the bot took up, kept in the store.

An item is recorded (atomically, once) before anything is done about it, each reply attempt is counted
before it is made, and the reply's id is written once it landed. After a crash the ledger says what is
left to do, and whether a reply may already be on Reddit (then the bot looks before posting again).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot.store import Store

NAMESPACE = "reddit.items"


class State(enum.StrEnum):
    """Where an item is."""

    IGNORED = "ignored"  # final: skipped on purpose (``reason``)
    ACCEPTED = "accepted"  # its job is being submitted
    QUEUED = "queued"  # its job (``job_id``) runs; the reply follows when it ends
    REFUSED = "refused"  # a refusal (``text``) is owed
    REPLIED = "replied"  # final: ``reply_id`` is the bot's comment
    UNDELIVERABLE = "undeliverable"  # final: Reddit takes no reply there (``reason``)


FINAL = (State.IGNORED, State.REPLIED, State.UNDELIVERABLE)


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger knows about one item."""

    state: State
    author: str
    subreddit: str
    command: str
    created_utc: float
    job_id: str | None = None
    picture: str | None = None  # the URL of the picture under the comment: the job remixes it
    text: str | None = None
    reason: str | None = None
    attempts: int = 0  # reply attempts begun: more than 0 means a reply may be on Reddit already
    reply_id: str | None = None
    post_id: str | None = None
    post_attempts: int = 0

    def to(self, state: State, **changes: Any) -> Entry:
        """This entry in ``state``, with ``changes``."""
        return replace(self, state=state, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Rebuild an entry written by :meth:`to_dict`."""
        return cls(**{**data, "state": State(data["state"])})


class Ledger:
    """The items one Reddit account has taken up, by fullname (``t1_...``)."""

    def __init__(self, store: Store, namespace: str = NAMESPACE) -> None:
        self._store = store
        self._namespace = namespace
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # with how many hold or wait

    @contextlib.asynccontextmanager
    async def holding(self, fullname: str) -> AsyncIterator[None]:
        """One thing happens to an item at a time (intake, a recovery, a delivery)."""
        lock, users = self._locks.get(fullname, (asyncio.Lock(), 0))
        self._locks[fullname] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[fullname]
            if users == 1:
                del self._locks[fullname]  # nobody else waits: don't keep a lock per item ever seen
            else:
                self._locks[fullname] = (lock, users - 1)

    async def get(self, fullname: str) -> Entry | None:
        """The item's entry, or None if it was never taken up."""
        data = await self._store.kv_get(self._namespace, fullname)
        return None if data is None else Entry.from_dict(data)

    async def claim(self, fullname: str, entry: Entry) -> bool:
        """Record a new item; False if it was already recorded (by this or another poll)."""
        return await self._store.kv_add(self._namespace, fullname, entry.to_dict())

    async def put(self, fullname: str, entry: Entry) -> Entry:
        """Record the item's new state; committed before this returns."""
        await self._store.kv_set(self._namespace, fullname, entry.to_dict())
        return entry

    async def unfinished(self) -> dict[str, Entry]:
        """Every item whose story has not ended (a previous run stopped in the middle)."""
        items = await self._store.kv_items(self._namespace)
        entries = {key: Entry.from_dict(value) for key, value in items.items()}
        return {key: entry for key, entry in entries.items() if entry.state not in FINAL}
