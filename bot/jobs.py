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

from bot.store import InvalidTransition, JobRecord, JobStatus, Store
from generators.config import LimitsConfig
from generators.errors import BadRequest, Forbidden, NotFound
from generators.grammar import format_request, parse
from generators.pipelines.backend import ModelInfo
from generators.requests import (
    TERMINAL,
    Cancelled,
    Failed,
    Finished,
    GenerationRequest,
    Job,
    Kind,
    Progress,
    Started,
    new_job_id,
)
from generators.worker import GenerationWorker

log = logging.getLogger(__name__)


def effective_limits(limits: LimitsConfig, model: ModelInfo) -> LimitsConfig:
    """The configured limits, narrowed to what the loaded model can do."""
    return limits.model_copy(update={"max_steps": min(limits.max_steps, model.max_steps)})


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
    """Submits jobs through the store to the worker, and writes back what the worker reports."""

    def __init__(
        self, store: Store, worker: GenerationWorker, limits: LimitsConfig, budget_bytes: int
    ) -> None:
        self.store = store
        self.worker = worker
        self.limits = effective_limits(limits, worker.backend.info)
        self.budget_bytes = budget_bytes
        self._watchers: defaultdict[str, list[asyncio.Queue[Progress]]] = defaultdict(list)
        self._handlers: dict[str, PlatformHandler] = {}
        self._platforms: dict[str, str] = {}  # job id → platform, for jobs this process queued
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def model(self) -> ModelInfo:
        """The loaded model."""
        return self.worker.backend.info

    async def __aenter__(self) -> JobService:
        self._task = asyncio.create_task(self._record_events(), name="memebot-job-events")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.events.join()
        if self._task is not None:
            self._task.cancel()

    # -- requests -------------------------------------------------------------------------------

    def parse(self, text: str, *, default_n: int | None = None) -> GenerationRequest:
        """Parse a command line with this bot's limits (and a server's own default --n, if any).

        A video model turns every request into a clip.
        """
        limits = self.limits
        if default_n is not None:
            limits = limits.model_copy(update={"default_n": min(default_n, limits.max_n)})
        request = parse(text, limits)
        if self.model.kind is Kind.VIDEO and request.kind is Kind.IMAGE:
            request = dataclasses.replace(request, kind=Kind.VIDEO, n=1)
        self._check_model(request)
        return request

    def _check_model(self, request: GenerationRequest) -> None:
        if request.kind is Kind.VIDEO and self.model.kind is not Kind.VIDEO:
            raise BadRequest("this bot runs an image model, so --video is not available here", flag="--video")

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
        self._check_model(request)
        if request.seed is None:
            request = dataclasses.replace(request, seed=secrets.randbelow(2**32))
        job = Job(new_job_id(), owner, request, budget_bytes or self.budget_bytes)
        async with self._lock:  # the cap check and the put must see the same queue
            self.worker.queue.check_room(owner)
            record = await self.store.add(job, platform=platform, reply_to=reply_to)
            self.worker.submit(job)
            self._platforms[job.id] = platform
        log.info("job %s queued for %s: %s", job.id, owner, self.command_line(request))
        return record

    def subscribe(self, platform: str, handler: PlatformHandler) -> None:
        """Send every later event of ``platform``'s jobs to ``handler`` (an adapter's delivery).

        Subscribe before :meth:`recover`; a job that finished while nobody listened is in
        ``store.undelivered()``.
        """
        self._handlers[platform] = handler

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
        if not self.worker.cancel(job_id):
            raise BadRequest(f"job {job_id} is already {record.status.value}")
        return record

    async def recover(self) -> list[JobRecord]:
        """On start: queue again the jobs a previous run left queued or running, oldest first."""
        records = await self.store.requeue_unfinished()
        for record in records:
            self._platforms[record.id] = record.platform
            self.worker.submit(record.job, force=True)
        if records:
            log.info("requeued %d unfinished jobs", len(records))
        return records

    # -- events from the worker -----------------------------------------------------------------

    async def _record_events(self) -> None:
        while True:
            job_id, event = await self.worker.events.get()
            try:
                await self._record(job_id, event)
            except Exception:
                log.exception("could not record %s for job %s", type(event).__name__, job_id)
            finally:
                self._tell(job_id, event)
                self.worker.events.task_done()

    def _tell(self, job_id: str, event: Progress) -> None:
        for queue in list(self._watchers.get(job_id, ())):
            queue.put_nowait(event)
        handler = self._handlers.get(self._platforms.get(job_id, ""))
        if handler is not None:
            try:
                handler(job_id, event)
            except Exception:
                log.exception("the %s handler failed on job %s", self._platforms[job_id], job_id)
        if isinstance(event, TERMINAL):
            self._watchers.pop(job_id, None)
            self._platforms.pop(job_id, None)

    async def _record(self, job_id: str, event: Progress) -> None:
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
            log.warning("job %s: %s", job_id, error)
