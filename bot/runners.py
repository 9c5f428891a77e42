"""Where the job service's jobs run: the worker in this process, or GPU workers over Redis.

The service sees one interface either way; ``bot.remote`` holds the Redis one.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from generators.models import Catalog, ModelState
from generators.requests import Job, Progress
from generators.streams.heartbeat import WorkerStatus
from generators.worker import GenerationWorker


class QueueView(Protocol):
    """What adapters may ask of the queue: the order, the length, and a quick check for room."""

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if ``owner`` may not queue another job now."""
        ...

    def order(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        ...

    def __len__(self) -> int: ...


class Runner(Protocol):
    """Runs the jobs the service submits and reports their progress in ``events``."""

    events: asyncio.Queue[tuple[str, Progress]]

    @property
    def queue(self) -> QueueView:
        """The queue, for adapters' views and the quick check before a submit."""
        ...

    @property
    def catalog(self) -> Catalog:
        """The models jobs may ask for, and the defaults."""
        ...

    def model_states(self) -> list[ModelState]:
        """How each model is doing: loaded, failed (why), what loading it cost."""
        ...

    @property
    def workers(self) -> list[WorkerStatus]:
        """The workers serving this bot, as last heard of."""
        ...

    async def submit(self, job: Job, *, force: bool = False) -> None:
        """Queue ``job`` (``force`` skips the caps); its place comes as a Queued event. Raises QueueFull."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued job now or a running one at its next step; False if it is neither."""
        ...

    async def holds(self, job_id: str) -> bool:
        """Whether the queue still holds the job (waiting or running) from before a restart."""
        ...

    async def sync(self) -> None:
        """Return once every event sent before this call has been handed to ``events``."""
        ...


class LocalRunner:
    """The worker in this process: nothing survives a restart, so recovered jobs are queued again."""

    def __init__(self, worker: GenerationWorker) -> None:
        self.worker = worker
        self.events = worker.events

    @property
    def queue(self) -> QueueView:
        """The worker's in-process queue."""
        return self.worker.queue

    @property
    def catalog(self) -> Catalog:
        """The worker's models."""
        return self.worker.models.catalog

    def model_states(self) -> list[ModelState]:
        """The worker's models as they are now."""
        return self.worker.models.states()

    @property
    def workers(self) -> list[WorkerStatus]:
        """This process's one worker."""
        models = self.worker.models
        loaded = [state.name for state in models.states() if state.loaded]
        device = models.info(loaded[0]).device if loaded else "idle"
        return [WorkerStatus("local", tuple(self.catalog.names), device, busy=self.worker.busy)]

    async def submit(self, job: Job, *, force: bool = False) -> None:
        """Queue ``job`` for the worker."""
        self.worker.submit(job, force=force)

    async def cancel(self, job_id: str) -> bool:
        """Cancel through the worker."""
        return self.worker.cancel(job_id)

    async def holds(self, job_id: str) -> bool:
        """A new process holds nothing from the last one."""
        return False

    async def sync(self) -> None:
        """Events are in ``events`` as soon as the worker makes them."""
