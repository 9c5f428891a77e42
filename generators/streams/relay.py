"""A worker's link back to the bots: its events to their streams, its results into Redis, its heartbeat.

Result files never ride in a stream entry: their bytes go to their own keys (expiring after
``result_ttl_s``) and the Finished event names them; the bot writes them to its own disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import shutil
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from generators.logs import job_context
from generators.requests import TERMINAL, Finished, GenerationResult, MediaFile, Progress
from generators.streams.codec import encode
from generators.streams.files import file_io
from generators.streams.heartbeat import WorkerStatus, announce, withdraw
from generators.streams.keys import Keys
from generators.streams.take import RedisQueue
from generators.tasks import stop_tasks
from generators.worker import GenerationWorker

log = logging.getLogger(__name__)

#: Tries to send a terminal event before leaving the job for another worker to redo.
SEND_TRIES = 3


def heartbeat_interval(claim_idle_s: float) -> float:
    """How often a worker announces itself and keeps its jobs: several times per ``claim_idle_s``."""
    return min(5.0, claim_idle_s / 3)


class Relay:
    """Runs beside a worker on Redis; use as ``async with`` around the worker's life."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        queue: RedisQueue,
        worker: GenerationWorker,
        *,
        result_ttl_s: int,
        heartbeat_s: float,
    ) -> None:
        self.client = client
        self.keys = keys
        self.queue = queue
        self.worker = worker
        self.result_ttl_s = result_ttl_s
        self.heartbeat_s = heartbeat_s
        self.done = 0
        self.images_per_s: float | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Relay:
        with contextlib.suppress(RedisError):  # bots accept this worker's models from now on
            await self._announce()
        self._tasks = [
            asyncio.create_task(self._forward(), name="memebot-relay-events"),
            asyncio.create_task(self._beat(), name="memebot-relay-heartbeat"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Send what the stopped worker still reported, then stop announcing this worker."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.worker.events.join(), 30)
        await stop_tasks(self._tasks)
        with contextlib.suppress(RedisError):
            await withdraw(self.client, self.keys, self.queue.name)

    def status(self) -> WorkerStatus:
        """What this worker announces."""
        models = self.worker.models
        loaded = [state.name for state in models.states() if state.loaded]
        return WorkerStatus(
            name=self.queue.name,
            models=tuple(models.catalog.names),
            device=models.info(loaded[0]).device if loaded else "idle",
            busy=self.queue.holding,
            done=self.done,
            images_per_s=self.images_per_s,
        )

    # -- events -------------------------------------------------------------------------------------

    async def _forward(self) -> None:
        events = self.worker.events
        while True:
            job_id, event = await events.get()
            try:
                with job_context(job_id):
                    await self._send(job_id, event)
            except Exception:
                log.exception("could not send a %s event", type(event).__name__)
            finally:
                events.task_done()

    async def _send(self, job_id: str, event: Progress) -> None:
        if not isinstance(event, TERMINAL):
            await self.queue.report(job_id, encode(job_id, event), terminal=False)
            return
        folder: Path | None = None
        files: dict[str, bytes] = {}
        if isinstance(event, Finished):
            folder = event.result.primary.path.parent
            size = sum(file.size for file in event.result.files)
            result, files = await file_io(size, functools.partial(self._spooled, event.result))
            event = Finished(result)
            self._measure(result)
        sent = await self._send_terminal(job_id, event, files)
        if isinstance(event, Finished) and not sent:
            await self.client.delete(*[self.keys.result(job_id, f.path.name) for f in event.result.files])
        if folder is not None:  # the bot keeps its own copy; this disk is only a spool
            await asyncio.to_thread(shutil.rmtree, folder, True)
        self.done += 1

    async def _send_terminal(self, job_id: str, event: Progress, files: dict[str, bytes]) -> bool:
        fields = encode(job_id, event)
        for attempt in range(1, SEND_TRIES + 1):
            try:
                return await self.queue.report(
                    job_id, fields, terminal=True, files=files, files_ttl_s=self.result_ttl_s
                )
            except RedisError as error:
                log.warning("redis: %s (try %d of %d)", error, attempt, SEND_TRIES)
                await asyncio.sleep(self.heartbeat_s)
        # Still pending in its stream: another worker takes it over after claim_idle_s.
        return False

    def _spooled(self, result: GenerationResult) -> tuple[GenerationResult, dict[str, bytes]]:
        """The result naming its files without a path, and their bytes by Redis key (reads the disk)."""
        named, data = [], {}
        for file in result.files:
            data[self.keys.result(result.job_id, file.path.name)] = content = file.path.read_bytes()
            named.append(MediaFile(Path(file.path.name), file.mime, len(content)))
        return dataclasses.replace(result, files=tuple(named)), data

    def _measure(self, result: GenerationResult) -> None:
        # elapsed_s is the whole batch's time, so a batched job reads slow: a floor, fine for ETAs.
        rate = len(result.seeds) / max(result.elapsed_s, 1e-3)
        old = self.images_per_s
        self.images_per_s = round(rate if old is None else old + 0.3 * (rate - old), 3)

    # -- heartbeat ----------------------------------------------------------------------------------

    async def _announce(self) -> None:
        await announce(self.client, self.keys, self.status(), ttl_s=3 * self.heartbeat_s)

    async def _beat(self) -> None:
        while True:
            try:
                await self.queue.keep()
                await self._announce()
            except RedisError as error:
                self.queue.redis.failed("heartbeat", error)  # one line when it starts, one when it ends
            else:
                self.queue.redis.ok("heartbeat")
            await asyncio.sleep(self.heartbeat_s)
