"""The job queue: fair round-robin order across users, caps, and batch selection.

The worker only sees the :class:`JobQueue` interface, so another backend (Redis Streams, for several GPU
machines) can take the in-process queue's place without the adapters or the worker changing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Protocol

from generators.errors import QueueFull
from generators.requests import Job

#: Jobs with equal keys can share one pipeline call.
BatchKey = Callable[[Job], Hashable]
#: How many images a job puts into a pipeline call.
JobSize = Callable[[Job], int]


def user_queue_full(per_user: int) -> QueueFull:
    """The refusal when one owner already has ``per_user`` jobs waiting."""
    return QueueFull(f"you already have {per_user} jobs waiting; wait for one to finish or cancel one")


def queue_full(total: int) -> QueueFull:
    """The refusal when ``total`` jobs wait in all."""
    return QueueFull(f"the queue is full ({total} jobs); try again in a minute")


class JobQueue(Protocol):
    """Where jobs wait for the worker."""

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if ``owner`` may not queue another job now."""
        ...

    def put(self, job: Job, *, force: bool = False) -> int:
        """Queue ``job`` (``force`` skips the caps, for recovered jobs); return its position."""
        ...

    async def take(self, key: BatchKey, size: JobSize, max_images: int) -> list[Job]:
        """Wait for work; return the fair next job plus compatible ones, up to ``max_images`` images."""
        ...

    def remove(self, job_id: str) -> Job | None:
        """Take a queued job out (cancel); ``None`` if it is not queued."""
        ...

    def order(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        ...

    def __len__(self) -> int: ...


class InProcessQueue:
    """Round-robin by owner: someone with 20 queued jobs delays a newcomer by one job, not 20."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        # Owners in the order their turn comes; each with their own jobs, first in first out.
        self._owners: OrderedDict[str, deque[Job]] = OrderedDict()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._owners.values())

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if ``owner`` or the whole queue is at its cap."""
        if len(self._owners.get(owner, ())) >= self.per_user:
            raise user_queue_full(self.per_user)
        if len(self) >= self.total:
            raise queue_full(self.total)

    def put(self, job: Job, *, force: bool = False) -> int:
        """Queue ``job`` behind everyone whose turn comes first; return its position."""
        if not force:
            self.check_room(job.owner)
        self._owners.setdefault(job.owner, deque()).append(job)
        self._changed.set()
        return self.position(job.id)

    def position(self, job_id: str) -> int:
        """How many jobs run before ``job_id``; -1 when it is not queued."""
        return next((i for i, job in enumerate(self._fair_order()) if job.id == job_id), -1)

    def order(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        return list(self._fair_order())

    def _fair_order(self) -> Iterator[Job]:
        lanes = [deque(jobs) for jobs in self._owners.values()]
        while lanes:
            for lane in lanes:
                yield lane.popleft()
            lanes = [lane for lane in lanes if lane]

    async def take(self, key: BatchKey, size: JobSize, max_images: int) -> list[Job]:
        """Wait for work; return the fair next job plus compatible ones, up to ``max_images`` images."""
        while not self._owners:
            self._changed.clear()
            await self._changed.wait()
        order = self._fair_order()
        head = next(order)
        batch, images = [head], size(head)
        head_key = key(head)
        for job in order:
            if images >= max_images:
                break
            if key(job) == head_key and images + size(job) <= max_images:
                batch.append(job)
                images += size(job)
        for job in batch:
            self._pop(job)
        return batch

    def remove(self, job_id: str) -> Job | None:
        """Take a queued job out; ``None`` if it is not queued."""
        job = next((j for j in self._fair_order() if j.id == job_id), None)
        if job is not None:
            self._owners[job.owner].remove(job)
            if not self._owners[job.owner]:
                del self._owners[job.owner]
        return job

    def _pop(self, job: Job) -> None:
        # The owner just had a turn: to the back of the line, or out of it when nothing is left.
        jobs = self._owners[job.owner]
        jobs.remove(job)
        if jobs:
            self._owners.move_to_end(job.owner)
        else:
            del self._owners[job.owner]
