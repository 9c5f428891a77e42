"""The CUDA-only paths end to end through memebot's worker on the ``tiny`` model.

What no CPU run reaches: half precision on the card, a compiled model's warm-up (CUDA graphs with
``reduce-overhead``), the measured batch limit, and splitting a call that runs out of memory. Skipped
without CUDA (see ``conftest.py``); ``benchmarks/gpu_check.sh`` runs them first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.pipelines import BatchSpec, Slot
from generators.pool import MEASURED_CAP, ModelPool
from generators.queue import InProcessQueue
from generators.requests import Finished, GenerationRequest, Job, Progress, Started
from generators.worker import GenerationWorker
from tests.helpers import TEST_SIZE, collect

pytestmark = pytest.mark.gpu

#: Generous: the first CUDA call of a process, and a compilation, take a while.
LIMIT_S = 300
MIB = 1024**2


def tiny(**settings: object) -> ModelConfig:
    """The tiny image model on the GPU in half precision, unless ``settings`` say otherwise."""
    base: dict[str, object] = {
        "name": "tiny",
        "device": "cuda",
        "dtype": "float16",
        "size": TEST_SIZE,
        "steps": 2,
    }
    return ModelConfig.model_validate(base | settings)


def pool_of(config: ModelConfig, **options: Any) -> ModelPool:
    return ModelPool({"tiny": config}, image="tiny", video=None, max_loaded=1, **options)


def worker_of(pool: ModelPool, config: WorkerConfig) -> GenerationWorker:
    queue = InProcessQueue(per_user=20, total=100)
    return GenerationWorker(pool, queue, config=config, limits=LimitsConfig(), render=RenderConfig())


async def run_job(worker: GenerationWorker, job_id: str, n: int) -> list[Progress]:
    """Submit one job of ``n`` images and return its events up to the terminal one."""
    worker.submit(Job(job_id, "gpu-user", GenerationRequest("a cat in a hat", seed=7, n=n, model="tiny")))
    return (await collect(worker.events, {job_id}, limit_s=LIMIT_S))[job_id]


def finished(events: list[Progress], images: int) -> Finished:
    final = events[-1]
    assert isinstance(final, Finished), final
    assert len(final.result.seeds) == images
    return final


@pytest.fixture(autouse=True)
def clean_card() -> Iterator[None]:
    """Each test starts and ends with nothing compiled and the whole card allowed."""
    torch._dynamo.reset()
    yield
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch._dynamo.reset()
    torch.cuda.empty_cache()


async def test_a_half_precision_model_serves_a_grid_on_the_card(worker_config: WorkerConfig) -> None:
    pool = pool_of(tiny())
    async with worker_of(pool, worker_config) as worker:
        finished(await run_job(worker, "gpu-fp16-job", 4), 4)
    info = pool.info("tiny")
    assert info.device.startswith("cuda") and info.dtype == "float16"


async def test_auto_dtype_is_bfloat16_only_on_a_card_with_bf16_tensor_cores(
    worker_config: WorkerConfig,
) -> None:
    pool = pool_of(tiny(dtype="auto"))
    async with worker_of(pool, worker_config) as worker:
        finished(await run_job(worker, "gpu-auto-job", 2), 2)
    native = torch.cuda.get_device_capability() >= (8, 0)
    assert pool.info("tiny").dtype == ("bfloat16" if native else "float16")


@pytest.mark.timeout(2 * LIMIT_S)
async def test_a_compiled_model_is_warmed_up_before_members_jobs(worker_config: WorkerConfig) -> None:
    """Warm-up compiles (and records CUDA graphs for) the batches served: a member's job compiles nothing."""
    config = worker_config.model_copy(update={"max_batch": 4})
    pool = pool_of(tiny(compile="reduce-overhead"), warm_batches=(1, 4))
    worker = worker_of(pool, config)
    assert pool.compiled
    await asyncio.to_thread(pool.load_all)  # what the worker does while /healthz says warming
    backend = await asyncio.to_thread(pool.acquire, "tiny")
    unet = getattr(getattr(backend, "pipe", None), "unet", None)
    assert type(unet).__name__ == "OptimizedModule", "compiling failed here: see the warning logged"
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs > 0
    async with worker:
        finished(await run_job(worker, "gpu-compiled-1", 1), 1)
        finished(await run_job(worker, "gpu-compiled-4", 4), 4)
        assert not worker.warming
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


async def test_the_batch_limit_is_measured_on_the_card(worker_config: WorkerConfig) -> None:
    config = worker_config.model_copy(update={"max_batch": 2, "measure_batch": True})
    pool = pool_of(tiny(), measure_batches=True)
    async with worker_of(pool, config) as worker:
        events = await run_job(worker, "gpu-measured-job", 9)
    finished(events, 9)
    starts = [e for e in events if isinstance(e, Started)]
    assert starts and starts[0].batch_size == 9  # one take of 9, not max_batch's 2: the limit is measured
    backend = await asyncio.to_thread(pool.acquire, "tiny")
    limit = pool.batch_limit("tiny", backend, BatchSpec(TEST_SIZE, TEST_SIZE, 2), 1)
    assert 9 <= limit <= MEASURED_CAP  # what the card fits of tiny at 64 px, not the fallback of 1


def peak_bytes(pool: ModelPool, images: int, size: int) -> int:
    """Most memory one call of ``images`` takes beyond what was allocated before it."""
    backend = pool.acquire("tiny")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    slots = [Slot("a cat in a hat", "", seed) for seed in range(images)]
    backend.generate(BatchSpec(size, size, 1), slots, lambda *a: None)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


async def test_a_call_that_runs_out_of_memory_is_split_and_every_image_comes(
    worker_config: WorkerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The card is capped to fit two images of a call but not four: a job of 8 still gets all 8."""
    size = 512
    pool = pool_of(tiny(size=size, steps=1))
    one, two = peak_bytes(pool, 1, size), peak_bytes(pool, 2, size)
    per_image = two - one
    assert per_image > 8 * MIB, f"too little memory per image to cap between 2 and 4: {per_image}"
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved() + (one - per_image) + 3 * per_image
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(0).total_memory)
    config = worker_config.model_copy(update={"max_batch": 8})
    caplog.set_level(logging.WARNING, logger="generators.worker")
    async with worker_of(pool, config) as worker:
        finished(await run_job(worker, "gpu-oom-split-job", 8), 8)
    splits = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert splits, "the call of 8 fitted: the cap did not bite"
