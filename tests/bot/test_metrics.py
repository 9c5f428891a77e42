"""Prometheus metrics: what the job events add up to, and /metrics on the web server."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import web
from bot.metrics import Metrics
from bot.settings import Settings, WebConfig
from generators.config import ModelConfig, WorkerConfig
from generators.models import Catalog, describe_model
from generators.pipelines import DiffusersBackend
from generators.requests import (
    Cancelled,
    Failed,
    Finished,
    GenerationRequest,
    GenerationResult,
    Job,
    Queued,
    Started,
    Step,
)
from generators.streams.heartbeat import WorkerStatus
from tests.bot.discord.test_delivery import judging_with
from tests.generators.test_safety import flagging
from tests.helpers import open_service


def samples(text: str) -> dict[str, float]:
    """``name{label="v"}`` → value, for every sample in an exposition."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


class FakeQueue:
    """Jobs waiting, two of tiny and one of tiny-video."""

    def __init__(self) -> None:
        models = ("tiny", "tiny", "tiny-video")
        self.jobs = [Job(f"j{i}", "u", GenerationRequest("a cat", model=m)) for i, m in enumerate(models)]

    def __len__(self) -> int:
        return len(self.jobs)

    def order(self) -> list[Job]:
        return list(self.jobs)


class FakeRunner:
    """Only what Metrics reads: the queue, the models and the workers."""

    def __init__(self) -> None:
        self.queue = FakeQueue()
        self.catalog = Catalog(
            (describe_model(ModelConfig(name="tiny")), describe_model(ModelConfig(name="tiny-video"))),
            image="tiny",
            video="tiny-video",
        )
        self.workers = [
            WorkerStatus("gpu0", ("tiny",), "cuda:0", busy=2, images_per_s=4.5),
            WorkerStatus("gpu1", ("tiny", "sd-turbo"), "cuda:1"),
        ]


def test_the_queue_and_the_workers_show_per_model() -> None:
    values = samples(Metrics(FakeRunner()).render().decode())  # type: ignore[arg-type]
    assert values['memebot_model_queue_depth{model="tiny"}'] == 2
    assert values['memebot_model_queue_depth{model="tiny-video"}'] == 1
    assert values['memebot_model_workers{model="tiny"}'] == 2
    assert values['memebot_model_workers{model="tiny-video"}'] == 0  # queued for, served by nobody
    assert values['memebot_model_workers{model="sd-turbo"}'] == 1  # served, though not in this catalog
    assert values['memebot_model_queue_depth{model="sd-turbo"}'] == 0


def test_events_become_counts_and_latencies() -> None:
    now = [100.0]
    metrics = Metrics(FakeRunner(), clock=lambda: now[0])  # type: ignore[arg-type]
    result = GenerationResult("a", (), (1,), 64, 64, 1.0)

    def at(t: float, job_id: str, event: object) -> None:
        now[0] = t
        metrics.observe(job_id, event)  # type: ignore[arg-type]

    at(100.0, "a", Queued(0, None))
    at(102.0, "a", Started(4))
    at(102.5, "a", Step(1, 2))
    at(103.0, "a", Step(2, 2))
    at(104.0, "a", Finished(result))
    at(104.0, "b", Queued(1, 3.0))
    at(105.0, "b", Failed("boom"))
    at(105.0, "c", Queued(2, 3.0))
    at(106.0, "c", Cancelled())

    values = samples(metrics.render().decode())
    assert values["memebot_queue_depth"] == 3
    assert values["memebot_workers"] == 2
    assert values['memebot_worker_busy{models="tiny",worker="gpu0"}'] == 2
    assert values['memebot_worker_busy{models="tiny,sd-turbo",worker="gpu1"}'] == 0
    assert values['memebot_worker_images_per_second{models="tiny",worker="gpu0"}'] == 4.5
    assert values['memebot_jobs_total{outcome="done"}'] == 1
    assert values['memebot_jobs_total{outcome="failed"}'] == 1
    assert values['memebot_jobs_total{outcome="cancelled"}'] == 1
    assert values["memebot_queue_wait_seconds_sum"] == 2.0
    assert values["memebot_job_seconds_sum"] == 4.0
    assert values["memebot_step_seconds_count"] == 2
    assert values["memebot_step_seconds_sum"] == 1.0
    assert values['memebot_batch_images_bucket{le="4.0"}'] == 1
    assert values['memebot_batch_images_bucket{le="3.0"}'] == 0


