"""Prometheus metrics of one bot: queue depth, jobs by outcome, latencies, batch sizes, workers.

Per model: the jobs waiting for it and the live workers serving it, so a model nobody serves shows, and
the results the image classifier flagged.

They are measured from the job service's events, so they read the same with the in-process worker and
with Redis workers (where latencies include the trip through Redis). Each bot has its own registry;
serve it with :func:`add_routes`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.jobs import JobService
from bot.runners import Runner
from bot.store import Store
from generators.requests import Cancelled, Failed, Finished, Progress, Started, Step

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_STEP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_IMAGES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


@dataclass(slots=True)
class _Timing:
    queued: float
    started: bool = False
    last_step: float | None = None


class Metrics:
    """The metrics of the jobs a runner runs; feed it with :meth:`observe`."""

    def __init__(self, runner: Runner, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        registry = self.registry
        depth = Gauge("memebot_queue_depth", "Jobs waiting for a worker.", registry=registry)
        depth.set_function(lambda: len(runner.queue))
        workers = Gauge("memebot_workers", "Workers serving this bot (live heartbeats).", registry=registry)
        workers.set_function(lambda: len(runner.workers))
        registry.register(_WorkerCollector(runner))
        registry.register(_ModelCollector(runner))
        self.jobs = Counter("memebot_jobs", "Jobs that ended, by outcome.", ["outcome"], registry=registry)
        for outcome in ("done", "failed", "cancelled"):
            self.jobs.labels(outcome)  # shown as 0 before the first one
        self.wait = Histogram(
            "memebot_queue_wait_seconds", "From queued to started.", buckets=_SECONDS, registry=registry
        )
        self.latency = Histogram(
            "memebot_job_seconds", "From queued to done (done jobs).", buckets=_SECONDS, registry=registry
        )
        self.step = Histogram(
            "memebot_step_seconds",
            "Time per denoising step, per job.",
            buckets=_STEP_SECONDS,
            registry=registry,
        )
        self.batch = Histogram(
            "memebot_batch_images",
            "Images in the pipeline call each job ran in.",
            buckets=_IMAGES,
            registry=registry,
        )
        self.flagged = Counter(
            "memebot_flagged_results",
            "Results the image classifier flagged, by model.",
            ["model"],
            registry=registry,
        )
        for name in runner.catalog.names:
            self.flagged.labels(name)  # shown as 0 before the first one
        self._timings: dict[str, _Timing] = {}
        self.results: _ResultsCollector | None = None
        #: Where a flagged job's model is looked up; flagged jobs wait in ``_flagged`` for the next scrape.
        self.store: Store | None = None
        self._flagged: list[str] = []

    def count_results(self, folder: Path) -> None:
        """Also report the size of the result files in ``folder`` (measured on each scrape)."""
        self.results = _ResultsCollector(folder)
        self.registry.register(self.results)

    async def refresh(self) -> None:
        """Measure what is slow to measure, off the event loop, and count the flagged results by model
        (the events do not name it, the store does): call before :meth:`render`."""
        if self.results is not None:
            await asyncio.to_thread(self.results.measure)
        flagged, self._flagged = self._flagged, []
        for job_id in flagged:
            record = None if self.store is None else await self.store.get(job_id)
            self.flagged.labels((record.job.request.model if record else None) or "unknown").inc()

    @classmethod
    def following(cls, service: JobService) -> Metrics:
        """Metrics of ``service``'s jobs from now on."""
        metrics = cls(service.runner)
        metrics.store = service.store
        service.observe(metrics.observe)
        return metrics

    def observe(self, job_id: str, event: Progress) -> None:
        """Account for one event."""
        now = self.clock()
        timing = self._timings.setdefault(job_id, _Timing(queued=now))
        match event:
            case Started(batch_size=size):
                if not timing.started:  # a job taken over by another worker starts twice
                    self.wait.observe(now - timing.queued)
                    timing.started = True
                self.batch.observe(size)
                timing.last_step = now
            case Step():
                if timing.last_step is not None:
                    self.step.observe(now - timing.last_step)
                timing.last_step = now
            case Finished(result=result):
                self.jobs.labels("done").inc()
                self.latency.observe(now - timing.queued)
                if result.flagged:
                    self._flagged.append(job_id)
            case Failed():
                self.jobs.labels("failed").inc()
            case Cancelled():
                self.jobs.labels("cancelled").inc()
        if isinstance(event, Finished | Failed | Cancelled):
            del self._timings[job_id]

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class _WorkerCollector(Collector):
    """One sample per live worker: its running jobs and its measured speed (``models``: comma-joined)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        """The workers as of the runner's last look."""
        labels = ["worker", "models"]
        busy = GaugeMetricFamily("memebot_worker_busy", "Jobs a worker is running.", labels=labels)
        speed = GaugeMetricFamily(
            "memebot_worker_images_per_second", "A worker's measured speed.", labels=labels
        )
        for worker in self.runner.workers:
            values = [worker.name, ",".join(worker.models)]
            busy.add_metric(values, worker.busy)
            if worker.images_per_s is not None:
                speed.add_metric(values, worker.images_per_s)
        yield busy
        yield speed


class _ModelCollector(Collector):
    """One sample per model (the catalog's, and any a worker serves): jobs waiting, workers serving it."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        """The queue and the workers as of the runner's last look."""
        workers = self.runner.workers
        waiting = collections.Counter(job.request.model or "" for job in self.runner.queue.order())
        models = dict.fromkeys([*self.runner.catalog.names, *(m for w in workers for m in w.models)])
        depth = GaugeMetricFamily("memebot_model_queue_depth", "Jobs waiting, by model.", labels=["model"])
        serving = GaugeMetricFamily(
            "memebot_model_workers", "Live workers serving each model.", labels=["model"]
        )
        for model in models:
            depth.add_metric([model], waiting[model])
            serving.add_metric([model], sum(w.serves(model) for w in workers))
        yield depth
        yield serving


class _ResultsCollector(Collector):
    """The bytes and files under the results folder: what retention keeps bounded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bytes = 0
        self.files = 0

    def measure(self) -> None:
        """Walk the folder (blocking)."""
        size = count = 0
        for root, _, names in os.walk(self.folder):
            for name in names:
                try:
                    size += os.stat(os.path.join(root, name)).st_size
                except OSError:  # deleted while walking
                    continue
                count += 1
        self.bytes, self.files = size, count

    def collect(self) -> Iterator[Metric]:
        """The last measurement."""
        yield GaugeMetricFamily("memebot_results_bytes", "Bytes of result files on disk.", value=self.bytes)
        yield GaugeMetricFamily("memebot_results_files", "Result files on disk.", value=self.files)


METRICS = web.AppKey("metrics", Metrics)


def add_routes(app: web.Application, metrics: Metrics) -> None:
    """Serve ``metrics`` at ``/metrics`` (add before any catch-all route such as ``/{job_id}``)."""
    app[METRICS] = metrics
    app.router.add_get("/metrics", handle)


async def handle(request: web.Request) -> web.Response:
    """GET /metrics."""
    metrics = request.app[METRICS]
    await metrics.refresh()
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
