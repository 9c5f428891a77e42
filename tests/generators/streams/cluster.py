"""Bots and workers on one Redis, put together as ``memebot run`` and ``memebot worker`` do it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.__main__ import instance_name
from bot.jobs import JobService
from bot.store import Store
from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.health import Health
from generators.models import Catalog, describe_model
from generators.pipelines import DiffusersBackend
from generators.pool import ModelPool
from generators.requests import TERMINAL, Finished, Job, Progress
from generators.sources import SourceStore, sources_folder
from generators.streams.heartbeat import WorkerStatus, announce
from generators.streams.keys import Keys
from generators.streams.relay import Relay, heartbeat_interval
from generators.streams.submit import RedisRunner
from generators.streams.take import RedisQueue
from generators.worker import GenerationWorker
from tests.helpers import TEST_SIZE

#: What a bot expects its workers to run: the tiny presets as the tests load them.
TINY = describe_model(ModelConfig(name="tiny", size=TEST_SIZE, steps=2))
TINY_VIDEO = describe_model(ModelConfig(name="tiny-video", size=TEST_SIZE, steps=2, frames=8))
TINY_ONLY = Catalog((TINY,), image="tiny")
BOTH = Catalog((TINY, TINY_VIDEO), image="tiny", video="tiny-video")


async def stand_in(
    client: Redis, keys: Keys, models: Iterable[str] = ("tiny",), name: str = "stand-in"
) -> None:
    """A heartbeat for workers that send none (bare queues), so bots accept jobs of ``models``."""
    await announce(client, keys, WorkerStatus(name, tuple(models), "cpu"), ttl_s=600)


def steps(job: Job) -> int | None:
    """A batch key: jobs with equal steps share a call."""
    return job.request.steps


def images(job: Job) -> int:
    """A job's size in a batch."""
    return job.request.n


def taker(
    client: Redis,
    keys: Keys,
    name: str,
    claim_idle_s: float = 10.0,
    *,
    models: Iterable[str] = ("tiny",),
    switch_after: int | None = None,
) -> RedisQueue:
    """A bare worker queue serving ``models``, without a pipeline or a heartbeat."""
    return RedisQueue(
        client,
        keys,
        name=name,
        models=models,
        claim_idle_s=claim_idle_s,
        max_deliveries=3,
        switch_after=switch_after,
    )


@contextlib.asynccontextmanager
async def bot(
    client: Redis,
    keys: Keys,
    folder: Path,
    *,
    per_user: int = 3,
    total: int = 50,
    catalog: Catalog = TINY_ONLY,
    refresh_s: float = 0.2,
    health: Health | None = None,
    **runner: Any,
) -> AsyncIterator[JobService]:
    """A bot process: its own store and results under ``folder``, jobs run by Redis workers.

    ``runner`` passes more settings to its ``RedisRunner`` (the pictures' budget and TTL).
    """
    async with Store.open(folder / "jobs.db") as store:
        redis_runner = RedisRunner(
            client,
            keys,
            instance=await instance_name(store),
            catalog=catalog,
            results_dir=folder / "results",
            per_user=per_user,
            total=total,
            refresh_s=refresh_s,
            health=health,
            **runner,
        )
        async with redis_runner:
            sources = SourceStore.beside(folder / "results", LimitsConfig())
            service = JobService(
                store,
                redis_runner,
                LimitsConfig(),
                budget_bytes=10 * 1024 * 1024,
                sources=sources,
                health=health,
            )
            async with service:
                yield service


@contextlib.asynccontextmanager
async def worker(
    backend: DiffusersBackend,
    client: Redis,
    keys: Keys,
    name: str,
    spool: Path,
    *,
    claim_idle_s: float = 10.0,
    max_deliveries: int = 3,
    health: Health | None = None,
    **config: object,
) -> AsyncIterator[Relay]:
    """A GPU worker process's parts: the Redis queue, the generation worker and its relay."""
    pool = ModelPool.serving(backend)
    settings = WorkerConfig(results_dir=spool / name).model_copy(update=config)
    queue = RedisQueue(
        client,
        keys,
        name=name,
        models=pool.catalog.names,
        claim_idle_s=claim_idle_s,
        max_deliveries=max_deliveries,
        switch_after=settings.switch_after,
        sources=sources_folder(settings.results_dir),
        health=health,
    )
    generation = GenerationWorker(pool, queue, config=settings, limits=LimitsConfig(), render=RenderConfig())
    queue.on_cancel(generation.cancel)
    relay = Relay(
        client, keys, queue, generation, result_ttl_s=600, heartbeat_s=heartbeat_interval(claim_idle_s)
    )
    async with queue, relay, generation:
        yield relay


class Heard:
    """A platform handler that keeps what it hears, per job."""

    def __init__(self) -> None:
        self.events: defaultdict[str, list[Progress]] = defaultdict(list)
        self.order: list[tuple[str, Progress]] = []  # across jobs, as heard
        self._changed = asyncio.Event()

    def __call__(self, job_id: str, event: Progress) -> None:
        self.events[job_id].append(event)
        self.order.append((job_id, event))
        self._changed.set()

    def ends(self, job_id: str) -> list[Progress]:
        """The terminal events heard for ``job_id`` (one, when delivery is right)."""
        return [event for event in self.events[job_id] if isinstance(event, TERMINAL)]

    def finished(self, job_id: str) -> Finished:
        """The one Finished event of ``job_id``."""
        (end,) = self.ends(job_id)
        assert isinstance(end, Finished), end
        return end

    async def until(
        self, job_ids: Iterable[str], kind: type[Progress] = Finished, limit_s: float = 60
    ) -> None:
        """Wait until every job in ``job_ids`` had an event of type ``kind``."""
        wanted = set(job_ids)
        async with asyncio.timeout(limit_s):
            while not all(any(isinstance(e, kind) for e in self.events[j]) for j in wanted):
                self._changed.clear()
                await self._changed.wait()


def write_config(
    folder: Path, keys: Keys, redis_url: str, queue_extra: str = "", *, video: bool = False
) -> Path:
    """A config.yaml for ``memebot`` processes on the tiny model (and tiny-video) and this test's prefix."""
    config = folder / "config.yaml"
    entries = f"tiny: {{size: {TEST_SIZE}, steps: 2}}"
    if video:
        entries += f", tiny-video: {{size: {TEST_SIZE}, steps: 2, frames: 8}}"
    config.write_text(
        f"models: {{image: tiny, video: {'tiny-video' if video else 'null'}, entries: {{{entries}}}}}\n"
        f"store:\n  path: {folder / 'bot.db'}\n"
        f"worker:\n  results_dir: {folder / 'results'}\n"
        f"queue:\n  backend: redis\n  redis_url: {redis_url}\n  prefix: {keys.prefix}\n{queue_extra}"
    )
    return config


async def start_worker(config: Path, name: str, models: str = "") -> asyncio.subprocess.Process:
    """``memebot worker --name NAME [--models M]`` in its own process, its output in NAME.log."""
    only = ("--models", models) if models else ()
    with (config.parent / f"{name}.log").open("w") as log:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "--config", str(config), "worker", "--name", name, *only),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
