"""What the job service needs of wherever its jobs run: the worker in this process, or GPU workers on Redis.

The service sees this one interface either way, so the bot side imports no torch: the local runner
(``generators.local``) is built only by the composition root; the Redis one is
``generators.streams.submit``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from generators.models import Catalog, ModelState
from generators.queue import QueueView
from generators.requests import Job, Progress
from generators.streams.heartbeat import WorkerStatus


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

    @property
    def warming(self) -> bool:
        """Whether models are still loading and compiling before the first job (``/healthz`` says so)."""
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
