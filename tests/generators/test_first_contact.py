"""The CUDA-only paths' failures, injected on the CPU: nothing during loading, warming up or measuring
may leave a job running for ever or the health check stuck, and out-of-memory retries free the
failed call first."""

from __future__ import annotations

import dataclasses
import gc
import logging
import weakref
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.errors import ModelLoadError
from generators.health import Health
from generators.pipelines import Backend, BatchSpec, DiffusersBackend, Slot, StepCallback, load_backend
from generators.pool import ModelPool
from generators.queue import InProcessQueue
from generators.requests import Failed, Finished, GenerationRequest, Job
from generators.worker import GenerationWorker
from tests.generators.test_pool import on_gpu  # noqa: F401  (a fixture)
from tests.helpers import TEST_SIZE, collect

TINY = ModelConfig(name="tiny", size=TEST_SIZE, steps=2)


def worker_on(pool: ModelPool, tmp_path: Path, **config: object) -> GenerationWorker:
    settings = WorkerConfig(results_dir=tmp_path / "results", per_user_queue=20, global_queue=100)
    return GenerationWorker(
        pool,
        InProcessQueue(per_user=20, total=100),
        config=settings.model_copy(update=config),
        limits=LimitsConfig(),
        render=RenderConfig(),
    )


def job(job_id: str, model: str, n: int = 1) -> Job:
    return Job(job_id, job_id, GenerationRequest("a cat", n=n, seed=1, model=model))


def loader_breaking(broken: str, error: Exception) -> object:
    def load(config: ModelConfig, name: str) -> Backend:
        if name == broken:
            raise error
        return load_backend(config, name)

    return load


@pytest.mark.expect_errors
async def test_a_plain_error_while_loading_fails_the_jobs_and_the_other_model_serves(tmp_path: Path) -> None:
    health = Health()
    pool = ModelPool(
        {"tiny": TINY, "broken": ModelConfig(name="./broken")},
        image="tiny",
        video=None,
        loader=loader_breaking("broken", AttributeError("'NoneType' object has no attribute 'config'")),  # type: ignore[arg-type]
        health=health,
        must_serve=True,
    )
    worker = worker_on(pool, tmp_path, load_models="at_start")
    async with worker:
        assert worker.warming
        worker.submit(job("bad", "broken"))
        worker.submit(job("good", "tiny"))
        events = await collect(worker.events, {"bad", "good"})
        assert not worker.warming  # the health check leaves "warming" although a model failed
    failed = events["bad"][-1]
    assert isinstance(failed, Failed) and failed.model_load
    assert "model broken could not be loaded: AttributeError" in failed.reason
    assert isinstance(events["good"][-1], Finished)
    assert "model broken" in health.problems  # a model that must serve shows in /healthz


async def test_a_compile_that_fails_while_warming_up_falls_back_to_eager(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled = ModelConfig(name="tiny", size=TEST_SIZE, steps=2, compile="default")
    seen: list[str] = []

    def load(config: ModelConfig, name: str) -> Backend:
        backend = load_backend(config, name)
        original = backend.generate

        def generate(*args: object, **kwargs: object) -> list[list[Image.Image]]:
            denoiser = type(backend.pipe.unet).__name__
            seen.append(denoiser)
            if denoiser == "OptimizedModule":  # what Triton says without a C compiler
                raise RuntimeError("InductorError: CalledProcessError: gcc: not found")
            return original(*args, **kwargs)  # type: ignore[arg-type]

        backend.generate = generate  # type: ignore[method-assign]
        return backend

    pool = ModelPool({"tiny": compiled}, image="tiny", video=None, loader=load)
    worker = worker_on(pool, tmp_path)
    async with worker:
        worker.submit(job("a", "tiny"))
        events = (await collect(worker.events, {"a"}))["a"]
    assert isinstance(events[-1], Finished)
    assert seen[0] == "OptimizedModule" and seen[-1] == "UNet2DConditionModel"
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "torch.compile failed" in r.message
    ]
    assert len(warnings) == 1


class RunsOutOnce:
    """A backend whose first call of more than one image runs out of memory, holding a tensor."""

    def __init__(self, inner: DiffusersBackend) -> None:
        self.inner = inner
        self.info = inner.info
        self.held: weakref.ref[torch.Tensor] | None = None
        self.alive_at_retry: list[bool] = []

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        if self.held is not None:
            gc.collect()
            self.alive_at_retry.append(self.held() is not None)
        if len(slots) > 1 and self.held is None:
            activations = torch.ones(1024, 1024)  # what the failed call's frames would keep alive
            self.held = weakref.ref(activations)
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        return self.inner.generate(spec, slots, on_step, pictures)

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image | None:
        return self.inner.preview(latents, index)


