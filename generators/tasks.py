"""Background tasks that must stop for sure: one key per piece of work, a grace period for writes.

The Reddit bot, the Discord delivery and the Redis relays each run work in the background that a
shutdown must end without losing what was half written: a task inside :meth:`TaskSupervisor.finishing`
is writing something whose record would otherwise be lost (a reply, a final post), so closing lets it
finish within a grace period; every other task is cancelled at once, its state is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], limit_s: float = 10.0) -> None:
    """Cancel ``tasks`` and wait until they end, cancelling again while they run.

    A cancel that lands while redis-py's read times out can come back as a timeout error (Python
    3.11's ``asyncio.timeout``), which a retrying loop catches and goes on: so one cancel is not enough.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + limit_s
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in pending:
        log.warning("task %s did not stop within %.0f s", task.get_name(), limit_s)


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, object], name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``work`` as a task for as long as the block lasts, then stop it for sure."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        await stop_tasks([task])


class TaskSupervisor:
    """Runs each piece of work once at a time (by key) and stops them all on :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finishing: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (no new work starts then)."""
        return self._closed

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def spawn(self, key: str, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work`` as a task unless the same work (``key``) is running or this is closed."""
        if self._closed or key in self._tasks:
            work.close()
            return False
        task = asyncio.create_task(work, name=f"{self.name}-{key}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return True

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """Within the block the current task is writing: :meth:`close` lets it finish (within its grace)."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._finishing.add(task)
        try:
            yield
        finally:
            self._finishing.discard(task)

    async def settle(self) -> None:
        """Wait until no task is running (tests; a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self, grace_s: float = 10.0) -> None:
        """Cancel the tasks that are not writing; those that are get ``grace_s`` to finish."""
        self._closed = True
        tasks = list(self._tasks.values())
        writing = [task for task in tasks if task in self._finishing]
        for task in tasks:
            if task not in self._finishing:
                task.cancel()
        if writing:
            await asyncio.wait(writing, timeout=grace_s)
        await stop_tasks(tasks)

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s work %s failed", self.name, key, exc_info=task.exception())
