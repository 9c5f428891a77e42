"""The job service's runner for the worker in this process (``queue.backend: local``).

It lives beside the worker because it holds one, and so imports torch: only the composition root
(``bot.__main__``) builds it, and the bot side sees it through ``bot.runners.Runner``.
"""

from __future__ import annotations

from generators.models import Catalog, ModelState
from generators.queue import InProcessQueue, QueueView
from generators.requests import Job
from generators.streams.heartbeat import WorkerStatus
from generators.worker import GenerationWorker


class LocalRunner:
    """The worker in this process: nothing survives a restart, so recovered jobs are queued again."""

    def __init__(self, worker: GenerationWorker) -> None:
        if not isinstance(worker.queue, InProcessQueue):
            raise TypeError("a local runner's worker takes from an in-process queue")
        self.worker = worker
        self.events = worker.events
        self._queue = worker.queue

    @property
    def queue(self) -> QueueView:
        """The worker's in-process queue, which the bot side inspects."""
        return self._queue

    @property
    def catalog(self) -> Catalog:
        """The worker's models."""
        return self.worker.models.catalog

    def model_states(self) -> list[ModelState]:
        """The worker's models as they are now."""
        return self.worker.models.states()

    @property
    def warming(self) -> bool:
        """The worker's: loading and compiling its models before the first job."""
        return self.worker.warming

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
