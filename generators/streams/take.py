"""A GPU worker's side of the Redis queue: fair batches in, acknowledgements out.

A worker serves some models (named when its queue is made) and sees only their jobs. ``take`` looks at
those waiting in their fair order (one per owner and model per round, across every bot; the models'
lanes interleave by turn), picks a batch with :func:`~generators.queue.pick` as
:class:`~generators.queue.InProcessQueue` does, so a loaded model may go first within ``switch_after``,
and claims exactly those through the consumer group; if another worker claimed first it looks again.
The overtakes are counted by each worker for its own batches: with several workers on the same models,
the bound holds per worker. Jobs left pending by a worker that died are taken over after
``claim_idle_s`` by a worker of the same model; one delivered more than ``max_deliveries`` times goes to
the dead-letter stream instead, and its owner hears it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, ResponseError

from generators.health import Health
from generators.queue import BatchKey, JobSize, Ready, overtakes, pick
from generators.requests import Cancelled, Failed, Job
from generators.sources import prune, source_path, write_source
from generators.streams.codec import Fields, encode
from generators.streams.files import file_io
from generators.streams.keys import GROUP, Keys
from generators.streams.outage import Backoff, RedisHealth, no_group
from generators.streams.scripts import Scripts
from generators.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Events kept per bot stream while that bot is away (older ones are trimmed).
EVENTS_MAXLEN = 10_000
DEAD_REASON = "this job stopped its worker several times, so it was set aside for the admins to look at"
#: How many waiting jobs a worker looks at to fill one batch.
PEEK_DEPTH = 64
#: The longest a worker's listener waits for a message before it looks again.
LISTEN_S = 5.0
#: A worker's copies of remix pictures are deleted this long after their last use.
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Held:
    """A job this worker took: its model, its entry, and the stream its events go to."""

    job: Job
    model: str
    stream: str
    entry: str
    reply: str


@dataclass(frozen=True, slots=True)
class _Waiting:
    model: str
    owner: str
    entry: str
    job: Job


def choose(
    waiting: Sequence[_Waiting],
    key: BatchKey,
    size: JobSize,
    max_images: int,
    *,
    ready: Ready | None = None,
    overtaken: Mapping[str, int] | None = None,
    switch_after: int | None = None,
) -> list[_Waiting]:
    """The batch :func:`~generators.queue.pick` makes of ``waiting``, keeping each lane's jobs in order.

    A lane (one owner's jobs of one model) is a stream read in order, so a job whose lane has an earlier
    job left out cannot be claimed: such jobs are set aside and the batch is picked again without them.
    """
    candidates = list(waiting)
    while True:
        order = [w.job for w in candidates]
        picked = pick(
            order, key, size, max_images, ready=ready, overtaken=overtaken, switch_after=switch_after
        )
        batch = {job.id for job in picked}
        blocked = _out_of_turn(candidates, batch)
        if not blocked:
            return [w for w in candidates if w.job.id in batch]
        candidates = [w for w in candidates if w.job.id not in blocked]


def _out_of_turn(waiting: Sequence[_Waiting], batch: Collection[str]) -> set[str]:
    """The jobs behind a job of their lane that is not in ``batch``."""
    left: set[tuple[str, str]] = set()
    blocked = set()
    for w in waiting:
        lane = (w.model, w.owner)
        if lane in left:
            blocked.add(w.job.id)
        elif w.job.id not in batch:
            left.add(lane)
    return blocked


class RedisQueue:
    """The :class:`~generators.queue.JobQueue` a worker takes from; use as ``async with``.

    It takes only jobs of ``models``, letting a loaded one's jobs go first within ``switch_after``.
    Bots queue, rank and remove jobs (:mod:`generators.streams.submit`); a cancel for a job this worker
    runs goes to the callback given to :meth:`on_cancel`.
    """

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        *,
        name: str,
        models: Iterable[str],
        claim_idle_s: float,
        max_deliveries: int,
        switch_after: int | None = None,
        sources: Path | None = None,
        health: Health | None = None,
    ) -> None:
        self.client = client
        #: Redis's part of this worker's health: set while it cannot be reached, logged once a change.
        self.redis = RedisHealth(health)
        self._backoff = Backoff()
        self.keys = keys
        self.name = name
        #: Where this worker's remix pictures go (``generators.sources``); None: no remixes here.
        self.sources = sources
        self._pruned_at = time.monotonic()
        self.models = tuple(models)
        if not self.models:
            raise ValueError("a worker must serve at least one model")
        self.switch_after = switch_after
        self.claim_idle_s = claim_idle_s
        self.max_deliveries = max_deliveries
        #: Idle workers look for new and abandoned jobs at least this often.
        self.poll_s = min(1.0, claim_idle_s / 4)
        self.scripts = Scripts.on(client)
        self._held: dict[str, Held] = {}
        self._wake = asyncio.Event()
        self._cancel_asked: dict[str, float] = {}  # cancels heard for jobs not held (yet)
        self._on_cancel: Callable[[str], object] = lambda job_id: None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._reclaimed_at = 0.0
        self._overtaken: dict[str, int] = {}  # waiting job → jobs of a loaded model this worker took first

    async def __aenter__(self) -> RedisQueue:
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.keys.wake, self.keys.cancels)
        self._listener = asyncio.create_task(self._listen(self._pubsub), name="memebot-queue-listener")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            await stop_tasks([self._listener])
        if self._pubsub is not None:
            await self._pubsub.aclose()

    def on_cancel(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(job_id)`` when cancelling a job this worker runs is asked for."""
        self._on_cancel = callback

    # -- the JobQueue protocol ----------------------------------------------------------------------

    async def take(
        self, key: BatchKey, size: JobSize, max_images: int, ready: Ready | None = None
    ) -> list[Job]:
        """Wait for work; return an abandoned job, or the fair next job plus compatible ones."""
        while True:
            self._wake.clear()  # before looking: a job queued while we look wakes the wait below
            wait = self.poll_s
            try:
                jobs = await self._reclaim() or await self._claim(key, size, max_images, ready)
            except RedisError as error:
                self.redis.failed("take", error)
                if no_group(error):
                    await self._repair_groups()
                jobs, wait = [], max(self.poll_s, self._backoff.next())
            else:
                self.redis.ok("take")
                self._backoff.reset()
            if jobs:
                self._cancel_soon(jobs)
                await self._fetch_sources(jobs)
                return jobs
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _repair_groups(self) -> None:
        """Make the workers' group again on every stream of this worker's models that lost it.

        Redis restarted without its data and something wrote a stream again: its entries count as
        never delivered, so they are taken from the start.
        """
        for model in self.models:
            try:
                streams = await self.client.smembers(self.keys.streams(model))
                for stream in streams:
                    with contextlib.suppress(ResponseError):  # BUSYGROUP: this one still has it
                        await self.client.xgroup_create(stream, GROUP, id="0")
            except RedisError:
                return  # still down: the next look tries again

    async def _fetch_sources(self, jobs: Sequence[Job]) -> None:
        """Copy the taken remixes' pictures from Redis to this worker's folder (one the worker lacks).

        A picture missing on Redis too (it expired) is left missing: the worker fails that job saying so.
        """
        if self.sources is None:
            return
        for digest in {job.request.picture for job in jobs} - {""}:
            path = source_path(self.sources, digest)
            if path.is_file():
                continue
            try:
                data = cast(bytes | None, await self.client.get(self.keys.source(digest)))
            except RedisError as error:
                log.warning("redis: %s; the picture %s… stays missing", error, digest[:12])
                continue
            if data is not None:
                await file_io(len(data), functools.partial(write_source, self.sources, digest, data))
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:  # this disk is a spool: keep it small
            self._pruned_at = time.monotonic()
            await asyncio.to_thread(prune, self.sources, time.time() - PRUNE_EVERY_S)

    # -- after the take -----------------------------------------------------------------------------

    def held(self, job_id: str) -> Held | None:
        """The job if this worker holds it."""
        return self._held.get(job_id)

    @property
    def holding(self) -> int:
        """How many jobs this worker holds."""
        return len(self._held)

    async def report(
        self,
        job_id: str,
        fields: Fields,
        *,
        terminal: bool,
        files: Mapping[str, bytes] | None = None,
        files_ttl_s: int = 0,
    ) -> bool:
        """Send one event to the job's bot; a terminal one also acknowledges the job.

        ``files`` (key → bytes) are written in the same round trip, before the event, expiring after
        ``files_ttl_s``. False when the job was not ours to report (another worker took it over); a
        RedisError leaves the job held, so the report can be tried again.
        """
        held = self._held.get(job_id)
        if held is None:
            log.warning("job %s is not held by this worker; its %s event is dropped", job_id, fields["type"])
            return False
        keys = self.keys
        script_keys = [
            keys.job(job_id),
            held.reply,
            held.stream,
            keys.streams(held.model),
            keys.cancel(job_id),
        ]
        args = [self.name, GROUP, held.entry, int(terminal), EVENTS_MAXLEN, *_flatten(fields.items())]
        if files:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, data in files.items():
                    pipe.set(key, data, ex=files_ttl_s)
                await self.scripts.report(keys=script_keys, args=args, client=pipe)
                *_, sent = await pipe.execute()
        else:
            sent = await self.scripts.report(keys=script_keys, args=args)
        if terminal or not sent:
            self._held.pop(job_id, None)
        if not sent:
            log.warning("job %s was taken over by another worker; this one's result is dropped", job_id)
        return bool(sent)

    async def keep(self) -> None:
        """Keep the jobs this worker runs from looking abandoned; stop those whose cancel was asked."""
        if not self._held:
            return
        triples = [(job_id, h.stream, h.entry) for job_id, h in self._held.items()]
        keys = self.keys
        flagged = await self.scripts.touch(
            args=[GROUP, self.name, keys.job_prefix, keys.cancel_prefix, *_flatten(triples)]
        )
        for job_id in flagged:
            self._on_cancel(job_id.decode())

    # -- taking -------------------------------------------------------------------------------------

    async def _claim(self, key: BatchKey, size: JobSize, max_images: int, ready: Ready | None) -> list[Job]:
        for _ in range(5):  # another worker may claim between our look and our claim: look again
            waiting = await self._peek()
            if not waiting:
                return []
            chosen = choose(
                waiting,
                key,
                size,
                max_images,
                ready=ready,
                overtaken=self._overtaken,
                switch_after=self.switch_after,
            )
            claimed = await self._claim_chosen(chosen)
            if claimed:
                self._count_overtakes([w.job for w in waiting], [w.job for w in chosen])
                return [
                    self._hold(model, owner, entry, job, reply, flag)
                    for model, owner, entry, job, reply, flag in claimed
                ]
        return []

    async def _peek(self) -> list[_Waiting]:
        keys = self.keys
        rows = await self.scripts.peek(
            keys=[keys.owners(model) for model in self.models],
            args=[keys.queue_root, PEEK_DEPTH, *self.models],
        )
        return [
            _Waiting(m.decode(), o.decode(), e.decode(), Job.from_dict(json.loads(j)))
            for m, o, e, j, _ in rows
        ]

    async def _claim_chosen(self, chosen: Sequence[_Waiting]) -> list[list[Any]]:
        keys = self.keys
        claimed: list[list[Any]] = await self.scripts.claim(
            keys=[keys.turn, keys.waiting, keys.total],
            args=[
                GROUP,
                self.name,
                keys.queue_root,
                keys.owners_root,
                keys.job_prefix,
                keys.cancel_prefix,
                *_flatten((w.model, w.owner, w.entry) for w in chosen),
            ],
        )
        return claimed

    def _count_overtakes(self, order: Sequence[Job], batch: Sequence[Job]) -> None:
        waiting = {job.id for job in order}
        counts = {job_id: n for job_id, n in self._overtaken.items() if job_id in waiting}
        for job_id, n in overtakes(order, batch).items():
            counts[job_id] = counts.get(job_id, 0) + n
        self._overtaken = counts

    async def _reclaim(self) -> list[Job]:
        if time.monotonic() - self._reclaimed_at < self.poll_s:
            return []
        self._reclaimed_at = time.monotonic()
        keys = self.keys
        failed, cancelled = encode("", Failed(DEAD_REASON)), encode("", Cancelled())
        rows = await self.scripts.reclaim(
            keys=[keys.dead, *(keys.streams(model) for model in self.models)],
            args=[
                GROUP,
                self.name,
                int(self.claim_idle_s * 1000),
                self.max_deliveries,
                keys.job_prefix,
                keys.cancel_prefix,
                EVENTS_MAXLEN,
                failed["type"],
                failed["data"],
                cancelled["type"],
                cancelled["data"],
                *self.models,
            ],
        )
        jobs = []
        for kind, job_id, owner, entry, job, reply, deliveries, model in rows:
            extra = {"job_id": job_id.decode()}
            if kind == b"dead":
                log.warning("dead-lettered after %d deliveries", deliveries, extra=extra)
            elif kind == b"cancelled":
                log.info("cancelled while its worker was gone", extra=extra)
            else:
                log.warning("taken over from a worker that stopped (delivery %d)", deliveries, extra=extra)
                jobs.append(self._hold(model, owner, entry, job, reply, 0))
        return jobs

    def _hold(
        self, model_name: bytes, owner: bytes, entry: bytes, job_json: bytes, reply: bytes, flagged: int
    ) -> Job:
        job, model = Job.from_dict(json.loads(job_json)), model_name.decode()
        stream = self.keys.queue(model, owner.decode())
        self._held[job.id] = Held(job, model, stream, entry.decode(), reply.decode())
        if flagged:
            self._cancel_asked[job.id] = time.monotonic()
        return job

    def _cancel_soon(self, jobs: Iterable[Job]) -> None:
        # Called just before take() returns: the worker registers the jobs as running before the loop
        # runs these callbacks, so its cancel() finds them and stops them at their first step.
        loop = asyncio.get_running_loop()
        for job in jobs:
            if self._cancel_asked.pop(job.id, None) is not None:
                loop.call_soon(self._on_cancel, job.id)

    # -- messages -----------------------------------------------------------------------------------

    async def _listen(self, pubsub: PubSub) -> None:
        backoff = Backoff()
        while True:
            try:
                # A bounded wait: a quiet channel after an outage still says Redis is back.
                message = await pubsub.get_message(timeout=LISTEN_S)
            except RedisError as error:
                self.redis.failed("listen", error)
                await asyncio.sleep(max(self.poll_s, backoff.next()))
                continue
            self.redis.ok("listen")
            backoff.reset()
            if message is None:
                continue
            if message["channel"] == self.keys.cancels.encode():
                self._cancel_heard(message["data"].decode())
            elif message["data"].decode() in self.models:
                self._wake.set()

    def _cancel_heard(self, job_id: str) -> None:
        if job_id in self._held:
            self._on_cancel(job_id)
            return
        # The claim's reply may still be on its way: remember the cancel for a short while.
        now = time.monotonic()
        self._cancel_asked = {j: t for j, t in self._cancel_asked.items() if now - t < 60}
        self._cancel_asked[job_id] = now


def _flatten(pairs: Iterable[tuple[str | bytes, ...]]) -> list[str | bytes]:
    return [value for pair in pairs for value in pair]
