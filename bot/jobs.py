"""The job service: the one door adapters use to submit, follow and cancel jobs.

It keeps the store and the worker in step: a job is written before anyone is told it is queued, and every
state change coming back from the worker is written before watchers hear of it, so a restart resumes from
what was last written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from bot.runners import Runner
from bot.store import ENDED, InvalidTransition, JobRecord, JobStatus, Store, remove_files
from generators.config import LimitsConfig
from generators.errors import BadRequest, Forbidden, NotFound, UserError
from generators.grammar import format_request, parse
from generators.health import Health
from generators.logs import job_context
from generators.models import Catalog
from generators.requests import (
    TERMINAL,
    Cancelled,
    Failed,
    Finished,
    GenerationRequest,
    Job,
    Progress,
    Source,
    Started,
    new_job_id,
)
from generators.sources import SourceStore

log = logging.getLogger(__name__)

#: The platform of jobs ``memebot imagine`` submits: nobody waits for them after that command stops.
CLI_PLATFORM = "cli"


class Watch:
    """Progress events of one job, ending after its terminal event."""

    def __init__(self, service: JobService, job_id: str) -> None:
        self._service = service
        self._job_id = job_id
        self._events: asyncio.Queue[Progress] = asyncio.Queue()
        service._watchers[job_id].append(self._events)
        self._ended = False

    def __aiter__(self) -> AsyncIterator[Progress]:
        return self

    async def __anext__(self) -> Progress:
        if self._ended:
            raise StopAsyncIteration
        event = await self._events.get()
        if isinstance(event, TERMINAL):
            self._ended = True
            self.close()
        return event

    def close(self) -> None:
        """Stop receiving events."""
        watchers = self._service._watchers.get(self._job_id, [])
        if self._events in watchers:
            watchers.remove(self._events)


#: Told of every event of one platform's jobs once the store has it; must return at once.
PlatformHandler = Callable[[str, Progress], None]


class JobService:
    """Submits jobs through the store to a runner, and writes back what the runner reports.

    ``runner`` is the worker in this process (``generators.local.LocalRunner``) or the workers on
    Redis (``generators.streams.submit.RedisRunner``, ``queue.backend: redis``); the service knows
    neither. ``sources`` keeps the pictures remixes start from (adapters hand them in there).
    """

    def __init__(
        self,
        store: Store,
        runner: Runner,
        limits: LimitsConfig,
        budget_bytes: int,
        *,
        sources: SourceStore,
        health: Health | None = None,
    ) -> None:
        self.store = store
        #: What keeps the bot from serving now (``/healthz``); every part reports into this one.
        self.health = health or Health()
        self.runner = runner
        self.sources = sources
        self.limits = limits
        self.budget_bytes = budget_bytes
        self._watchers: defaultdict[str, list[asyncio.Queue[Progress]]] = defaultdict(list)
        self._handlers: dict[str, PlatformHandler] = {}
        self._observers: list[PlatformHandler] = []
        self._platforms: dict[str, str] = {}  # job id → platform, for jobs this process queued
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def catalog(self) -> Catalog:
        """The models this bot serves."""
        return self.runner.catalog

    async def __aenter__(self) -> JobService:
        self._task = asyncio.create_task(self._record_events(), name="memebot-job-events")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.events.join()
        if self._task is not None:
            self._task.cancel()

    # -- requests -------------------------------------------------------------------------------

    def parse(
        self,
        text: str,
        *,
        default_n: int | None = None,
        default_model: str | None = None,
        source: Source | None = None,
    ) -> GenerationRequest:
        """Parse a command line with this bot's limits and resolve its model.

        A server's own default ``--n`` and default model (for requests of that model's kind that name
        none) apply when given; a clip model turns a request into a clip. With ``source`` (from
        ``self.sources``) the request remixes that picture.
        """
        limits = self.limits
        if default_n is not None:
            limits = limits.model_copy(update={"default_n": min(default_n, limits.max_n)})
        catalog = self.catalog
        request = parse(text, limits, catalog, source=source)
        if request.model is None and default_model is not None and default_model in catalog:
            if catalog.get(default_model).kind is request.kind:
                request = dataclasses.replace(request, model=default_model)
        return catalog.resolve(request, max_side=limits.max_side)

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if ``owner`` (or everyone) has no place left in the queue right now.

        Adapters ask before they download or store anything for a request, so a refusal costs nothing;
        :meth:`submit` checks again, atomically, before it writes the job.
        """
        self.runner.queue.check_room(owner)

    def command_line(self, request: GenerationRequest) -> str:
        """The re-typeable command for a request."""
        return format_request(request, self.limits)

    async def submit(
        self,
        request: GenerationRequest,
        *,
        owner: str,
        platform: str,
        reply_to: Mapping[str, Any],
        budget_bytes: int | None = None,
    ) -> JobRecord:
        """Check room, write the job, then queue it; refusals raise before anything is written."""
        request = self.catalog.resolve(request, max_side=self.limits.max_side)
        if request.seed is None:
            request = dataclasses.replace(request, seed=secrets.randbelow(2**32))
        # The plan is made once, here: the worker runs it without working out the request again.
        plan = self.catalog.get(request.model or "").plan(request, self.limits.max_side)
        job = Job(new_job_id(), owner, request, budget_bytes or self.budget_bytes, plan=plan)
        async with self._lock:  # the cap check and the put must see the same queue
            self.runner.queue.check_room(owner)
            record = await self.store.add(job, platform=platform, reply_to=reply_to)
            self._platforms[job.id] = platform  # before queueing: a remote worker may start it at once
            try:
                await self.runner.submit(job)
            except UserError:
                # The queue refused it: another bot process took the last place since the check
                # above, or no worker serves its model.
                self._platforms.pop(job.id, None)
                await self.store.forget(job.id)
                raise
        with job_context(job.id):
            log.info("job %s queued for %s: %s", job.id, owner, self.command_line(request))
        return record

    def subscribe(self, platform: str, handler: PlatformHandler) -> None:
        """Send every later event of ``platform``'s jobs to ``handler`` (an adapter's delivery).

        Subscribe before :meth:`recover`; a job that finished while nobody listened is in
        ``store.undelivered()``.
        """
        self._handlers[platform] = handler

    def observe(self, handler: PlatformHandler) -> None:
        """Send every later event of every job to ``handler`` (metrics), after the store has it."""
        self._observers.append(handler)

    def watch(self, job_id: str) -> Watch:
        """Follow a job's progress from now on (register before awaiting anything else)."""
        return Watch(self, job_id)

    async def cancel(self, job_id: str, *, by: str | None = None) -> JobRecord:
        """Cancel a queued or running job; ``by`` (an owner id) must own it unless None (a moderator)."""
        record = await self.store.get(job_id)
        if record is None:
            raise NotFound(f"there is no job {job_id}")
        if by is not None and record.job.owner != by:
            raise Forbidden("only the person who asked for this job can cancel it")
        if not await self.runner.cancel(job_id):
            raise BadRequest(f"job {job_id} is already {record.status.value}")
        return record

    async def mark_delivered(self, job_id: str, ref: str) -> bool:
        """Record that the platform has the result (``ref``: its message or comment id).

        False when it was already marked (another process delivered it, or a restart did): adapters
        are the ones who post, the job service the one that records.
        """
        return await self._mark(job_id, JobStatus.DELIVERED, ref=ref)

    async def mark_undeliverable(self, job_id: str, reason: str) -> bool:
        """Record that the platform will never take the result, and why; False when already marked."""
        return await self._mark(job_id, JobStatus.UNDELIVERABLE, reason=reason)

    async def _mark(
        self, job_id: str, status: JobStatus, *, ref: str | None = None, reason: str | None = None
    ) -> bool:
        try:
            await self.store.transition(job_id, status, delivery_ref=ref, error=reason)
        except InvalidTransition:
            return False
        return True

    async def delete(self, job_id: str, *, by: str | None = None) -> JobRecord:
        """Delete an ended job's files and record: its page then answers 410 Gone.

        ``by`` (an owner id) must own it unless None (a moderator, or retention). Files go first, so a
        stop in between leaves a record that retention deletes again, never files nobody knows of.
        """
        record = await self.store.get(job_id)
        if record is None:
            raise NotFound(f"there is no job {job_id}")
        if by is not None and record.job.owner != by:
            raise Forbidden("only the person who asked for this job can delete it")
        if record.status not in ENDED:
            raise BadRequest(f"job {job_id} is still {record.status.value}: cancel it first")
        if record.result is not None:
            await asyncio.to_thread(remove_files, record.result)
        await self._remove_picture(record)
        await self.store.delete(job_id)
        return record

    async def _remove_picture(self, record: JobRecord) -> None:
        """Delete the member's picture a deleted remix started from, unless a job still waits on it.

        On Redis it is gone already: the queue lets go of a job's picture when the job ends. A result
        tile (a remix of a memebot result) is deleted the same way; remixing that result again cuts it
        anew.
        """
        digest = record.job.request.picture
        if not digest:
            return
        waiting = await self.store.unfinished()
        if any(other.job.request.picture == digest for other in waiting):
            return
        if await asyncio.to_thread(self.sources.remove, digest):
            log.info("deleted the picture job %s remixed", record.id)

    async def recover(self) -> list[JobRecord]:
        """On start: follow the jobs a previous run left queued or running, oldest first.

        Jobs the queue still holds (Redis) are followed where they are; the others are queued again,
        except the command line's (the ``memebot imagine`` that asked is gone) and those whose model
        has left the config: those fail, each with one logged line, rather than stop the start.
        """
        records = await self.store.unfinished()
        for record in records:
            self._platforms[record.id] = record.platform
        lost = [record for record in records if not await self.runner.holds(record.id)]
        # A lost job may have finished while this process was away: its events come first.
        await self.runner.sync()
        requeued = 0
        for record in lost:
            current = await self.store.get(record.id)
            if current is None or current.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                continue
            why = self._unrecoverable(current)
            if why is not None:
                await self._abandon(current, why)
                continue
            if current.status is JobStatus.RUNNING:
                await self.store.transition(record.id, JobStatus.QUEUED)
            try:
                await self.runner.submit(current.job, force=True)
            except UserError as error:  # the queue cannot take it any more (e.g. its model can't run)
                await self._abandon(current, str(error))
                continue
            requeued += 1
        if requeued:
            log.info("requeued %d unfinished jobs", requeued)
        if len(records) > len(lost):
            log.info("following %d jobs the queue still holds", len(records) - len(lost))
        return records

    def _unrecoverable(self, record: JobRecord) -> str | None:
        """Why a job a previous run left cannot be queued again, or None if it can."""
        if record.platform == CLI_PLATFORM:
            return "the command line that asked for it stopped before it finished"
        model = record.job.request.model
        if model is not None and model not in self.catalog:
            return f"its model {model} is no longer configured"
        return None

    async def _abandon(self, record: JobRecord, why: str) -> None:
        """Fail a job left from a previous run that cannot run again, saying why in the log and the store."""
        try:
            await self.store.transition(record.id, JobStatus.FAILED, error=why)
        except InvalidTransition:  # it ended meanwhile
            return
        with job_context(record.id):
            log.warning("not resuming job %s of %s: %s", record.id, record.owner, why)
        self._tell(record.id, Failed(why))  # its adapter answers the member who asked

    # -- events from the worker -----------------------------------------------------------------

    async def _record_events(self) -> None:
        events = self.runner.events
        while True:
            job_id, event = await events.get()
            with job_context(job_id):
                recorded = True
                try:
                    recorded = await self._record(job_id, event)
                except Exception:
                    log.exception("could not record %s for job %s", type(event).__name__, job_id)
                finally:
                    # A second end (a job two workers finished, an event read again after a restart)
                    # was refused by the store: telling it would deliver twice.
                    if recorded or not isinstance(event, TERMINAL):
                        self._tell(job_id, event)
                    events.task_done()

    def _tell(self, job_id: str, event: Progress) -> None:
        for queue in list(self._watchers.get(job_id, ())):
            queue.put_nowait(event)
        handler = self._handlers.get(self._platforms.get(job_id, ""))
        if handler is not None:
            try:
                handler(job_id, event)
            except Exception:
                log.exception("the %s handler failed on job %s", self._platforms[job_id], job_id)
        for observer in self._observers:
            try:
                observer(job_id, event)
            except Exception:
                log.exception("an observer failed on job %s", job_id)
        if isinstance(event, TERMINAL):
            self._watchers.pop(job_id, None)
            self._platforms.pop(job_id, None)

    async def _record(self, job_id: str, event: Progress) -> bool:
        """Write the state change ``event`` means; False if the lifecycle refused it."""
        try:
            if isinstance(event, Started):
                await self.store.transition(job_id, JobStatus.RUNNING)
            elif isinstance(event, Finished):
                await self.store.transition(job_id, JobStatus.DONE, result=event.result)
            elif isinstance(event, Failed):
                await self.store.transition(job_id, JobStatus.FAILED, error=event.reason)
            elif isinstance(event, Cancelled):
                await self.store.transition(job_id, JobStatus.CANCELLED)
        except InvalidTransition as error:
            log.warning("%s", error)  # it names the job
            return False
        return True
