"""The bot's side of the Redis queue (``queue.backend: redis``): submit, inspect, cancel, hear back.

GPU workers elsewhere run the jobs (their side is :mod:`generators.streams.take` and
:mod:`generators.streams.relay`); this module imports no torch, so a bot on Redis ships none.

Submitting appends to the owner's stream of the job's model through a script that checks both caps, so
several bot processes share one per-user and one global limit (counted over every model). A job whose
model no live worker serves is refused at once rather than left waiting in silence. Each bot reads its
jobs' events from its own stream through a consumer group and acknowledges them only once the job
service has recorded them, so a restart carries on where it stopped. Result files are fetched from Redis
into the results folder before the job service sees the Finished event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from generators.errors import BadRequest, QueueFull
from generators.health import Health
from generators.models import Catalog, ModelState
from generators.queue import queue_full, user_queue_full
from generators.requests import (
    TERMINAL,
    Cancelled,
    Failed,
    Finished,
    Job,
    Kind,
    MediaFile,
    Progress,
    Queued,
    Started,
)
from generators.results import write_result
from generators.sources import source_path, sources_folder
from generators.streams.codec import decode
from generators.streams.files import file_io
from generators.streams.heartbeat import WorkerStatus, live_workers
from generators.streams.keys import BOT_GROUP, GROUP, Keys
from generators.streams.outage import Backoff, RedisHealth, no_group
from generators.streams.scripts import Scripts
from generators.tasks import stop_tasks

log = logging.getLogger(__name__)

#: How long a cancel request waits for a running job's worker (it only needs a step or two).
CANCEL_FLAG_S = 3600
#: How long after a job moved the bot reads the queue's order again.
REFRESH_DELAY_S = 0.05
#: A restart waits at most this long for the events that arrived while it was away.
SYNC_TIMEOUT_S = 30.0
#: How long a remix's picture may wait on Redis for its job to end, if nothing deletes it before (the
#: job's end does): a backstop against a bot or worker that died holding it.
SOURCE_TTL_S = 3600
#: How many bytes of remix pictures Redis holds at most, by default (a 1024² PNG is up to ~3.7 MB).
SOURCE_BUDGET_BYTES = 256 * 1024 * 1024
#: The share of Redis's ``maxmemory`` kept for plain prompts: remixes are refused before they fill it.
PROMPTS_SHARE = 0.1
EXPIRED_REASON = "the result expired before this bot could fetch it; please ask again"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


def sources_full() -> QueueFull:
    """The refusal of a remix when pictures fill their room on Redis (plain prompts still go in)."""
    return QueueFull(
        "too many pictures are waiting to be remixed right now; try again in a few minutes "
        "(a prompt without a picture still works)"
    )


class NoWorker(BadRequest):
    """No live worker serves the job's model."""


def no_worker(model: str, served: list[str]) -> NoWorker:
    """The refusal of a job for ``model``, naming the models that are served now."""
    now = f"served now: {', '.join(served)}" if served else "no worker is online"
    return NoWorker(
        f"no worker serves the model {model} right now; try again later or pick another with --model ({now})",
        flag="--model",
    )


class QueueSnapshot:
    """The shared queue as last read: what adapters show, and a quick check before the atomic one."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._order: list[Job] = []

    def __len__(self) -> int:
        return len(self._order)

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if the last snapshot shows no room (the submit itself checks again)."""
        if sum(job.owner == owner for job in self._order) >= self.per_user:
            raise user_queue_full(self.per_user)
        if len(self._order) >= self.total:
            raise queue_full(self.total)

    def order(self) -> list[Job]:
        """Waiting jobs, in the order they will run."""
        return list(self._order)

    def update(self, order: list[Job]) -> None:
        """Replace the snapshot."""
        self._order = order


