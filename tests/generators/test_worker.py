"""The worker on the real tiny pipeline: batching, fairness, progress, cancel, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.models import ModelInfo
from generators.pipelines import BatchSpec, DiffusersBackend, Slot, StepCallback, load_backend
from generators.pool import GUESSED_LOAD_S, ModelPool
from generators.queue import InProcessQueue
from generators.render import read_metadata
from generators.requests import (
    Cancelled,
    Failed,
    Finished,
    GenerationRequest,
    Job,
    Kind,
    Phase,
    Preview,
    Progress,
    Queued,
    Started,
    Step,
)
from generators.worker import INTERNAL_REASON, OOM_REASON, GenerationWorker, WorkerState
from tests.generators.test_pool import on_gpu  # noqa: F401  (a fixture)
from tests.helpers import TEST_SIZE, collect


class Recording:
    """Wraps the real backend: records each call's prompts, optionally fails or slows some calls."""

    def __init__(
        self,
        inner: DiffusersBackend,
        fail: Callable[[Sequence[Slot]], BaseException | None] = lambda slots: None,
        step_delay: float = 0.0,
    ) -> None:
        self.inner = inner
        self.info: ModelInfo = inner.info
        self.fail = fail
        self.step_delay = step_delay
        self.calls: list[list[str]] = []
        self.thread_names: set[str] = set()

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        self.calls.append([slot.prompt for slot in slots])
        self.thread_names.add(threading.current_thread().name)
        error = self.fail(slots)
        if error is not None:
            raise error

        def slow_step(i: int, n: int, latents: torch.Tensor) -> None:
            threading.Event().wait(self.step_delay)
            on_step(i, n, latents)

        return self.inner.generate(spec, slots, slow_step if self.step_delay else on_step, pictures)

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image:
        return self.inner.preview(latents, index)


def job(job_id: str, owner: str = "alice", **request: object) -> Job:
    values: dict[str, object] = {"prompt": f"a picture of {job_id}", "seed": 7, "n": 1}
    values.update(request)
    return Job(job_id, owner, GenerationRequest(**values))  # type: ignore[arg-type]


