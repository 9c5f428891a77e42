"""Worker benchmarks on the tiny model, each against a baseline measured in the same run.

- overhead: one job through queue + worker + render vs the bare pipeline call with the same arguments;
- loop lag: lateness of a 10 ms ticker while the worker generates and encodes vs while idle;
- batching: images/s for 36 single-image requests from 9 users, batching on vs off;
- real-size (``--case real-size``): an SD-Turbo-architecture pipeline built in code (random weights, no
  download), 512 px, 1 step, batch 1 and 4, full VAE and tiny VAE: seconds per image of the bare
  diffusers call vs the same batch as a job through queue, worker, render and file, alternating in one
  process, then each alone in a fresh process (goal: within 5%).

    python benchmarks/bench_worker.py [--json benchmarks/results/worker.json] [--case all|real-size]
    python benchmarks/bench_worker.py --case real-size --vaes tiny --batches 4 --runs 8   # some rows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.pipelines import BatchSpec, DiffusersBackend, Slot, load_backend
from generators.pipelines.random_turbo import backend_for, build_pipeline, tiny_vae
from generators.queue import InProcessQueue
from generators.requests import TERMINAL, Finished, GenerationRequest, Job, Kind
from generators.worker import GenerationWorker


def make_worker(backend: DiffusersBackend, folder: Path, **config: Any) -> GenerationWorker:
    worker_config = WorkerConfig(results_dir=folder, per_user_queue=100, global_queue=1000, **config)
    queue = InProcessQueue(per_user=100, total=1000)
    return GenerationWorker(
        backend, queue, config=worker_config, limits=LimitsConfig(), render=RenderConfig()
    )


async def wait_all(worker: GenerationWorker, job_ids: set[str]) -> None:
    while job_ids:
        job_id, event = await worker.events.get()
        if isinstance(event, TERMINAL):
            assert isinstance(event, Finished), event
            job_ids.discard(job_id)


async def overhead(backend: DiffusersBackend, folder: Path, runs: int) -> dict[str, Any]:
    """Median seconds: bare pipeline call vs the same image as a job (queue, events, PNG, file)."""
    spec = BatchSpec(256, 256, 4)
    bare, job_times = [], []
    async with make_worker(backend, folder) as worker:
        for i in range(runs + 1):
            start = time.perf_counter()
            await asyncio.to_thread(backend.generate, spec, [Slot("a cat", "", i)], lambda *a: None)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            worker.submit(Job(f"o{i}", "bench", GenerationRequest("a cat", seed=i, n=1, steps=4)))
            await wait_all(worker, {f"o{i}"})
            job_times.append(time.perf_counter() - start)
    base, ours = statistics.median(bare[1:]), statistics.median(job_times[1:])
    return row(
        "worker overhead (tiny 256px, 4 steps, 1 image)",
        ours,
        base,
        ours / base - 1,
        "<= 10%",
        ours / base - 1 <= 0.10,
    )


async def ticker_lag(duration: float, busy: asyncio.Task[Any] | None) -> list[float]:
    """Lateness (s) of each tick of a 10 ms ticker, while ``busy`` runs (or for ``duration`` s)."""
    lags, interval = [], 0.010
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    expected = loop.time() + interval
    while (busy is not None and not busy.done()) or (busy is None and loop.time() < end):
        await asyncio.sleep(max(0.0, expected - loop.time()))
        lags.append(max(0.0, loop.time() - expected))
        expected = max(expected + interval, loop.time())
    return lags


async def loop_lag(backend: DiffusersBackend, video: DiffusersBackend, folder: Path) -> list[dict[str, Any]]:
    """Ticker lateness while idle vs while 9-image grids and a GIF clip generate and encode."""
    idle = await ticker_lag(1.0, None)
    async with make_worker(backend, folder) as worker, make_worker(video, folder) as clips:
        for i in range(3):
            worker.submit(Job(f"g{i}", f"u{i}", GenerationRequest("a cat", seed=i, n=9, steps=4)))
        clips.submit(Job("clip", "v", GenerationRequest("a dog", seed=1, kind=Kind.VIDEO, steps=4)))
        busy = asyncio.ensure_future(
            asyncio.gather(wait_all(worker, {"g0", "g1", "g2"}), wait_all(clips, {"clip"}))
        )
        lags = await ticker_lag(0, busy)
    rows = []
    for name, values in (("max", max(lags)), ("p99", quantile(lags, 0.99))):
        base = max(idle) if name == "max" else quantile(idle, 0.99)
        rows.append(
            row(
                f"event-loop lag {name} (ms) while generating",
                values * 1000,
                base * 1000,
                None,
                "<= 20 ms",
                values <= 0.020,
            )
        )
    return rows


async def batching(backend: DiffusersBackend, folder: Path) -> dict[str, Any]:
    """Images/s for 36 one-image requests from 9 users at 64 px, batching on vs off."""
    rates = {}
    for enabled in (False, True):
        async with make_worker(backend, folder, batching=enabled, max_batch=8) as worker:
            start = time.perf_counter()
            ids = set()
            for i in range(36):
                job_id = f"b{enabled}{i}"
                worker.submit(Job(job_id, f"user{i % 9}", GenerationRequest("a cat", seed=i, n=1, steps=4)))
                ids.add(job_id)
            await wait_all(worker, ids)
            rates[enabled] = 36 / (time.perf_counter() - start)
    ratio = rates[True] / rates[False]
    return row(
        "batching images/s (tiny 64px, 36 jobs, 9 users)",
        rates[True],
        rates[False],
        ratio,
        ">= 3x",
        ratio >= 3,
    )


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(case: str, ours: float, baseline: float, ratio: float | None, goal: str, met: bool) -> dict[str, Any]:
    return {
        "case": case,
        "ours": round(ours, 4),
        "baseline": round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": goal,
        "met": met,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'case':<52} {'ours':>10} {'baseline':>10} {'ratio':>8}  {'goal':<9} met")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        met = "yes" if r["met"] else "NO"
        print(f"{r['case']:<52} {r['ours']:>10.4f} {r['baseline']:>10.4f} {ratio:>8}  {r['goal']:<9} {met}")


# -- real size --------------------------------------------------------------------------------------

REAL_SIZE = 512


def real_backend(vae: str, quick: bool) -> DiffusersBackend:
    """The SD-Turbo-shaped pipeline with the full VAE or the tiny one as its decoder."""
    pipe = build_pipeline(quick=quick)
    pipe.set_progress_bar_config(disable=True)
    if vae == "tiny":
        pipe.vae = tiny_vae()
    return backend_for(pipe, size=REAL_SIZE)


def bare_call(backend: DiffusersBackend, batch: int, seed: int) -> float:
    """Seconds of the diffusers call alone for ``batch`` images (PIL out, as a user's script would)."""
    start = time.perf_counter()
    backend.pipe(
        prompt=["a hamster godzilla"] * batch,
        width=REAL_SIZE,
        height=REAL_SIZE,
        num_inference_steps=1,
        guidance_scale=0.0,
        generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)],
    )
    return time.perf_counter() - start


