"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio

from generators.requests import TERMINAL, Progress

#: Side of the images the tests generate: small enough for a fast suite, big enough for 8x latents.
TEST_SIZE = 64


async def collect(
    events: asyncio.Queue[tuple[str, Progress]], job_ids: set[str], limit_s: float = 60
) -> dict[str, list[Progress]]:
    """Read (job id, event) pairs until every job in ``job_ids`` has had its terminal event."""
    seen: dict[str, list[Progress]] = {job_id: [] for job_id in job_ids}
    pending = set(job_ids)
    async with asyncio.timeout(limit_s):
        while pending:
            job_id, event = await events.get()
            events.task_done()
            seen.setdefault(job_id, []).append(event)
            if isinstance(event, TERMINAL):
                pending.discard(job_id)
    return seen
