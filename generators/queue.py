"""The job queue: fair round-robin order across users, caps, and batch selection.

The worker takes from a :class:`JobQueue` and the bot side inspects a :class:`QueueView`; the in-process
queue is both. With Redis the two ends are apart (``generators.streams``): workers take from
``RedisQueue``, bots submit through ``RedisRunner`` and inspect its ``QueueSnapshot``.

Switching models costs seconds, so the worker may prefer jobs whose model is loaded: a job at the head
of the fair order whose model is not loaded can be overtaken by jobs of a loaded model, but each waiting
job by at most ``switch_after`` of them in all; then its model is loaded. See :func:`pick`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from generators.errors import QueueFull
from generators.requests import Job

#: Jobs with equal keys can share one pipeline call.
BatchKey = Callable[[Job], Hashable]
#: How many images a job puts into a pipeline call.
JobSize = Callable[[Job], int]
#: Whether a job can start without a model switch.
Ready = Callable[[Job], bool]


def pick(
    order: Sequence[Job],
    key: BatchKey,
    size: JobSize,
    max_images: int,
    *,
    ready: Ready | None = None,
    overtaken: Mapping[str, int] | None = None,
    switch_after: int | None = None,
) -> list[Job]:
    """The next batch from the fair ``order``: the head and compatible jobs behind it, up to ``max_images``.

    With ``ready`` and a ``switch_after`` above 0, when the head needs a model switch, the batch starts
    at the first ready job instead. ``switch_after`` None means no preference and no bound: the head
    and compatible jobs from anywhere behind it, as before there were several models. Models are read
    from ``job.request.model``, which the job service always fills in.
    Either way, no job joins a batch if that would make a waiting job of another model overtaken
    (``overtaken`` so far, plus this batch) more than ``switch_after`` times; the caller adds what a
    batch overtook (see :func:`overtakes`). So every job waits behind at most ``switch_after`` jobs of
    other models that were behind it in the fair order.
    """
    seen = overtaken or {}
    if ready is not None and switch_after and not ready(order[0]):
        batch = _fill(order, key, size, max_images, ready, seen, switch_after)
        if batch:
            return batch
    return _fill(order, key, size, max_images, lambda job: True, seen, switch_after)


def _fill(
    order: Sequence[Job],
    key: BatchKey,
    size: JobSize,
    max_images: int,
    first: Ready,
    overtaken: Mapping[str, int],
    switch_after: int | None,
) -> list[Job]:
    batch: list[Job] = []
    passed: dict[str, tuple[str | None, int]] = {}  # job left waiting → (its model, times overtaken)
    images = 0
    for job in order:
        if images >= max_images:
            break
        model = job.request.model
        joins = first(job) if not batch else key(job) == key(batch[0]) and images + size(job) <= max_images
        losers = [job_id for job_id, (other, _) in passed.items() if other != model]
        if joins and (switch_after is None or all(passed[j][1] < switch_after for j in losers)):
            batch.append(job)
            images += size(job)
            for job_id in losers:
                passed[job_id] = (passed[job_id][0], passed[job_id][1] + 1)
        else:
            passed[job.id] = (model, overtaken.get(job.id, 0))
    return batch


def overtakes(order: Sequence[Job], batch: Sequence[Job]) -> dict[str, int]:
    """For each job of another model left waiting, how many jobs of ``batch`` stood behind it in ``order``."""
    chosen = {job.id for job in batch}
    model = batch[0].request.model if batch else None
    passed: dict[str, int] = {}
    behind = 0
    for job in reversed(order):
        if job.id in chosen:
            behind += 1
        elif behind and job.request.model != model:
            passed[job.id] = behind
    return passed


def user_queue_full(per_user: int) -> QueueFull:
    """The refusal when one owner already has ``per_user`` jobs waiting."""
    return QueueFull(f"you already have {per_user} jobs waiting; wait for one to finish or cancel one")


def queue_full(total: int) -> QueueFull:
    """The refusal when ``total`` jobs wait in all."""
    return QueueFull(f"the queue is full ({total} jobs); try again in a minute")


class JobQueue(Protocol):
    """What the worker takes jobs from: in this process, or Redis streams the bots fill."""

    async def take(
        self, key: BatchKey, size: JobSize, max_images: int, ready: Ready | None = None
    ) -> list[Job]:
        """Wait for work; return the next batch (see :func:`pick`), up to ``max_images`` images."""
        ...


@runtime_checkable
class WaitingLine(Protocol):
    """A queue the worker's own process fills: the worker then queues, ranks and withdraws jobs itself.

    On Redis a worker only takes: the bots put jobs in (``generators.streams.submit``) and tell their
    positions, and a cancel reaches a running job through ``RedisQueue.on_cancel``.
    """

    def put(self, job: Job, *, force: bool = False) -> int:
        """Queue ``job`` (``force`` skips the caps, for recovered jobs); return its position."""
        ...

    def remove(self, job_id: str) -> Job | None:
        """Take a queued job out (cancel); ``None`` if it is not queued."""
        ...

    def order(self) -> list[Job]:
        """Queued jobs in the order they will run, for the positions the worker tells."""
        ...


class QueueView(Protocol):
    """What the bot side inspects before and after submitting: room for an owner, the order, the length."""

    def check_room(self, owner: str) -> None:
        """Raise QueueFull if ``owner`` may not queue another job now."""
        ...

    def order(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        ...

    def __len__(self) -> int: ...


class InProcessQueue:
    """Both ends in one process, round-robin by owner: someone with 20 queued jobs delays a newcomer by
    one job, not 20."""

    def __init__(self, *, per_user: int, total: int, switch_after: int | None = None) -> None:
        self.per_user = per_user
        self.total = total
        self.switch_after = switch_after
        self._overtaken: dict[str, int] = {}  # waiting job → jobs of a loaded model that went first
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

    async def take(
        self, key: BatchKey, size: JobSize, max_images: int, ready: Ready | None = None
    ) -> list[Job]:
        """Wait for work; return the next batch (see :func:`pick`), up to ``max_images`` images."""
        while not self._owners:
            self._changed.clear()
            await self._changed.wait()
        order = list(self._fair_order())
        batch = pick(
            order,
            key,
            size,
            max_images,
            ready=ready,
            overtaken=self._overtaken,
            switch_after=self.switch_after,
        )
        for job_id, count in overtakes(order, batch).items():
            self._overtaken[job_id] = self._overtaken.get(job_id, 0) + count
        for job in batch:
            self._pop(job)
        return batch

    def remove(self, job_id: str) -> Job | None:
        """Take a queued job out; ``None`` if it is not queued."""
        job = next((j for j in self._fair_order() if j.id == job_id), None)
        self._overtaken.pop(job_id, None)
        if job is not None:
            self._owners[job.owner].remove(job)
            if not self._owners[job.owner]:
                del self._owners[job.owner]
        return job

    def _pop(self, job: Job) -> None:
        # The owner just had a turn: to the back of the line, or out of it when nothing is left.
        jobs = self._owners[job.owner]
        jobs.remove(job)
        self._overtaken.pop(job.id, None)
        if jobs:
            self._owners.move_to_end(job.owner)
        else:
            del self._owners[job.owner]
