"""The worker's models: first-use loading, least-recently-used eviction, budgets and broken models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from generators.config import ModelConfig, ModelsConfig, WorkerConfig
from generators.errors import ModelLoadError
from generators.pipelines import Backend, BatchSpec, DiffusersBackend, Slot, StepCallback, load_backend
from generators.pool import ModelPool
from tests.helpers import TEST_SIZE

CONFIGS = {
    "tiny": ModelConfig(name="tiny", size=TEST_SIZE, steps=2),
    "tiny-video": ModelConfig(name="tiny-video", size=TEST_SIZE, steps=2, frames=8),
    "broken": ModelConfig(name="./no/such/folder"),
}


class CountingLoader:
    """The real loader, counting what it loads."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, config: ModelConfig, name: str) -> Backend:
        self.loads.append(name)
        return load_backend(config, name)


def pool_of(max_loaded: int, max_memory_bytes: int | None = None) -> tuple[ModelPool, CountingLoader]:
    loader = CountingLoader()
    pool = ModelPool(
        CONFIGS,
        image="tiny",
        video="tiny-video",
        max_loaded=max_loaded,
        max_memory_bytes=max_memory_bytes,
        loader=loader,
    )
    return pool, loader


def loaded(pool: ModelPool) -> set[str]:
    return {state.name for state in pool.states() if state.loaded}


def test_models_load_on_first_use_and_stay_until_evicted() -> None:
    pool, loader = pool_of(max_loaded=2)
    assert loaded(pool) == set() and pool.catalog.names == ["tiny", "tiny-video", "broken"]
    image = pool.acquire("tiny")
    assert image.info.name == "tiny" and pool.acquire("tiny") is image
    pool.acquire("tiny-video")
    assert loader.loads == ["tiny", "tiny-video"] and loaded(pool) == {"tiny", "tiny-video"}
    state = {s.name: s for s in pool.states()}["tiny"]
    assert state.load_s is not None and state.memory_bytes is not None and state.memory_bytes > 0
    assert pool.load_estimate("tiny") == 0.0


def test_one_loaded_model_means_the_least_recently_used_goes() -> None:
    pool, loader = pool_of(max_loaded=1)
    pool.acquire("tiny")
    pool.acquire("tiny-video")
    assert loaded(pool) == {"tiny-video"}
    assert pool.load_estimate("tiny") > 0  # measured when it loaded
    pool.acquire("tiny")
    assert loader.loads == ["tiny", "tiny-video", "tiny"] and loaded(pool) == {"tiny"}


def test_a_memory_budget_evicts_until_the_loaded_models_fit() -> None:
    pool, _ = pool_of(max_loaded=3, max_memory_bytes=1)  # smaller than any model: one at a time
    pool.acquire("tiny")
    pool.acquire("tiny-video")
    assert loaded(pool) == {"tiny-video"}


@pytest.mark.expect_errors
def test_a_model_that_cannot_load_fails_alone_and_is_remembered() -> None:
    pool, loader = pool_of(max_loaded=2)
    with pytest.raises(ModelLoadError, match="does not exist"):
        pool.acquire("broken")
    with pytest.raises(ModelLoadError, match="does not exist"):
        pool.acquire("broken")  # within retry_s: not tried again
    assert loader.loads == ["broken"]
    assert pool.acquire("tiny").info.name == "tiny"
    states = {s.name: s for s in pool.states()}
    assert "does not exist" in states["broken"].error and not states["broken"].loaded


@pytest.mark.expect_errors
def test_loading_at_start_loads_the_defaults_first_and_skips_a_broken_model() -> None:
    pool, loader = pool_of(max_loaded=3)
    pool.load_all()
    assert loader.loads == ["tiny", "tiny-video", "broken"]
    assert loaded(pool) == {"tiny", "tiny-video"}


