"""Several models in one worker: what preferring the loaded model buys on a mixed workload.

Eight users share one worker serving ``tiny`` (grids, 128 px, 4 steps) and ``tiny-video`` (clips, 64 px,
4 steps, 8 frames), both loaded through the real loader, so every switch pays a real load. Six heavy
users (three of grids, three of clips) queue several jobs each, interleaved, then two light users (one
grid, one clip) queue a single job each, last. Each case runs the same jobs with the same seeds:

- naive: the fair round-robin order, no preference for the loaded model, so a batch only takes jobs
  next to each other in that order and the model changes whenever the next job needs the other one
  (the baseline, with ``max_loaded_models: 1``); also with 2 loaded, and a strict first-come variant
  (one lane for everyone);
- the bot's queue with ``switch_after`` None: no preference either, but a batch gathers jobs of the
  head's model from anywhere in the queue;
- memebot: the worker's preference (a waiting job of the other model overtaken by at most
  ``worker.switch_after`` jobs), with ``max_loaded_models`` 1 and 2.

Reported per case: images/s (a clip's frames count as images), model switches (consecutive batches on
different models), loads, seconds the worker spent switching (evicting and loading), and the worst
wait (submit to finished) of a light user, with ratios to the baseline. Then, per model, the cold load
time, the first pipeline call after a load and a warm one, on the CPU and, when there is one, on the
GPU, with the time to bring a model parked in CPU memory (``evict_to: cpu``) back to it, and (GPU
only) what an eviction leaves on the card: ``tiny`` loaded, called, then evicted by loading
``tiny-video`` through the pool, parked (``evict_to: cpu``) or freed, uncompiled and compiled (a
compiled model's CUDA graphs hold memory of their own). ``--loads-only`` measures just these figures.

    python benchmarks/bench_models.py [--json benchmarks/results/models.json] [--quick] [--loads-only]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.pipelines import Backend, BatchSpec, Slot, load_backend
from generators.pipelines.device import allocated, empty_cache, reserved, synchronize
from generators.pool import ModelPool
from generators.queue import BatchKey, InProcessQueue, JobQueue, JobSize, Ready
from generators.requests import TERMINAL, Finished, GenerationRequest, Job, Kind
from generators.worker import GenerationWorker

GRID = ModelConfig(name="tiny", size=128, steps=4)
CLIP = ModelConfig(name="tiny-video", size=64, steps=4, frames=8)
CONFIGS = {"tiny": GRID, "tiny-video": CLIP}
GRID_N = 4
T = TypeVar("T")
GPU = torch.device("cuda")
MIB = 1024**2
HEAVY = ("grid-a", "clip-a", "grid-b", "clip-b", "grid-c", "clip-c")
LIGHT = ("grid-light", "clip-light")


class NaiveQueue(InProcessQueue):
    """The fair order taken as it comes: a batch is the head and the same-model jobs right behind it."""

    def __init__(self) -> None:
        # switch_after=0 with no ``ready``: no job may go before one of another model ahead of it.
        super().__init__(per_user=100, total=1000, switch_after=0)

    async def take(
        self, key: BatchKey, size: JobSize, max_images: int, ready: Ready | None = None
    ) -> list[Job]:
        """The next batch, ignoring which model is loaded."""
        return await super().take(key, size, max_images, None)


def fair_queue(switch_after: int | None) -> Callable[[], JobQueue]:
    """The bot's queue, as the worker uses it (it passes ``ready``)."""
    return lambda: InProcessQueue(per_user=100, total=1000, switch_after=switch_after)


@dataclass(frozen=True, slots=True)
class Case:
    """One way of scheduling the workload."""

    label: str
    max_loaded: int
    queue: Callable[[], JobQueue]
    one_lane: bool = False  # everyone in one lane: strict first come, first served


SWITCH_AFTER = WorkerConfig().switch_after
CASES = (
    Case("naive, 1 loaded (baseline)", 1, NaiveQueue),
    Case("naive first-come, 1 loaded", 1, NaiveQueue, one_lane=True),
    Case("switch_after None, 1 loaded", 1, fair_queue(None)),
    Case("naive, 2 loaded", 2, NaiveQueue),
    Case(f"memebot ({SWITCH_AFTER}), 1 loaded", 1, fair_queue(SWITCH_AFTER)),
    Case(f"memebot ({SWITCH_AFTER}), 2 loaded", 2, fair_queue(SWITCH_AFTER)),
)


