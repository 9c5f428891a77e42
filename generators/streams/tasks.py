"""Background tasks that talk to Redis: stopping them for sure, and keeping small file I/O quick."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def stop_tasks(tasks: Iterable[asyncio.Task[None]], limit_s: float = 10.0) -> None:
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


#: Files up to this size are read or written on the event loop: that takes microseconds, while a
#: hand-off to a thread costs a millisecond on a busy machine, on every result.
INLINE_IO_BYTES = 1 << 20


async def file_io(size: int, call: Callable[[], T]) -> T:
    """Run the disk access ``call`` on the loop for up to INLINE_IO_BYTES, else on a thread."""
    if size <= INLINE_IO_BYTES:
        return call()
    return await asyncio.to_thread(call)