def test_the_pool_follows_the_config(tmp_path: Path) -> None:
    models = ModelsConfig(
        entries={"tiny": ModelConfig(), "clip": ModelConfig(name="tiny-video")}, video="clip"
    )
    pool = ModelPool.from_config(models, WorkerConfig(max_loaded_models=1, max_model_memory_gb=2.0))
    assert (pool.max_loaded, pool.max_memory_bytes, pool.catalog.video) == (1, 2 * 1024**3, "clip")
    only = ModelPool.from_config(models, WorkerConfig(), only=["clip"])
    assert only.catalog.names == ["clip"] and (only.catalog.image, only.catalog.video) == (None, "clip")


class CountingCalls:
    """A loaded backend that counts its pipeline calls by batch size."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.info = backend.info
        self.calls: list[int] = []

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        self.calls.append(len(slots))
        return self.backend.generate(spec, slots, on_step, pictures)

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image:
        return self.backend.preview(latents, index)


def test_a_compiled_model_is_warmed_up_for_each_batch_size_before_it_serves() -> None:
    loaded: list[CountingCalls] = []

    def loader(config: ModelConfig, name: str) -> Backend:
        # The pool decides on warming from the entry's settings; compiling itself is the loader's.
        loaded.append(CountingCalls(load_backend(config.model_copy(update={"compile": "off"}), name)))
        return loaded[-1]

    configs = {"fast": ModelConfig(name="tiny", size=TEST_SIZE, steps=1, compile="default"), **CONFIGS}
    pool = ModelPool(configs, image="fast", video=None, loader=loader, warm_batches=(1, 4))
    pool.acquire("fast")
    assert loaded[-1].calls == [1, 4]
    pool.acquire("tiny")  # not compiled: nothing to warm up
    assert loaded[-1].calls == []


class FitsThree(CountingCalls):
    """A backend whose 'GPU' holds at most three images per call."""

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        self.calls.append(len(slots))
        if len(slots) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        return self.backend.generate(spec, slots, on_step, pictures)


@pytest.fixture
def on_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny model's device counts as a CUDA one (measuring only happens there)."""
    monkeypatch.setattr("generators.pool._gpu", lambda device: device in ("cpu", "cuda:0"))


@pytest.mark.usefixtures("on_gpu")
def test_the_largest_batch_is_measured_once_per_model_and_size(tiny_backend: DiffusersBackend) -> None:
    backend = FitsThree(tiny_backend)
    pool = ModelPool.serving(backend)  # type: ignore[arg-type]
    pool.measure_batches = True
    spec = BatchSpec(64, 64, 2)
    # Three fit at the edge; a quarter is kept free for real prompts and fragmentation.
    assert pool.batch_limit("tiny", backend, spec, fallback=8) == 2
    assert backend.calls == [1, 2, 4, 3]  # doubling until it missed, then the gap halved
    assert pool.batch_limit("tiny", backend, spec, fallback=8) == 2 and backend.calls == [1, 2, 4, 3]
    assert pool.batch_limit("tiny", backend, BatchSpec(128, 64, 2), fallback=8) == 2  # a new size: measured
    pool.measure_batches = False
    assert pool.batch_limit("tiny", backend, BatchSpec(64, 128, 2), fallback=8) == 8  # CPUs: the setting


@pytest.mark.usefixtures("on_gpu")
def test_a_real_out_of_memory_lowers_the_measured_limit(tiny_backend: DiffusersBackend) -> None:
    backend = FitsThree(tiny_backend)
    pool = ModelPool.serving(backend)  # type: ignore[arg-type]
    pool.measure_batches = True
    spec = BatchSpec(64, 64, 2)
    pool._batch_limits[("tiny", 64, 64)] = 6  # measured on a quieter card
    pool.lower_limit("tiny", spec, 6)
    assert pool.batch_limit("tiny", backend, spec, fallback=8) == 3
    assert backend.calls == []  # lowered, not measured again


def test_a_model_on_the_cpu_of_a_cuda_host_is_not_measured(tiny_backend: DiffusersBackend) -> None:
    backend = FitsThree(tiny_backend)
    pool = ModelPool.serving(backend)  # type: ignore[arg-type]
    pool.measure_batches = True  # the host has CUDA, but this model runs on its CPU
    assert pool.batch_limit("tiny", backend, BatchSpec(64, 64, 2), fallback=8) == 8
    assert backend.calls == []