class RecordingPool(ModelPool):
    """The real pool, remembering which model each batch ran on, the loads, and the time switches took."""

    def __init__(self, max_loaded: int) -> None:
        super().__init__(
            CONFIGS, image="tiny", video="tiny-video", max_loaded=max_loaded, loader=self._counted
        )
        self.batches: list[str] = []
        self.loads = 0
        self.switch_s = 0.0  # in acquire() for a model not loaded: evicting and loading

    def acquire(self, name: str) -> Backend:
        """Acquire as the pool does, noting the model and the time a switch took."""
        self.batches.append(name)
        if self.is_loaded(name):
            return super().acquire(name)
        seconds, backend = timed(super().acquire, name)
        self.switch_s += seconds
        return backend

    def _counted(self, config: ModelConfig, name: str) -> Backend:
        self.loads += 1
        return load_backend(config, name)

    @property
    def switches(self) -> int:
        """Consecutive batches on different models."""
        return sum(a != b for a, b in zip(self.batches, self.batches[1:], strict=False))


def workload(jobs_per_heavy: int) -> list[Job]:
    """The jobs in submission order: heavy users interleaved round by round, then the light users."""
    jobs = []
    for round_ in range(jobs_per_heavy):
        jobs += [make_job(user, f"{user}-{round_}", seed=100 * round_ + i) for i, user in enumerate(HEAVY)]
    jobs += [make_job(user, f"{user}-0", seed=10_000 + i) for i, user in enumerate(LIGHT)]
    return jobs


def make_job(user: str, job_id: str, seed: int) -> Job:
    if user.startswith("clip"):
        request = GenerationRequest("a dog on a skateboard", seed=seed, kind=Kind.VIDEO, model="tiny-video")
    else:
        request = GenerationRequest("a cat in a hat", seed=seed, n=GRID_N, model="tiny")
    return Job(job_id, user, request)


def images_of(job: Job) -> int:
    return job.request.n if job.request.kind is Kind.IMAGE else CLIP.frames or 0


async def run_case(case: Case, jobs: list[Job], folder: Path) -> dict[str, Any]:
    """Submit every job at once; wait for all; what the schedule cost."""
    config = WorkerConfig(
        results_dir=folder, per_user_queue=100, global_queue=1000, max_loaded_models=case.max_loaded
    )
    pool = RecordingPool(case.max_loaded)
    worker = GenerationWorker(pool, case.queue(), config=config, limits=LimitsConfig(), render=RenderConfig())
    async with worker:
        submitted = time.perf_counter()
        for job in jobs:
            worker.submit(dataclasses.replace(job, owner="everyone") if case.one_lane else job)
        done = await finish_times(worker, {job.id for job in jobs})
    elapsed = max(done.values()) - submitted
    waits = {job.owner: done[job.id] - submitted for job in jobs if job.owner in LIGHT}
    return {
        "images_per_s": sum(images_of(job) for job in jobs) / elapsed,
        "elapsed_s": elapsed,
        "switches": pool.switches,
        "loads": pool.loads,
        "switching_s": pool.switch_s,
        "light_wait_s": max(waits.values()),
        "light_waits": waits,
        "batches": pool.batches,
    }


async def finish_times(worker: GenerationWorker, job_ids: set[str]) -> dict[str, float]:
    """When each job finished (perf_counter); every job must finish."""
    done: dict[str, float] = {}
    async with asyncio.timeout(600):
        while len(done) < len(job_ids):
            job_id, event = await worker.events.get()
            if isinstance(event, TERMINAL):
                assert isinstance(event, Finished), (job_id, event)
                done[job_id] = time.perf_counter()
    return done