async def test_the_failed_calls_tensors_are_gone_before_the_retry(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    backend = RunsOutOnce(tiny_backend)
    worker = worker_on(ModelPool.serving(backend), tmp_path)  # type: ignore[arg-type]
    async with worker:
        worker.submit(job("j", "tiny", n=2))
        events = (await collect(worker.events, {"j"}))["j"]
    assert isinstance(events[-1], Finished) and len(events[-1].result.seeds) == 2
    assert backend.alive_at_retry and not any(backend.alive_at_retry)


def test_evicting_a_compiled_model_frees_its_compiled_code(monkeypatch: pytest.MonkeyPatch) -> None:
    resets: list[bool] = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append(True))
    compiled = ModelConfig(name="tiny", size=TEST_SIZE, steps=1, compile="default")
    pool = ModelPool({"a": compiled, "b": TINY}, image="a", video=None, max_loaded=1)
    monkeypatch.setattr(pool, "_warm_up", lambda name, backend: None)  # compiling is not the point here
    first = pool.acquire("a")
    assert type(first.pipe.unet).__name__ == "OptimizedModule"  # type: ignore[attr-defined]
    pool.acquire("b")  # evicts a
    assert resets == [True]
    assert type(first.pipe.unet).__name__ == "UNet2DConditionModel"  # type: ignore[attr-defined]


def test_a_new_size_on_a_compiled_model_is_compiled_once_without_a_deadline() -> None:
    pool = ModelPool({"a": TINY}, image="a", video=None)
    entry = pool._entries["a"]
    entry.shapes = {(64, 64)}
    assert not pool.compiles_for("a", 64, 64)
    assert pool.compiles_for("a", 128, 64) and not pool.compiles_for("a", 128, 64)


def test_the_recompile_budget_is_raised_for_compiled_models() -> None:
    import torch._dynamo.config as dynamo

    load_backend(ModelConfig(name="tiny", size=TEST_SIZE, steps=1, compile="default"))
    assert dynamo.recompile_limit >= 64


def test_parked_models_are_freed_beyond_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {name: TINY for name in ("a", "b", "c")}
    pool = ModelPool(configs, image="a", video=None, max_loaded=1, evict_to="cpu")

    def load(config: ModelConfig, name: str) -> Backend:
        backend = load_backend(config, name)
        monkeypatch.setattr(backend, "to", lambda device: None)
        backend.info = dataclasses.replace(backend.info, device="cuda:0")
        return backend

    pool.loader = load
    for name in ("a", "b", "c"):
        pool.acquire(name)
    parked = [name for name, entry in pool._entries.items() if entry.parked]
    assert parked == ["b"]  # a was parked, then freed when b was parked: one parked at most
    assert pool._entries["a"].backend is None


@pytest.mark.expect_errors
def test_a_model_bigger_than_its_gpu_fails_without_evicting_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("generators.pool._gpu", lambda device: device == "cuda:0")
    monkeypatch.setattr("generators.pool.total_memory", lambda device: 16 * 10**9)
    pool = ModelPool({"small": TINY, "huge": TINY}, image="small", video=None, max_loaded=1)
    pool.acquire("small")
    huge = pool._entries["huge"]
    huge.info = dataclasses.replace(huge.info, device="cuda:0")
    huge.memory_bytes = 24 * 10**9  # measured on a bigger card
    with pytest.raises(ModelLoadError, match=r"needs 24\.0 GB, more than cuda:0 has"):
        pool.acquire("huge")
    assert pool.is_loaded("small")


@pytest.mark.usefixtures("on_gpu")
def test_measured_limits_are_measured_again_once_another_model_loads(tiny_backend: DiffusersBackend) -> None:
    from tests.generators.test_pool import FitsThree

    pool = ModelPool({"a": TINY, "b": TINY}, image="a", video=None, max_loaded=2)
    pool.measure_batches = True
    backend = FitsThree(tiny_backend)
    spec = BatchSpec(64, 64, 2)
    assert pool.batch_limit("a", backend, spec, fallback=8) == 2  # type: ignore[arg-type]
    pool.acquire("b")  # less memory is left for a's calls now
    backend.calls.clear()
    pool.batch_limit("a", backend, spec, fallback=8)  # type: ignore[arg-type]
    assert backend.calls  # measured again


@pytest.mark.usefixtures("on_gpu")
def test_clips_run_one_per_call_where_batches_are_measured(tiny_video_backend: DiffusersBackend) -> None:
    pool = ModelPool.serving(tiny_video_backend)
    pool.measure_batches = True
    assert pool.batch_limit("tiny-video", tiny_video_backend, BatchSpec(64, 64, 2, frames=8), fallback=8) == 1