class RedisRunner:
    """The job service's runner when workers take jobs from Redis; use as ``async with``.

    ``instance`` names this bot's events stream: keep it across restarts (the composition root keeps
    it in the store) so a restart reads on where it stopped.
    """

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        *,
        instance: str,
        catalog: Catalog,
        results_dir: Path,
        per_user: int,
        total: int,
        refresh_s: float = 2.0,
        health: Health | None = None,
        source_budget_bytes: int = SOURCE_BUDGET_BYTES,
        source_ttl_s: int = SOURCE_TTL_S,
    ) -> None:
        self.client = client
        #: Redis's part of ``/healthz``: set while a loop here cannot reach it, cleared when it can.
        self.redis = RedisHealth(health)
        self.keys = keys
        self.stream = keys.events(instance)
        self.results_dir = results_dir
        self.refresh_s = refresh_s
        #: Remix pictures on Redis: their bytes at most, and how long one waits at most.
        self.source_budget_bytes = source_budget_bytes
        self.source_ttl_s = source_ttl_s
        self.scripts = Scripts.on(client)
        self.events: asyncio.Queue[tuple[str, Progress]] = asyncio.Queue()
        self._catalog = catalog
        self._queue = QueueSnapshot(per_user=per_user, total=total)
        self._workers: list[WorkerStatus] = []
        self._workers_read_at = -math.inf
        self._positions: dict[str, int] = {}
        self._refresh_lock = asyncio.Lock()
        self._moved = asyncio.Event()
        self._read_upto = (0, 0)
        self._read = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: tuple[list[bytes], list[str]] = ([], [])  # handed over, not yet acknowledged
        self._warned_models: set[str] = set()

    @property
    def queue(self) -> QueueSnapshot:
        """The shared queue as last read."""
        return self._queue

    @property
    def catalog(self) -> Catalog:
        """The models the workers are configured to run."""
        return self._catalog

    def model_states(self) -> list[ModelState]:
        """A model counts as loaded here when a live worker serves it."""
        served = self._served()
        return [ModelState(name, loaded=name in served) for name in self._catalog.names]

    @property
    def workers(self) -> list[WorkerStatus]:
        """Workers whose heartbeat has not expired, as of the last refresh."""
        return list(self._workers)

    @property
    def warming(self) -> bool:
        """Never: a worker warms up before its first heartbeat, so it is served only once warm."""
        return False

    async def __aenter__(self) -> RedisRunner:
        await self._make_group()
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._read_events(), name="memebot-remote-events"),
            asyncio.create_task(self._refresh_often(), name="memebot-remote-refresh"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_tasks(self._tasks)
        # The last batch may be recorded but not yet acknowledged (a CLI run stops as soon as it
        # hears its result): acknowledge it once the service has recorded all of it (it has, if it
        # stopped cleanly), or the next start would read those events again.
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(1):
                await self.events.join()
                await self._acknowledge()

    # -- the runner ---------------------------------------------------------------------------------

    async def submit(self, job: Job, *, force: bool = False) -> None:
        """Append ``job`` to its model's stream of its owner if both caps allow (``force``: always).

        Raises NoWorker when no live worker serves the model, unless ``force`` (a recovered job waits
        for its worker). A remix's picture goes to Redis in the same step, only once the job is in,
        and is refused first when pictures fill their budget or Redis its memory.
        """
        model = self._catalog.model_for(job.request).name
        digest = job.request.picture
        try:
            if not force:
                await self._check_served(model)
            picture = await self._picture(digest) if digest else b""
            if picture and not force:
                await self._check_memory(len(picture))
            answer = await self.scripts.enqueue(
                keys=self._enqueue_keys(job, model, digest),
                args=self._enqueue_args(job, model, picture, force),
            )
        except RedisError as error:
            log.warning("redis: %s", error, extra={"job_id": job.id})
            if digest and "OOM" in str(error):
                raise sources_full() from error
            raise QueueFull("the queue cannot be reached right now; try again in a minute") from error
        if answer == b"user":
            raise user_queue_full(self._queue.per_user)
        if answer == b"total":
            raise queue_full(self._queue.total)
        if answer == b"sources":
            raise sources_full()
        self._moved.set()  # the refresher reads the new order and tells the job its place

    def _enqueue_keys(self, job: Job, model: str, digest: str) -> list[str]:
        keys = self.keys
        return [
            keys.queue(model, job.owner),
            keys.owners(model),
            keys.turn,
            keys.waiting,
            keys.total,
            keys.streams(model),
            keys.job(job.id),
            keys.source(digest),
            keys.sources,
        ]

    def _enqueue_args(self, job: Job, model: str, picture: bytes, force: bool) -> list[Any]:
        return [
            job.owner,
            job.id,
            json.dumps(job.to_dict()),
            self.stream,
            self._queue.per_user,
            self._queue.total,
            int(force),
            GROUP,
            self.keys.wake,
            model,
            job.request.picture if picture else "",
            picture,
            self.source_budget_bytes,
            self.source_ttl_s,
            self.keys.source(""),
        ]

    async def _picture(self, digest: str) -> bytes:
        """A remix's picture from this bot's folder, for the worker that takes the job ("" when gone)."""
        path = source_path(sources_folder(self.results_dir), digest)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # retention took it while the job waited: the worker says it is gone
            log.warning("the picture %s… to remix is gone before queueing", digest[:12])
            return b""

    async def _check_memory(self, size: int) -> None:
        """Refuse a remix whose picture would take Redis near ``maxmemory``: plain prompts keep the rest."""
        memory: dict[str, Any] = await self.client.info("memory")
        limit = int(memory.get("maxmemory") or 0)
        if limit and int(memory.get("used_memory") or 0) + size > limit * (1 - PROMPTS_SHARE):
            raise sources_full()

    async def _check_served(self, model: str) -> None:
        """Raise NoWorker unless a live worker serves ``model``, reading the heartbeats again first."""
        if model in self._served():
            return
        # The list may predate a worker that started since (a bot started before its workers): look
        # again before refusing.
        await self._read_workers()
        served = self._served()
        if model not in served:
            raise no_worker(model, sorted(served))

    def _served(self) -> set[str]:
        return {name for worker in self._workers for name in worker.models}

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting job, or flag a running one for its worker."""
        keys = self.keys
        answer = await self.scripts.cancel(
            keys=[keys.job(job_id), keys.waiting, keys.total, keys.cancel(job_id)],
            args=[job_id, keys.cancels, CANCEL_FLAG_S, keys.owners_root, keys.streams_root],
        )
        if answer == b"removed":
            self.events.put_nowait((job_id, Cancelled()))
            self._moved.set()
        return answer in (b"removed", b"running")

    async def holds(self, job_id: str) -> bool:
        """Whether the job still waits or runs in Redis."""
        return bool(await self.client.exists(self.keys.job(job_id)))

    async def sync(self) -> None:
        """Return once the events already in this bot's stream have been recorded."""
        timeout = SYNC_TIMEOUT_S
        last = await self.client.xrevrange(self.stream, count=1)
        if not last:
            return
        target = _entry_id(last[0][0])
        try:
            async with asyncio.timeout(timeout), self._read:
                await self._read.wait_for(lambda: self._read_upto >= target)
        except TimeoutError:
            log.warning("the events stream was not read up to its end within %.0f s", timeout)

    # -- the queue's state --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the fair order and the live workers; tell this bot's waiting jobs where they are.

        The order merges the models' lanes by turn, as if they were one line; a job's ETA counts only
        the jobs of its model ahead of it and the workers that serve that model.
        """
        async with self._refresh_lock:
            models = self._catalog.names
            rows = await self.scripts.peek(
                keys=[self.keys.owners(model) for model in models],
                args=[self.keys.queue_root, 2 * self._queue.total, *models],
            )
            order, mine = [], set()
            for _, _, _, job_json, reply in rows:
                job = Job.from_dict(json.loads(job_json))
                order.append(job)
                if reply.decode() == self.stream:
                    mine.add(job.id)
            self._queue.update(order)
            if time.monotonic() - self._workers_read_at >= self.refresh_s:  # heartbeats are slower
                await self._read_workers()
            self._tell_positions(order, mine)

    async def _read_workers(self) -> None:
        self._workers = await live_workers(self.client, self.keys)
        self._workers_read_at = time.monotonic()
        self._check_models()

    def _tell_positions(self, order: list[Job], mine: set[str]) -> None:
        ahead: dict[str, int] = {}  # images waiting before this job, by model
        for position, job in enumerate(order):
            model = job.request.model or ""
            if job.id in mine and self._positions.get(job.id) != position:
                self._positions[job.id] = position
                speed = sum(w.images_per_s or 0.0 for w in self._workers if w.serves(model))
                eta = round(ahead.get(model, 0) / speed, 1) if speed else None
                self.events.put_nowait((job.id, Queued(position, eta)))
            ahead[model] = ahead.get(model, 0) + self._images_of(job)
        for job_id in set(self._positions) - mine:
            del self._positions[job_id]

    def _images_of(self, job: Job) -> int:
        if job.request.kind is not Kind.VIDEO:
            return job.request.n
        model = job.request.model
        return self._catalog.get(model).frames if model is not None and model in self._catalog else 16

    def _check_models(self) -> None:
        for worker in self._workers:
            unknown = set(worker.models) - set(self._catalog.names)
            if unknown and worker.name not in self._warned_models:
                self._warned_models.add(worker.name)
                log.warning(
                    "worker %s serves %s, which this bot's models: section does not list",
                    worker.name,
                    ", ".join(sorted(unknown)),
                )

    async def _refresh_often(self) -> None:
        backoff = Backoff()
        wait = self.refresh_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), wait)
                # Let the moment pass: a job that just started or ended is being recorded and
                # delivered, and more jobs often move together; positions can wait a few ms.
                await asyncio.sleep(REFRESH_DELAY_S)
            self._moved.clear()
            try:
                await self.refresh()
            except RedisError as error:
                self.redis.failed("queue", error)
                wait = max(self.refresh_s, backoff.next())
                continue
            self.redis.ok("queue")
            backoff.reset()
            wait = self.refresh_s

    # -- events -------------------------------------------------------------------------------------

    async def _make_group(self) -> None:
        """Create this bot's consumer group (and its stream); one that exists already is kept."""
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists since an earlier start
            await self.client.xgroup_create(self.stream, BOT_GROUP, id="0", mkstream=True)

    async def _read_events(self) -> None:
        """Read this bot's events until cancelled; an outage waits longer each try and heals itself.

        After a restart that lost Redis's data the group is gone (``NOGROUP``): it is made again and
        reading goes on from the stream's start, so events workers send from then on arrive.
        """
        backlog = True  # first our own entries read but not acknowledged before a restart
        backoff = Backoff()
        while True:
            try:
                entries = await self._read_batch(backlog)
                if entries:
                    await self._take_in(entries)  # a failure leaves them unacknowledged: read again
            except RedisError as error:
                self.redis.failed("events", error)
                if no_group(error):
                    with contextlib.suppress(RedisError):  # still down: the next try tells
                        await self._make_group()
                    backlog = True
                    continue
                await asyncio.sleep(backoff.next())
                continue
            self.redis.ok("events")
            backoff.reset()
            backlog = backlog and bool(entries)

    async def _read_batch(self, backlog: bool) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = await self.client.xreadgroup(
            BOT_GROUP,
            "bot",
            {self.stream: "0" if backlog else ">"},
            count=100,
            block=None if backlog else 1000,
        )
        return list(reply[0][1]) if reply else []

    async def _take_in(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Hand a batch of events to the service and acknowledge them once it has recorded them all."""
        fetched: list[str] = []
        for entry_id, fields in entries:
            try:
                job_id, event = decode(fields)
            except ValueError as error:
                log.warning("skipping event %s: %s", entry_id.decode(), error)
                continue
            if isinstance(event, Finished):
                names = [f.path.name for f in event.result.files]
                event = await self._fetch(job_id, event)
                fetched += [self.keys.result(job_id, name) for name in names]
            if isinstance(event, (Started, *TERMINAL)):
                self._moved.set()
            self.events.put_nowait((job_id, event))
        self._in_flight = ([entry_id for entry_id, _ in entries], fetched)
        await self.events.join()
        await self._acknowledge()

    async def _acknowledge(self) -> None:
        """Drop the entries in flight, now recorded by the service, and the result keys read."""
        ids, fetched = self._in_flight
        if not ids:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, BOT_GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            if fetched:
                pipe.delete(*fetched)
            await pipe.execute()
        self._in_flight = ([], [])
        async with self._read:
            self._read_upto = _entry_id(ids[-1])
            self._read.notify_all()

    async def _fetch(self, job_id: str, event: Finished) -> Finished | Failed:
        """Write the result's files from Redis into the results folder; the result then points there."""
        files = []
        for file in event.result.files:
            name = file.path.name
            if not (_SAFE_NAME.match(job_id) and _SAFE_NAME.match(name)):
                log.warning("refusing result file %r", name, extra={"job_id": job_id})
                return Failed(EXPIRED_REASON)
            data: bytes | None = cast(bytes | None, await self.client.get(self.keys.result(job_id, name)))
            target = self.results_dir / job_id / name
            if data is None and not target.is_file():  # a file already there: read before a restart
                log.warning("result file %s is gone from redis", name, extra={"job_id": job_id})
                return Failed(EXPIRED_REASON)
            if data is not None:
                write = functools.partial(write_result, self.results_dir, job_id, name, data)
                target = await file_io(len(data), write)
            files.append(MediaFile(target, file.mime, file.size))
        return Finished(dataclasses.replace(event.result, files=tuple(files)))


def _entry_id(raw: Any) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a comparable pair."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