async def schedules(jobs_per_heavy: int, repeats: int) -> list[dict[str, Any]]:
    """Every case ``repeats`` times, interleaved so drift hits them alike; medians, ratios to the baseline."""
    jobs = workload(jobs_per_heavy)
    runs: dict[str, list[dict[str, Any]]] = {case.label: [] for case in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        await run_case(CASES[0], workload(1), Path(tmp))  # warm up encoders and kernels
        for _ in range(repeats):
            for case in CASES:
                runs[case.label].append(await run_case(case, jobs, Path(tmp)))
    rows = [summarize(label, results) for label, results in runs.items()]
    base = rows[0]
    for r in rows:
        r["images_ratio"] = round(r["images_per_s"] / base["images_per_s"], 3)
        r["light_wait_ratio"] = round(r["light_wait_s"] / base["light_wait_s"], 3)
    return rows


def summarize(label: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats (switch and load counts are the same every run)."""

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in results), 4)

    return {
        "case": label,
        "images_per_s": median("images_per_s"),
        "elapsed_s": median("elapsed_s"),
        "switches": results[0]["switches"],
        "loads": results[0]["loads"],
        "switching_s": median("switching_s"),
        "light_wait_s": median("light_wait_s"),
        "light_waits": {u: round(statistics.median(r["light_waits"][u] for r in results), 4) for u in LIGHT},
        "runs": len(results),
        "batch_models": results[0]["batches"],
    }


def timed(work: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds ``work(*args)`` takes, waiting for queued GPU work to finish; and its result."""
    started = time.perf_counter()
    result = work(*args)
    synchronize(GPU)
    return time.perf_counter() - started, result


def sample_call(backend: Backend, name: str) -> None:
    """One job's pipeline call as in the workload: a grid, or a clip."""
    config = CONFIGS[name]
    spec = BatchSpec(config.size or 64, config.size or 64, config.steps or 4)
    count = 1 if name == "tiny-video" else GRID_N
    backend.generate(spec, [Slot("a cat in a hat", "", seed) for seed in range(count)], lambda *a: None)


def cold_loads(device: str, repeats: int) -> list[dict[str, Any]]:
    """Median seconds to load each model onto ``device``, its first pipeline call after that, a warm one."""
    rows = []
    for name, config in CONFIGS.items():
        config = config.model_copy(update={"device": device})
        sample_call(load_backend(config, name), name)  # a process's first load and call pay more
        loads, firsts, warms = [], [], []
        for _ in range(repeats):
            seconds, backend = timed(load_backend, config, name)
            loads.append(seconds)
            firsts.append(timed(sample_call, backend, name)[0])
            warms.append(timed(sample_call, backend, name)[0])
        row = {"model": name, "device": device, "cold_load_s": statistics.median(loads)}
        row |= {"first_call_s": statistics.median(firsts), "warm_call_s": statistics.median(warms)}
        rows.append({key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()})
    return rows


def back_from_cpu(repeats: int) -> list[dict[str, Any]]:
    """GPU only: seconds to bring a model parked in CPU memory back, vs the fresh load it replaces."""
    pool = ModelPool(CONFIGS, image="tiny", video="tiny-video", max_loaded=1, evict_to="cpu")
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for name in CONFIGS:
        pool.acquire(name)  # first loads; each evicts the other to CPU memory
    for _ in range(repeats):
        for name in CONFIGS:
            seconds[name].append(timed(pool.acquire, name)[0])
    return [{"model": name, "back_from_cpu_s": round(statistics.median(s), 4)} for name, s in seconds.items()]


def load_times(repeats: int, compile_mode: str = "reduce-overhead") -> dict[str, Any]:
    """Cold loads on CPU, and on the GPU with parking and freeing, when there is one."""
    result: dict[str, Any] = {"cpu": cold_loads("cpu", repeats), "gpu": None, "evictions": None}
    if torch.cuda.is_available():
        gpu = cold_loads("cuda", repeats)
        parked = back_from_cpu(repeats)
        for row, back in zip(gpu, parked, strict=True):
            row["back_from_cpu_s"] = back["back_from_cpu_s"]
            row["back_vs_fresh"] = round(back["back_from_cpu_s"] / row["cold_load_s"], 3)
        result["gpu"] = gpu
        result["gpu_name"] = torch.cuda.get_device_name(GPU)
        result["evictions"] = [eviction(to, mode) for mode in ("off", compile_mode) for to in ("cpu", "free")]
    return result


def eviction(evict_to: str, compile_mode: str) -> dict[str, Any]:
    """GPU only: ``tiny`` loaded and called, then evicted by a load of ``tiny-video``: seconds and MiB left.

    Left on the card: what the allocator counts after the eviction beyond what was there before and
    what ``tiny-video`` took; 0 is the goal (a parked model's weights are in CPU memory).
    """
    configs = {
        "tiny": GRID.model_copy(update={"device": "cuda", "compile": compile_mode}),
        "tiny-video": CLIP.model_copy(update={"device": "cuda"}),
    }
    gc.collect()
    empty_cache(GPU)
    base, base_reserved = allocated(GPU), reserved(GPU)
    pool = ModelPool(configs, image="tiny", video="tiny-video", max_loaded=1, evict_to=evict_to)
    load_s, backend = timed(pool.acquire, "tiny")  # with the warm-up of a compiled model
    sample_call(backend, "tiny")
    held = allocated(GPU) - base
    del backend  # the pool's reference is the last one, as in the worker
    switch_s, _ = timed(pool.acquire, "tiny-video")
    video = next(state.memory_bytes or 0 for state in pool.states() if state.name == "tiny-video")
    row = {
        "model": "tiny",
        "compile": compile_mode,
        "evict_to": evict_to,
        "load_s": round(load_s, 4),
        "held_mib": round(held / MIB, 1),
        "switch_s": round(switch_s, 4),  # evicting tiny and loading tiny-video
        "left_mib": round((allocated(GPU) - base - video) / MIB, 1),
        "reserved_mib": round((reserved(GPU) - base_reserved) / MIB, 1),
    }
    del pool
    gc.collect()
    empty_cache(GPU)
    return row


def print_schedules(rows: list[dict[str, Any]], jobs: int) -> None:
    print(f"{jobs} jobs from {len(HEAVY) + len(LIGHT)} users; median of {rows[0]['runs']} run(s)")
    head = f"{'case':<30} {'images/s':>8} {'ratio':>6} {'switches':>8} {'loads':>5} {'switch s':>8}"
    print(f"{head} {'light wait s':>12} {'ratio':>6}")
    for r in rows:
        line = f"{r['case']:<30} {r['images_per_s']:>8.2f} {r['images_ratio']:>6.2f} {r['switches']:>8}"
        line += f" {r['loads']:>5} {r['switching_s']:>8.2f}"
        print(f"{line} {r['light_wait_s']:>12.2f} {r['light_wait_ratio']:>6.2f}")


def print_loads(loads: dict[str, Any]) -> None:
    head = f"{'model':<12} {'device':<6} {'cold load s':>11} {'first call s':>12} {'warm call s':>11}"
    print(f"\n{head} {'back from CPU s':>15}")
    for r in [*loads["cpu"], *(loads["gpu"] or [])]:
        line = f"{r['model']:<12} {r['device']:<6} {r['cold_load_s']:>11.3f} {r['first_call_s']:>12.3f}"
        back = f"{r['back_from_cpu_s']:.3f}" if "back_from_cpu_s" in r else "-"
        print(f"{line} {r['warm_call_s']:>11.3f} {back:>15}")
    if loads["gpu"] is None:
        print("GPU figures (load, back from CPU memory) are not available here: no CUDA device.")
        return
    print(f"\n{loads['gpu_name']}: tiny evicted by loading tiny-video (MiB left beyond tiny-video's own)")
    head = f"{'compile':<16} {'evict_to':<8} {'load s':>7} {'held MiB':>9} {'switch s':>8} {'left MiB':>9}"
    print(f"{head} {'reserved MiB':>12}")
    for r in loads["evictions"]:
        line = f"{r['compile']:<16} {r['evict_to']:<8} {r['load_s']:>7.2f} {r['held_mib']:>9.1f}"
        print(f"{line} {r['switch_s']:>8.2f} {r['left_mib']:>9.1f} {r['reserved_mib']:>12.1f}")


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print the tables, write the JSON; return what was written."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/models.json"))
    parser.add_argument("--quick", action="store_true", help="fewer jobs and one run per case")
    parser.add_argument("--loads-only", action="store_true", help="only the load, park and free figures")
    parser.add_argument("--repeats", type=int, default=0, help="loads per model (default 7; quick 3)")
    parser.add_argument("--compile-mode", default="reduce-overhead", help="the compiled eviction rows' mode")
    args = parser.parse_args(argv)
    jobs_per_heavy, repeats = (2, 1) if args.quick else (4, 3)
    load_repeats = args.repeats or (3 if args.quick else 7)
    loads = await asyncio.to_thread(load_times, load_repeats, args.compile_mode)
    rows = [] if args.loads_only else await schedules(jobs_per_heavy, repeats)
    jobs = len(workload(jobs_per_heavy))
    if rows:
        print_schedules(rows, jobs)
    print_loads(loads)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "workload": {"jobs": jobs, "heavy_users": HEAVY, "light_users": LIGHT, "grid_n": GRID_N},
        "switch_after": SWITCH_AFTER,
        "schedules": rows,
        "loads": loads,
    }
    args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    asyncio.run(main())