@pytest.fixture
async def make_worker(
    worker_config: WorkerConfig, limits: LimitsConfig, render_config: RenderConfig
) -> AsyncIterator[Callable[..., GenerationWorker]]:
    workers: list[GenerationWorker] = []

    def make(backend: object, switch_after: int | None = None, **config: object) -> GenerationWorker:
        queue = InProcessQueue(per_user=20, total=100, switch_after=switch_after)
        worker = GenerationWorker(
            backend,  # type: ignore[arg-type]
            queue,
            config=worker_config.model_copy(update=config),
            limits=limits,
            render=render_config,
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop(grace=30)


def pixels(result_path: Path) -> np.ndarray:
    return np.asarray(Image.open(result_path).convert("RGB"), dtype=np.int16)


async def test_a_job_goes_through_and_its_file_carries_the_command(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(tiny_backend)
    worker.start()
    worker.submit(job("j1", n=4, top="hello"))
    events = (await collect(worker.events, {"j1"}))["j1"]
    assert isinstance(events[0], Queued) and events[0].position == 0
    assert isinstance(events[1], Started)
    assert [e for e in events if isinstance(e, Step)] == [Step(1, 2), Step(2, 2)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    result = finished.result
    assert result.seeds == (7, 8, 9, 10)
    with Image.open(result.primary.path) as image:
        assert image.size == (2 * TEST_SIZE, 2 * TEST_SIZE)  # 2x2 grid
    meta = read_metadata(result.primary.path.read_bytes())
    assert meta["seed"] == "7" and meta["prompt"] == "a picture of j1"
    assert "--top hello" in meta["command"] and "--n 4" in meta["command"]


async def test_batched_images_equal_the_same_seeds_alone(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    recording = Recording(tiny_backend)
    worker = make_worker(recording, max_batch=8)
    for name, seed, owner in (("a", 11, "alice"), ("b", 22, "bob"), ("c", 33, "carol")):
        worker.submit(job(name, owner, seed=seed, negative="blurry" if name == "b" else ""))
    worker.start()  # all three are queued before the worker looks: one call
    batched = await collect(worker.events, {"a", "b", "c"})
    assert len(recording.calls) == 1 and len(recording.calls[0]) == 3

    alone_worker = make_worker(tiny_backend, batching=False)
    alone_worker.start()
    alone_worker.submit(job("b-alone", "bob", seed=22, negative="blurry", prompt="a picture of b"))
    alone = await collect(alone_worker.events, {"b-alone"})

    in_batch = batched["b"][-1]
    by_itself = alone["b-alone"][-1]
    assert isinstance(in_batch, Finished) and isinstance(by_itself, Finished)
    difference = np.abs(pixels(in_batch.result.primary.path) - pixels(by_itself.result.primary.path))
    # Batched kernels add in another order: a rounding step at most, never another picture.
    assert difference.max() <= 2


def test_a_shared_generator_would_not_be_equivalent(tiny_backend: DiffusersBackend) -> None:
    """Why the worker seeds one generator per image: a shared one gives image 2 other noise."""
    pipe = tiny_backend.pipe
    common = {"num_inference_steps": 2, "width": 64, "height": 64, "output_type": "np"}
    shared = pipe(["x", "y"], generator=torch.Generator().manual_seed(5), **common).images
    alone = pipe(["y"], generator=torch.Generator().manual_seed(5), **common).images
    assert np.abs(shared[1] - alone[0]).max() > 0.05


async def test_fair_order_without_batching(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    recording = Recording(tiny_backend)
    worker = make_worker(recording, batching=False)
    for i in range(4):
        worker.submit(job(f"a{i}", "alice"))
    worker.submit(job("b0", "bob"))
    worker.submit(job("c0", "carol"))
    worker.start()
    await collect(worker.events, {"a0", "a1", "a2", "a3", "b0", "c0"})
    order = [call[0].removeprefix("a picture of ") for call in recording.calls]
    assert order == ["a0", "b0", "c0", "a1", "a2", "a3"]
    assert recording.thread_names == {"memebot-gpu_0"}


async def test_queued_events_give_positions_and_an_eta_once_measured(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(tiny_backend, batching=False)
    worker.start()
    worker.submit(job("warm"))
    await collect(worker.events, {"warm"})
    for name in ("x", "y", "z"):
        worker.submit(job(name, name))
    events = await collect(worker.events, {"x", "y", "z"})
    first_queued = [next(e for e in events[n] if isinstance(e, Queued)) for n in ("x", "y", "z")]
    assert [q.position for q in first_queued] == [0, 1, 2]
    assert first_queued[2].eta_s is not None and first_queued[2].eta_s > 0
    z_positions = [e.position for e in events["z"] if isinstance(e, Queued)]
    assert z_positions == sorted(z_positions, reverse=True) and z_positions[-1] == 0


async def test_previews_every_k_steps(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(tiny_backend, preview_every=2)
    worker.start()
    worker.submit(job("p", steps=6))
    events = (await collect(worker.events, {"p"}))["p"]
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [2, 4]
    assert previews[0].png.startswith(b"\x89PNG")


async def test_cancel_a_queued_job(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(tiny_backend)
    worker.submit(job("q1"))
    worker.submit(job("q2", "bob"))
    assert worker.cancel("q1")
    assert not worker.cancel("q1")
    worker.start()
    events = await collect(worker.events, {"q1", "q2"})
    assert isinstance(events["q1"][-1], Cancelled)
    assert not any(isinstance(e, Started) for e in events["q1"])
    assert isinstance(events["q2"][-1], Finished)


async def test_cancel_a_running_job_at_its_next_step(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    recording = Recording(tiny_backend, step_delay=0.05)
    worker = make_worker(recording)
    worker.start()
    worker.submit(job("long", steps=30))
    steps_seen = 0
    while True:
        _, event = await asyncio.wait_for(worker.events.get(), 30)
        if isinstance(event, Step):
            steps_seen = event.i
            if steps_seen == 2:
                assert worker.cancel("long")
        if isinstance(event, Cancelled | Finished | Failed):
            break
    assert isinstance(event, Cancelled)
    assert steps_seen <= 3
    worker.submit(job("after"))  # the worker goes on
    assert isinstance((await collect(worker.events, {"after"}))["after"][-1], Finished)


async def test_cancel_one_job_of_a_batch_keeps_the_others(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(Recording(tiny_backend, step_delay=0.05))
    worker.submit(job("keep", "alice", steps=10))
    worker.submit(job("drop", "bob", steps=10))
    worker.start()
    cancelled = False
    results: dict[str, object] = {}
    while len(results) < 2:
        job_id, event = await asyncio.wait_for(worker.events.get(), 30)
        if isinstance(event, Step) and not cancelled:
            cancelled = worker.cancel("drop")
        if isinstance(event, Cancelled | Finished | Failed):
            results[job_id] = event
    assert isinstance(results["drop"], Cancelled)
    assert isinstance(results["keep"], Finished)


@pytest.mark.expect_errors
async def test_out_of_memory_splits_the_batch_and_retries(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    def oom_above_two(slots: Sequence[Slot]) -> BaseException | None:
        return torch.OutOfMemoryError("CUDA out of memory") if len(slots) > 2 else None

    recording = Recording(tiny_backend, fail=oom_above_two)
    worker = make_worker(recording)
    worker.submit(job("big", n=5))
    worker.start()
    events = (await collect(worker.events, {"big"}))["big"]
    assert isinstance(events[-1], Finished)
    assert [len(call) for call in recording.calls] == [5, 2, 3, 1, 2]
    assert events[-1].result.seeds == (7, 8, 9, 10, 11)


async def test_out_of_memory_for_one_image_fails_that_job_only(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    recording = Recording(tiny_backend, fail=lambda slots: torch.OutOfMemoryError("oom"))
    worker = make_worker(recording)
    worker.start()
    worker.submit(job("one"))
    event = (await collect(worker.events, {"one"}))["one"][-1]
    assert event == Failed(OOM_REASON)


@pytest.mark.expect_errors
async def test_a_failing_job_fails_alone_and_the_worker_goes_on(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    def boom(slots: Sequence[Slot]) -> BaseException | None:
        return RuntimeError("kaboom") if any("boom" in s.prompt for s in slots) else None

    worker = make_worker(Recording(tiny_backend, fail=boom))
    worker.submit(job("ok1", "alice"))
    worker.submit(job("boom", "bob"))
    worker.submit(job("ok2", "carol"))
    worker.start()
    events = await collect(worker.events, {"ok1", "boom", "ok2"})
    assert events["boom"][-1] == Failed(INTERNAL_REASON)
    assert isinstance(events["ok1"][-1], Finished) and isinstance(events["ok2"][-1], Finished)
    worker.submit(job("later"))
    assert isinstance((await collect(worker.events, {"later"}))["later"][-1], Finished)


async def test_a_job_past_the_time_limit_fails_saying_so_and_the_worker_goes_on(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(Recording(tiny_backend, step_delay=0.1), max_job_s=1.0)
    worker.start()
    worker.submit(job("slow", steps=50))  # 5 s of steps against a 1 s limit
    events = (await collect(worker.events, {"slow"}))["slow"]
    assert events[-1] == Failed("it took longer than the 1 s limit for one job: try fewer --n or --steps")
    assert max(e.i for e in events if isinstance(e, Step)) < 50  # stopped at a step, not at the end
    worker.submit(job("quick"))
    assert isinstance((await collect(worker.events, {"quick"}))["quick"][-1], Finished)


async def test_stop_finishes_the_running_job(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(Recording(tiny_backend, step_delay=0.05))
    worker.start()
    worker.submit(job("running", steps=6))
    while not isinstance((await worker.events.get())[1], Step):
        pass
    assert worker.state is WorkerState.RUNNING
    await worker.stop(grace=30)
    assert worker.state is WorkerState.CLOSED
    assert isinstance(left_over(worker)[-1], Finished)


async def test_stop_abandons_a_batch_past_its_grace_and_tells_nobody(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(Recording(tiny_backend, step_delay=0.2))
    worker.start()
    worker.submit(job("long", steps=50))
    while not isinstance((await worker.events.get())[1], Step):
        pass
    await worker.stop(grace=0.01)
    assert worker.state is WorkerState.CLOSED
    # The store still says RUNNING, so the next start runs it again: no terminal event now.
    assert not any(isinstance(e, Finished | Cancelled | Failed) for e in left_over(worker))


def left_over(worker: GenerationWorker) -> list[Progress]:
    """The events still queued once the worker stopped."""
    events = []
    while not worker.events.empty():
        events.append(worker.events.get_nowait()[1])
    return events


async def test_a_clip_job_renders_every_frame(
    tiny_video_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    worker = make_worker(tiny_video_backend)
    worker.start()
    worker.submit(job("clip", kind=Kind.VIDEO, bottom="spaghetti"))
    finished = (await collect(worker.events, {"clip"}))["clip"][-1]
    assert isinstance(finished, Finished)
    with Image.open(finished.result.primary.path) as clip:
        assert clip.format == "GIF"
        assert clip.n_frames == 8
        assert clip.size == (TEST_SIZE, TEST_SIZE)


# -- several models -------------------------------------------------------------------------------------


async def test_one_worker_makes_a_grid_and_a_clip_and_each_file_names_its_model(
    tiny_backend: DiffusersBackend,
    tiny_video_backend: DiffusersBackend,
    make_worker: Callable[..., GenerationWorker],
) -> None:
    worker = make_worker(ModelPool.serving(tiny_backend, tiny_video_backend))
    worker.start()
    worker.submit(job("grid", n=4, model="tiny"))
    worker.submit(job("clip", kind=Kind.VIDEO, model="tiny-video"))
    seen = await collect(worker.events, {"grid", "clip"})
    grid, clip = seen["grid"][-1], seen["clip"][-1]
    assert isinstance(grid, Finished) and isinstance(clip, Finished)
    with Image.open(grid.result.primary.path) as image:
        assert image.format == "PNG" and image.size == (2 * TEST_SIZE, 2 * TEST_SIZE)
    with Image.open(clip.result.primary.path) as image:
        assert image.format == "GIF" and image.n_frames == 8
    assert read_metadata(grid.result.primary.path.read_bytes())["model"] == "tiny"
    assert "--model tiny" in read_metadata(grid.result.primary.path.read_bytes())["command"]
    assert [e.batch_size for e in seen["grid"] if isinstance(e, Started)] == [4]  # never batched together


def loading_pool(**configs: ModelConfig) -> tuple[ModelPool, list[str]]:
    loads: list[str] = []

    def loader(config: ModelConfig, name: str) -> DiffusersBackend:
        loads.append(name)
        return load_backend(config, name)

    first = next(iter(configs))
    return ModelPool(configs, image=first, video=None, max_loaded=1, loader=loader), loads


@pytest.mark.expect_errors
async def test_a_model_that_cannot_load_fails_its_jobs_and_the_other_model_serves(
    make_worker: Callable[..., GenerationWorker],
) -> None:
    pool, _ = loading_pool(
        tiny=ModelConfig(name="tiny", size=TEST_SIZE, steps=2), broken=ModelConfig(name="/no/such/folder")
    )
    worker = make_worker(pool)
    worker.start()
    worker.submit(job("bad", model="broken"))
    worker.submit(job("good", owner="bob", model="tiny"))
    seen = await collect(worker.events, {"bad", "good"})
    failed = seen["bad"][-1]
    assert isinstance(failed, Failed) and failed.model_load
    assert failed.reason.startswith("model broken: folder /no/such/folder does not exist")
    assert isinstance(seen["good"][-1], Finished)
    assert {s.name: bool(s.error) for s in pool.states()} == {"tiny": False, "broken": True}


async def test_a_queue_for_two_models_on_one_slot_loads_each_model_a_bounded_number_of_times(
    make_worker: Callable[..., GenerationWorker],
) -> None:
    pool, loads = loading_pool(
        tiny=ModelConfig(name="tiny", size=TEST_SIZE, steps=1),
        other=ModelConfig(name="tiny", size=TEST_SIZE, steps=1, seed=1),
    )
    worker = make_worker(pool, switch_after=8, batching=False)
    for i in range(8):  # four users, each alternating models: the fair order switches at every job
        worker.submit(job(f"j{i}", owner=f"user{i % 4}", model=("tiny", "other")[(i // 4 + i) % 2]))
    worker.start()
    seen = await collect(worker.events, {f"j{i}" for i in range(8)})
    assert all(isinstance(events[-1], Finished) for events in seen.values())
    assert len(loads) <= 3  # in fair order it would be 8 loads


async def test_queue_etas_count_the_expected_model_loads(
    make_worker: Callable[..., GenerationWorker],
) -> None:
    pool, _ = loading_pool(
        tiny=ModelConfig(name="tiny", size=TEST_SIZE, steps=1),
        other=ModelConfig(name="tiny", size=TEST_SIZE, steps=1, seed=1),
    )
    worker = make_worker(pool, batching=False)
    for model in ("tiny", "other"):
        worker.rates.record((model, TEST_SIZE, TEST_SIZE, 1), seconds=2.0, steps=1, images=1)
    worker.submit(job("a", model="tiny"))
    worker.submit(job("b", owner="bob", model="other"))
    worker.submit(job("c", owner="carol", model="other"))
    etas = {job_id: event.eta_s for job_id, event in drain(worker) if isinstance(event, Queued)}
    guess = GUESSED_LOAD_S
    # a: next on an idle worker, it starts now (its load shows as a phase); b: after a and tiny's load,
    # other loads; c: other is loaded by then.
    assert etas == {"a": 0.0, "b": guess + 2.0 + guess, "c": guess + 2.0 + guess + 2.0}


def drain(worker: GenerationWorker) -> list[tuple[str, Progress]]:
    events = []
    while not worker.events.empty():
        events.append(worker.events.get_nowait())
    return events


async def test_the_work_after_the_steps_and_a_model_load_show_as_phases(
    make_worker: Callable[..., GenerationWorker],
) -> None:
    pool, _ = loading_pool(tiny=ModelConfig(name="tiny", size=TEST_SIZE, steps=2))
    worker = make_worker(pool)
    worker.start()
    worker.submit(job("p", n=2, model="tiny"))
    events = (await collect(worker.events, {"p"}))["p"]
    shown = [e for e in events if isinstance(e, Phase | Step | Finished)]
    assert shown[0] == Phase("loading", "model tiny")  # not loaded yet: its size is not known either
    assert shown[1:] == [Step(1, 2), Step(2, 2), Phase("decoding"), Phase("encoding", "grid"), shown[-1]]
    assert isinstance(shown[-1], Finished)
    worker.submit(job("q", model="tiny"))  # loaded now: no loading phase
    again = (await collect(worker.events, {"q"}))["q"]
    assert not any(isinstance(e, Phase) and e.name == "loading" for e in again)


@pytest.mark.usefixtures("on_gpu")
async def test_a_batch_runs_in_calls_of_the_measured_size(
    tiny_backend: DiffusersBackend, make_worker: Callable[..., GenerationWorker]
) -> None:
    from tests.generators.test_pool import FitsThree

    backend = FitsThree(tiny_backend)
    pool = ModelPool.serving(backend)  # type: ignore[arg-type]
    pool.measure_batches = True
    worker = make_worker(pool)
    worker.start()
    worker.submit(job("eight", n=8))
    finished = (await collect(worker.events, {"eight"}))["eight"][-1]
    assert isinstance(finished, Finished) and len(finished.result.seeds) == 8
    assert backend.calls == [1, 2, 4, 3, 2, 2, 2, 2]  # measured once, then no call over what fits
