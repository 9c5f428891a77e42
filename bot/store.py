"""The job store (SQLite through aiosqlite): every job, its reply address, state, timings and result.

Each state change is one conditional UPDATE, committed before the caller acts on it, so a restart
resumes from the last written state and two processes racing to deliver cannot both win.
"""

from __future__ import annotations

import contextlib
import enum
import json
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from generators.requests import GenerationRequest, GenerationResult, Job


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"


S = JobStatus
#: For each status, the statuses a job may come from.
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING}),  # requeued after a restart or a lost worker
    S.RUNNING: frozenset({S.QUEUED}),
    S.DONE: frozenset({S.RUNNING}),
    S.FAILED: frozenset({S.QUEUED, S.RUNNING}),
    S.CANCELLED: frozenset({S.QUEUED, S.RUNNING}),
    S.DELIVERED: frozenset({S.DONE, S.FAILED, S.CANCELLED}),
    S.UNDELIVERABLE: frozenset({S.DONE, S.FAILED, S.CANCELLED}),
}
FINISHED = (S.DONE, S.FAILED, S.CANCELLED)
#: Statuses a job never leaves by itself: it may be deleted (retention, or its owner's 🗑).
ENDED = (*FINISHED, S.DELIVERED, S.UNDELIVERABLE)
#: The kv namespace remembering deleted jobs, so their pages say "gone" rather than "never was".
DELETED = "deleted"
#: The column each status stamps with the time of the move (a requeue keeps the first start).
TIMESTAMP_OF: dict[JobStatus, str] = {
    S.RUNNING: "started_at",
    **dict.fromkeys(FINISHED, "finished_at"),
    **dict.fromkeys((S.DELIVERED, S.UNDELIVERABLE), "delivered_at"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    platform TEXT NOT NULL,
    reply_to TEXT NOT NULL,
    request TEXT NOT NULL,
    budget_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    delivered_at REAL,
    result TEXT,
    error TEXT,
    delivery_ref TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""
_VERSION = 1


class InvalidTransition(ValueError):
    """A state change the lifecycle does not allow (or another process got there first)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored job."""

    job: Job
    platform: str
    reply_to: dict[str, Any]
    status: JobStatus
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    delivered_at: float | None = None
    result: GenerationResult | None = None
    error: str | None = None
    delivery_ref: str | None = None
    attempts: int = 0

    @property
    def id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def owner(self) -> str:
        """Who asked, e.g. ``discord:1234``."""
        return self.job.owner


class Store:
    """Jobs in one SQLite file; open with ``async with Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[Store]:
        """Open (and create) the store; closed on exit."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        async with aiosqlite.connect(path) as db:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
            async with db.execute("SELECT version FROM schema_version") as cursor:
                row = await cursor.fetchone()
            if row is None:
                await db.execute("INSERT INTO schema_version VALUES (?)", (_VERSION,))
            elif row[0] != _VERSION:  # a file written by another memebot version: refuse to guess
                raise RuntimeError(f"{path}: store schema version {row[0]}, this memebot reads {_VERSION}")
            await db.commit()
            yield cls(db)

    async def add(self, job: Job, *, platform: str, reply_to: Mapping[str, Any]) -> JobRecord:
        """Record a new QUEUED job; committed before this returns."""
        record = JobRecord(job, platform, dict(reply_to), S.QUEUED, time.time())
        await self._db.execute(
            "INSERT INTO jobs (id, owner, platform, reply_to, request, budget_bytes, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.owner,
                platform,
                json.dumps(record.reply_to),
                json.dumps(job.request.to_dict()),
                job.budget_bytes,
                S.QUEUED.value,
                record.created_at,
            ),
        )
        await self._db.commit()
        return record

    async def forget(self, job_id: str) -> None:
        """Delete a QUEUED job the queue refused after it was written (another bot took the last place)."""
        await self._db.execute("DELETE FROM jobs WHERE id = ? AND status = ?", (job_id, S.QUEUED))
        await self._db.commit()

    async def delete(self, job_id: str) -> bool:
        """Delete an ended job's row (its files are the caller's) and remember it was deleted."""
        marks = ", ".join("?" * len(ENDED))
        cursor = await self._db.execute(
            f"DELETE FROM jobs WHERE id = ? AND status IN ({marks})",  # noqa: S608
            (job_id, *ENDED),
        )
        if cursor.rowcount:
            await self._db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (DELETED, job_id, "true", time.time())
            )
        await self._db.commit()
        return cursor.rowcount == 1

    async def was_deleted(self, job_id: str) -> bool:
        """Whether a job with this id was deleted (and its tombstone not yet pruned)."""
        return await self.kv_get(DELETED, job_id) is not None

    async def expired(self, before: float, limit: int = 100) -> list[JobRecord]:
        """Ended jobs whose last change is older than ``before`` (delivered or not), oldest first."""
        marks = ", ".join("?" * len(ENDED))
        return await self._select(
            f"WHERE status IN ({marks}) AND COALESCE(delivered_at, finished_at, created_at) < ?"
            " ORDER BY created_at, rowid LIMIT ?",
            (*ENDED, before, limit),
        )

    async def drop_tokens(self, before: float) -> int:
        """Remove the ``token`` of reply addresses of jobs created before ``before``; how many had one."""
        cursor = await self._db.execute(
            "UPDATE jobs SET reply_to = json_remove(reply_to, '$.token')"
            " WHERE created_at < ? AND json_type(reply_to, '$.token') IS NOT NULL",
            (before,),
        )
        await self._db.commit()
        return cursor.rowcount

    async def kv_prune(self, namespace: str, before: float) -> int:
        """Delete the records of ``namespace`` last written before ``before``; how many."""
        cursor = await self._db.execute(
            "DELETE FROM kv WHERE namespace = ? AND updated_at < ?", (namespace, before)
        )
        await self._db.commit()
        return cursor.rowcount

    async def get(self, job_id: str) -> JobRecord | None:
        """One job, or None."""
        rows = await self._select("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    async def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        error: str | None = None,
        result: GenerationResult | None = None,
        delivery_ref: str | None = None,
    ) -> JobRecord:
        """Move a job to ``to`` if the lifecycle allows it from its current status, atomically."""
        allowed = sorted(s.value for s in ALLOWED_FROM[to])
        sets = ["status = ?", f"{TIMESTAMP_OF[to]} = ?"] if to in TIMESTAMP_OF else ["status = ?"]
        values: list[Any] = [to.value, time.time()] if to in TIMESTAMP_OF else [to.value]
        if to is S.RUNNING:
            sets.append("attempts = attempts + 1")
        for column, value in (
            ("error", error),
            ("result", None if result is None else json.dumps(result.to_dict())),
            ("delivery_ref", delivery_ref),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                values.append(value)
        cursor = await self._db.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status IN ({', '.join('?' * len(allowed))})",  # noqa: S608
            (*values, job_id, *allowed),
        )
        await self._db.commit()
        if cursor.rowcount == 0:
            current = await self.get(job_id)
            if current is None:
                raise KeyError(job_id)
            raise InvalidTransition(f"job {job_id} cannot go from {current.status.value} to {to.value}")
        record = await self.get(job_id)
        assert record is not None  # noqa: S101 - just updated
        return record

    async def update_reply_to(self, job_id: str, reply_to: Mapping[str, Any]) -> JobRecord:
        """Merge ``reply_to`` into the job's reply address (e.g. the progress message's id).

        An RFC 7396 merge patch: keys are replaced, nested dicts merged, a ``None`` value removes its key.
        """
        # Merged inside SQLite in one statement, so concurrent updates of the same job never lose a key.
        cursor = await self._db.execute(
            "UPDATE jobs SET reply_to = json_patch(reply_to, ?) WHERE id = ?",
            (json.dumps(dict(reply_to)), job_id),
        )
        await self._db.commit()
        record = await self.get(job_id) if cursor.rowcount else None
        if record is None:
            raise KeyError(job_id)
        return record

    async def unfinished(self) -> list[JobRecord]:
        """QUEUED and RUNNING jobs, oldest first."""
        return await self._select("WHERE status IN (?, ?) ORDER BY created_at, rowid", (S.QUEUED, S.RUNNING))

    async def undelivered(self) -> list[JobRecord]:
        """Finished jobs whose owner has not been told yet, oldest first."""
        marks = ", ".join("?" * len(FINISHED))
        return await self._select(f"WHERE status IN ({marks}) ORDER BY created_at, rowid", FINISHED)

    async def jobs_of(
        self, owner: str, statuses: Collection[JobStatus] | None = None, limit: int = 50
    ) -> list[JobRecord]:
        """An owner's jobs (in ``statuses`` if given), newest first."""
        wanted = tuple(JobStatus if statuses is None else statuses)  # an empty collection matches nothing
        marks = ", ".join("?" * len(wanted))
        return await self._select(
            f"WHERE owner = ? AND status IN ({marks}) ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (owner, *wanted, limit),
        )

    async def recent(self, limit: int = 50) -> list[JobRecord]:
        """The newest jobs."""
        return await self._select("ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))

    async def stats(self) -> dict[str, int]:
        """How many jobs are in each status."""
        async with self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status") as cursor:
            return {row[0]: row[1] for row in await cursor.fetchall()}

    # -- small records adapters keep (per-server settings, handled Reddit items, hall of fame) --

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        """The JSON value stored under ``namespace``/``key``, or None."""
        async with self._db.execute(
            "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else json.loads(row[0])

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) under ``namespace``/``key``; committed before returning."""
        await self._db.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE"
            " SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, key, json.dumps(value), time.time()),
        )
        await self._db.commit()

    async def kv_add(self, namespace: str, key: str, value: Any) -> bool:
        """Store ``value`` only if the key is new; True if this call stored it (an atomic "once")."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO kv VALUES (?, ?, ?, ?)", (namespace, key, json.dumps(value), time.time())
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def kv_items(self, namespace: str) -> dict[str, Any]:
        """Every key and value in ``namespace``."""
        async with self._db.execute("SELECT key, value FROM kv WHERE namespace = ?", (namespace,)) as cur:
            return {row[0]: json.loads(row[1]) for row in await cur.fetchall()}

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[JobRecord]:
        async with self._db.execute(f"SELECT * FROM jobs {where}", params) as cursor:  # noqa: S608
            return [_record(row) for row in await cursor.fetchall()]


def remove_files(result: GenerationResult) -> int:
    """Delete a result's files (blocking: run it in a thread); the bytes freed.

    Only files in the job's own folder (``results_dir/<job id>/``) are touched, whatever a store says.
    """
    freed = 0
    folders = set()
    for file in result.files:
        if file.path.parent.name != result.job_id:
            continue
        with contextlib.suppress(FileNotFoundError):
            freed += file.path.stat().st_size
            file.path.unlink()
        folders.add(file.path.parent)
    for folder in folders:
        with contextlib.suppress(OSError):  # gone already, or holds something else: leave it
            folder.rmdir()
    return freed


def _record(row: aiosqlite.Row) -> JobRecord:
    request = GenerationRequest.from_dict(json.loads(row["request"]))
    return JobRecord(
        job=Job(row["id"], row["owner"], request, row["budget_bytes"]),
        platform=row["platform"],
        reply_to=json.loads(row["reply_to"]),
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        delivered_at=row["delivered_at"],
        result=None if row["result"] is None else GenerationResult.from_dict(json.loads(row["result"])),
        error=row["error"],
        delivery_ref=row["delivery_ref"],
        attempts=row["attempts"],
    )