def test_a_job_started_twice_waits_once() -> None:
    """A job taken over by a second worker starts again: its wait is counted once, its batches twice."""
    now = [0.0]
    metrics = Metrics(FakeRunner(), clock=lambda: now[0])  # type: ignore[arg-type]
    metrics.observe("a", Queued(0, None))
    now[0] = 1.0
    metrics.observe("a", Started(1))
    now[0] = 5.0
    metrics.observe("a", Started(1))
    values = samples(metrics.render().decode())
    assert values["memebot_queue_wait_seconds_count"] == 1
    assert values["memebot_queue_wait_seconds_sum"] == 1.0
    assert values["memebot_batch_images_count"] == 2


async def test_the_web_server_serves_the_metrics_of_real_jobs(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    settings = Settings(
        worker=WorkerConfig(results_dir=tmp_path / "results"), web=WebConfig(enabled=True, port=0)
    )
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        async with web.running(settings, service) as server, aiohttp.ClientSession() as http:
            ids = []
            for text in ("one --n 2 --steps 3", "two --n 1 --steps 3"):
                record = await service.submit(service.parse(text), owner="u", platform="cli", reply_to={})
                ids.append(record.id)
            for job_id in ids:
                async for event in service.watch(job_id):
                    if isinstance(event, Finished):
                        break
            async with http.get(f"{server.url}/metrics") as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                values = samples(await response.text())
    assert values['memebot_jobs_total{outcome="done"}'] == 2
    assert values["memebot_job_seconds_count"] == 2
    assert values["memebot_queue_depth"] == 0
    assert values["memebot_workers"] == 1  # the in-process worker
    assert values['memebot_worker_busy{models="tiny",worker="local"}'] == 0
    assert values['memebot_model_workers{model="tiny"}'] == 1
    assert values['memebot_model_queue_depth{model="tiny"}'] == 0
    assert values["memebot_batch_images_count"] >= 1
    assert values["memebot_step_seconds_count"] >= 2
    assert values["memebot_results_files"] >= 2 and values["memebot_results_bytes"] > 0


async def test_flagged_results_are_counted_per_model(
    tiny_backend: DiffusersBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        worker=WorkerConfig(results_dir=tmp_path / "results"), web=WebConfig(enabled=True, port=0)
    )
    classifier = flagging(1, count=2)  # the first job's second image; the second job's are clean
    monkeypatch.setattr("generators.worker.render_job", judging_with(classifier))
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, batching=False) as service:
        async with web.running(settings, service) as server, aiohttp.ClientSession() as http:
            for text in ("one --n 2", "two --n 2"):
                record = await service.submit(service.parse(text), owner="u", platform="cli", reply_to={})
                async for event in service.watch(record.id):
                    if isinstance(event, Finished):
                        break
            async with http.get(f"{server.url}/metrics") as response:
                values = samples(await response.text())
    assert values['memebot_flagged_results_total{model="tiny"}'] == 1
    assert values['memebot_jobs_total{outcome="done"}'] == 2


def test_flagged_results_show_as_zero_before_the_first() -> None:
    values = samples(Metrics(FakeRunner()).render().decode())  # type: ignore[arg-type]
    assert values['memebot_flagged_results_total{model="tiny"}'] == 0
    assert values['memebot_flagged_results_total{model="tiny-video"}'] == 0


async def test_the_result_files_on_disk_are_measured_on_each_scrape(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    (folder / "job-1").mkdir(parents=True)
    (folder / "job-1" / "grid.png").write_bytes(b"x" * 1000)
    metrics = Metrics(FakeRunner())
    metrics.count_results(folder)
    await metrics.refresh()
    values = samples(metrics.render().decode())
    assert (values["memebot_results_bytes"], values["memebot_results_files"]) == (1000, 1)
    (folder / "job-2").mkdir()
    (folder / "job-2" / "clip.mp4").write_bytes(b"y" * 24)
    await metrics.refresh()
    values = samples(metrics.render().decode())
    assert (values["memebot_results_bytes"], values["memebot_results_files"]) == (1024, 2)