async def job_call(worker: GenerationWorker, batch: int, seed: int) -> float:
    """Seconds from submitting one job of ``batch`` images to its file on disk."""
    start = time.perf_counter()
    request = GenerationRequest("a hamster godzilla", seed=seed, n=batch, steps=1, model="sd-turbo")
    worker.submit(Job(f"r{seed}-{batch}", "bench", request))
    await wait_all(worker, {f"r{seed}-{batch}"})
    return time.perf_counter() - start


async def alternating(
    vae: str, batch: int, runs: int, quick: bool, folder: Path
) -> tuple[float, float, float]:
    """Median s/image of memebot's path and of the bare call, alternating in this process, and the
    median of the pairs' ratios (a pair runs back to back, so a slow minute of the machine slows both)."""
    backend = real_backend(vae, quick)
    ours, bare = [], []
    async with make_worker(backend, folder) as worker:
        for run in range(runs + 1):  # the first pair warms both up
            bare.append(await asyncio.to_thread(bare_call, backend, batch, run))
            ours.append(await job_call(worker, batch, run))
    ratio = statistics.median(o / b for o, b in zip(ours[1:], bare[1:], strict=True))
    return statistics.median(ours[1:]) / batch, statistics.median(bare[1:]) / batch, ratio


def alone(mode: str, vae: str, batch: int, runs: int, quick: bool) -> float:
    """Median s/image of one mode in a fresh process of its own (no other pipeline, no other work)."""
    command = [sys.executable, __file__, "--child", mode, "--vae", vae, "--batch", str(batch)]
    command += ["--runs", str(runs)] + (["--quick"] if quick else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


async def child(mode: str, vae: str, batch: int, runs: int, quick: bool) -> None:
    """Print the median s/image of ``mode`` (bare or memebot): the other half of :func:`alone`."""
    backend = real_backend(vae, quick)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        async with make_worker(backend, Path(tmp)) as worker:
            for run in range(runs + 1):
                if mode == "bare":
                    times.append(await asyncio.to_thread(bare_call, backend, batch, run))
                else:
                    times.append(await job_call(worker, batch, run))
    print(statistics.median(times[1:]) / batch)


async def real_size(
    runs: int,
    quick: bool,
    folder: Path,
    vaes: Sequence[str] = ("full", "tiny"),
    batches: Sequence[int] = (1, 4),
) -> list[dict[str, Any]]:
    """Rows for batch 1 and 4, full and tiny VAE: alternating in one process, then each alone.

    The alternating row's ratio is the median of its pairs' ratios; the lone rows' the ratio of medians.
    """
    rows = []
    for vae in vaes:
        for batch in batches:
            label = f"real size b={batch} {vae} VAE (s/image)"
            ours, base, paired = await alternating(vae, batch, runs, quick, folder)
            rows.append(row(f"{label}", ours, base, paired - 1, "<= 5%", paired - 1 <= 0.05))
            ours = alone("memebot", vae, batch, runs, quick)
            base = alone("bare", vae, batch, runs, quick)
            rows.append(
                row(f"{label}, each alone", ours, base, ours / base - 1, "<= 5%", ours / base - 1 <= 0.05)
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/worker.json"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--case", choices=["all", "real-size"], default="all")
    parser.add_argument("--quick", action="store_true", help="real-size with a narrowed pipeline (smoke run)")
    parser.add_argument("--vaes", default="full,tiny", help="real-size: which decoders (full, tiny)")
    parser.add_argument("--batches", default="1,4", help="real-size: which batch sizes")
    parser.add_argument("--child", choices=["bare", "memebot"], help=argparse.SUPPRESS)
    parser.add_argument("--vae", choices=["full", "tiny"], default="full", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        await child(args.child, args.vae, args.batch, args.runs, args.quick)
        return
    if args.case == "real-size":
        with tempfile.TemporaryDirectory() as tmp:
            vaes = [v for v in args.vaes.split(",") if v in ("full", "tiny")]
            batches = [int(b) for b in args.batches.split(",") if b.strip().isdigit()]
            rows = await real_size(args.runs, args.quick, Path(tmp), vaes, batches)
        print_table(rows)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.with_name("worker-real-size.json").write_text(json.dumps({"rows": rows}, indent=2))
        return
    image = await asyncio.to_thread(load_backend, ModelConfig(name="tiny"))
    video = await asyncio.to_thread(load_backend, ModelConfig(name="tiny-video", size=128))
    small = await asyncio.to_thread(load_backend, ModelConfig(name="tiny", size=64))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [await overhead(image, folder, args.runs)]
        rows += await loop_lag(image, video, folder)
        rows.append(await batching(small, folder))
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": image.info.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
