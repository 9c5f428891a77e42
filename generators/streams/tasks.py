"""Stopping background tasks that talk to Redis, even when a cancel gets lost on the way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)


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
