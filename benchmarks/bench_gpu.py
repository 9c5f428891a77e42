"""SD-Turbo-size throughput on a GPU: memebot's full path against the bare diffusers call, switch by switch.

Builds an SD-Turbo-architecture pipeline in code (real shapes, random weights, no download; see
``generators/pipelines/random_turbo.py``) or loads a real folder (``--model-path``). For each dtype and
batch size it measures images/s at 512 px, 1 step, full VAE:

- bare: the diffusers call alone (the baseline; the best bare row of a dtype is 1.00);
- bare with one switch on: channels-last, fused QKV projections, the tiny VAE decode, and on CUDA
  ``torch.compile`` in its modes (``reduce-overhead`` is the one that captures CUDA graphs);
- memebot: the same batches as jobs through the queue, the worker, rendering and result files, with
  the switches off and with every switch that beat the bare call at that batch;
- encode: grids rendered per second on one CPU thread, beside generation, to show whether encoding
  keeps up (the worker encodes on its own thread while the next batch denoises): its ratio is how many
  times faster than the best bare call encoding is, and below 1 it would be the bottleneck.

It also prints the time from start (building or loading, moving to the device, compiling, warming up)
to the first image. ``--quick`` runs a narrowed pipeline at 64 px on the CPU in float32 within a
minute, so the test suite can smoke-test this script on any machine.

    python benchmarks/bench_gpu.py [--quick] [--model-path DIR] [--json benchmarks/results/gpu.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.config import LimitsConfig, RenderConfig, WorkerConfig
from generators.pipelines.random_turbo import backend_for, build_pipeline, tiny_vae
from generators.pool import ModelPool
from generators.queue import InProcessQueue
from generators.requests import TERMINAL, BatchSpec, Finished, GenerationRequest, Job
from generators.results import render_job
from generators.worker import GenerationWorker

GOAL_IMAGES_PER_S = 100.0
GOAL_RATIO = 0.9


@dataclass(frozen=True)
class Switch:
    """A speed-up that can be turned on and off again on a loaded pipeline."""

    name: str
    on: Callable[[Any], object]
    off: Callable[[Any], object]


def _memory_format(pipe: Any, fmt: torch.memory_format) -> None:
    pipe.unet.to(memory_format=fmt)
    pipe.vae.to(memory_format=fmt)


def _swap_vae(pipe: Any, vae: Any) -> None:
    pipe._memebot_vae, pipe.vae = pipe.vae, vae


def _compile(mode: str) -> Switch:
    def on(pipe: Any) -> None:
        pipe._memebot_unet, pipe.unet = pipe.unet, torch.compile(pipe.unet, mode=mode)

    def off(pipe: Any) -> None:
        pipe.unet = pipe._memebot_unet

    return Switch(f"compile {mode}", on, off)


def switches(device: torch.device, dtype: torch.dtype, compile_on_cpu: bool) -> list[Switch]:
    """The switches this device can run."""
    small = tiny_vae().to(device=device, dtype=dtype)
    found = [
        Switch(
            "channels-last",
            lambda p: _memory_format(p, torch.channels_last),
            lambda p: _memory_format(p, torch.contiguous_format),
        ),
        Switch("fused QKV", lambda p: p.fuse_qkv_projections(), lambda p: p.unfuse_qkv_projections()),
        Switch("tiny VAE decode", lambda p: _swap_vae(p, small), lambda p: _swap_vae(p, p._memebot_vae)),
    ]
    if device.type == "cuda" or compile_on_cpu:
        found += [_compile("default"), _compile("reduce-overhead"), _compile("max-autotune")]
    return found


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(pipe: Any, batch: int, size: int, runs: int) -> float:
    """Images/s of the diffusers call alone (median of ``runs`` calls after one warm-up)."""
    times = []
    for run in range(runs + 1):
        generators = [torch.Generator("cpu").manual_seed(run * batch + i) for i in range(batch)]
        _sync(pipe.device)
        start = time.perf_counter()
        pipe(
            prompt=["a hamster godzilla"] * batch,
            width=size,
            height=size,
            num_inference_steps=1,
            guidance_scale=0.0,
            generator=generators,
            output_type="np",
        )
        _sync(pipe.device)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times[1:])


async def full_path(pipe: Any, batch: int, size: int, runs: int, folder: Path) -> float:
    """Images/s of the same batches as jobs: queue, worker, render, files (after one warm-up job)."""
    per_job = min(batch, 9)
    jobs_per_batch = -(-batch // per_job)
    config = WorkerConfig(results_dir=folder, max_batch=batch, per_user_queue=1000, global_queue=1000)
    queue = InProcessQueue(per_user=1000, total=1000)
    pool = ModelPool.serving(backend_for(pipe, size=size))
    async with GenerationWorker(
        pool, queue, config=config, limits=LimitsConfig(), render=RenderConfig()
    ) as worker:
        await _run_jobs(worker, [_job(f"warm{i}", per_job, i) for i in range(jobs_per_batch)])
        jobs = [_job(f"j{i}", per_job, i) for i in range(runs * jobs_per_batch)]
        start = time.perf_counter()
        await _run_jobs(worker, jobs)
        elapsed = time.perf_counter() - start
    return per_job * len(jobs) / elapsed


def _job(job_id: str, n: int, seed: int) -> Job:
    request = GenerationRequest("a hamster godzilla", seed=seed, n=n, steps=1, model="sd-turbo")
    return Job(job_id, f"user{seed % 16}", request)


async def _run_jobs(worker: GenerationWorker, jobs: Sequence[Job]) -> None:
    pending = {job.id for job in jobs}
    for job in jobs:
        worker.submit(job, force=True)
    while pending:
        job_id, event = await worker.events.get()
        if isinstance(event, TERMINAL):
            if not isinstance(event, Finished):
                raise RuntimeError(f"job {job_id} ended with {event}")
            pending.discard(job_id)


def encode_rate(pipe: Any, size: int, folder: Path, runs: int) -> float:
    """Images/s rendered into 3x3 grids on one thread (what encoding alone can sustain)."""
    out = pipe(prompt=["a cat"] * 9, width=size, height=size, num_inference_steps=1, guidance_scale=0.0)
    frames = [[image] for image in out.images]
    spec = BatchSpec(size, size, 1)
    start = time.perf_counter()
    for run in range(runs):
        render_job(
            _job(f"enc{run}", 9, run),
            frames,
            spec=spec,
            seeds=list(range(9)),
            metadata={"prompt": "a cat"},
            folder=folder,
            config=RenderConfig(),
            fps=8,
            elapsed=0.0,
        )
    return 9 * runs / (time.perf_counter() - start)


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    device: torch.device
    dtypes: tuple[torch.dtype, ...]
    batches: tuple[int, ...]
    size: int
    runs: int
    quick: bool
    model_path: Path | None
    compile_on_cpu: bool


def plan_from(args: argparse.Namespace) -> Plan:
    """Sizes and dtypes for this machine: the GPU goal's, or the quick CPU smoke run's."""
    cuda = torch.cuda.is_available() and not args.quick
    return Plan(
        device=torch.device("cuda" if cuda else "cpu"),
        dtypes=(torch.float16, torch.bfloat16) if cuda else (torch.float32,),
        batches=tuple(int(b) for b in args.batches.split(","))
        if args.batches
        else ((1, 4, 8, 16) if cuda else (1, 2)),
        size=64 if args.quick else 512,
        runs=args.runs or (1 if args.quick else 5),
        quick=args.quick,
        model_path=args.model_path,
        compile_on_cpu=args.compile,
    )


def load(plan: Plan, dtype: torch.dtype) -> Any:
    """The pipeline on the device: built in code, or read from ``--model-path``."""
    if plan.model_path is not None:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(plan.model_path, dtype=dtype)
    else:
        pipe = build_pipeline(quick=plan.quick)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(plan.device, dtype)


def measure_dtype(plan: Plan, dtype: torch.dtype, folder: Path) -> tuple[list[dict[str, Any]], float]:
    """Every row for one dtype, and seconds from start to the first image of memebot's path."""
    started = time.perf_counter()
    pipe = load(plan, dtype)
    first_image = asyncio.run(full_path(pipe, 1, plan.size, 1, folder)) and time.perf_counter() - started
    label = str(dtype).removeprefix("torch.")
    rows: list[dict[str, Any]] = []
    for batch in plan.batches:
        plain = bare(pipe, batch, plan.size, plan.runs)
        rows.append({"dtype": label, "batch": batch, "case": "bare", "images_per_s": plain})
        winners = []
        for switch in switches(plan.device, dtype, plan.compile_on_cpu):
            speed = with_switch(pipe, switch, batch, plan)
            case = f"bare + {switch.name}" + ("" if speed else " (failed: see the log above)")
            rows.append({"dtype": label, "batch": batch, "case": case, "images_per_s": speed})
            if speed > plain * 1.02:
                winners.append(switch)
        rows.append(_memebot_row(pipe, plan, batch, label, [], folder))
        if winners:
            rows.append(_memebot_row(pipe, plan, batch, label, winners, folder))
    encode = encode_rate(pipe, plan.size, folder, plan.runs)
    rows.append(
        {"dtype": label, "batch": 9, "case": "encode 3x3 grids (1 CPU thread)", "images_per_s": encode}
    )
    return rows, first_image


def with_switch(pipe: Any, switch: Switch, batch: int, plan: Plan) -> float:
    """Images/s of the bare call with ``switch`` on; 0 when the switch fails on this machine.

    A switch that breaks here (a compiler missing, a mode this GPU lacks) is a finding, not a reason
    to lose the rest of the table.
    """
    try:
        switch.on(pipe)
        try:
            return bare(pipe, batch, plan.size, plan.runs)
        finally:
            switch.off(pipe)
    except Exception as error:
        print(f"{switch.name} failed at batch {batch}: {type(error).__name__}: {error}".splitlines()[0])
        return 0.0


def _memebot_row(
    pipe: Any, plan: Plan, batch: int, label: str, on: list[Switch], folder: Path
) -> dict[str, Any]:
    for switch in on:
        switch.on(pipe)
    try:
        speed = asyncio.run(full_path(pipe, batch, plan.size, plan.runs, folder))
    finally:
        for switch in reversed(on):
            switch.off(pipe)
    names = " + ".join(s.name for s in on)
    case = f"memebot + {names}" if on else "memebot"
    return {"dtype": label, "batch": batch, "case": case, "images_per_s": speed}


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's images/s over the best bare call of its dtype (encoding rows excepted)."""
    best: dict[str, float] = {}
    for row in rows:
        if row["case"].startswith("bare"):
            best[row["dtype"]] = max(best.get(row["dtype"], 0.0), row["images_per_s"])
    return [row | {"ratio": row["images_per_s"] / best[row["dtype"]]} for row in rows]


def verdict(rows: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """The goal: >= 100 images/s through memebot's path, within 10% of the best bare call (CUDA only)."""
    ours = [r for r in rows if r["case"].startswith("memebot")]
    best = max(ours, key=lambda r: r["images_per_s"])
    met = device.type == "cuda" and best["images_per_s"] >= GOAL_IMAGES_PER_S and best["ratio"] >= GOAL_RATIO
    return {"best_memebot": best, "goal_met": met, "measured_on_gpu": device.type == "cuda"}


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows as a fixed-width table."""
    print(f"{'dtype':<9} {'batch':>5}  {'case':<48} {'images/s':>9} {'vs best bare':>12}")
    for r in rows:
        print(
            f"{r['dtype']:<9} {r['batch']:>5}  {r['case']:<48} {r['images_per_s']:>9.2f} {r['ratio']:>12.2f}"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the plan, print the table and write the JSON; return what was written."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a narrowed pipeline at 64 px on the CPU")
    parser.add_argument("--model-path", type=Path, default=None, help="a real SD-Turbo-style folder")
    parser.add_argument("--batches", default="", help="comma-separated batch sizes")
    parser.add_argument("--runs", type=int, default=0, help="timed calls per row (default 5; quick 1)")
    parser.add_argument("--compile", action="store_true", help="try torch.compile on the CPU too (slow)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args(argv)
    plan = plan_from(args)
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in plan.dtypes:
            found, first[str(dtype).removeprefix("torch.")] = measure_dtype(plan, dtype, Path(tmp))
            rows += found
    rows = with_ratios(rows)
    device = torch.cuda.get_device_name(0) if plan.device.type == "cuda" else "CPU"
    print(f"{device}; {plan.size} px, 1 step, full VAE unless a row says otherwise")
    print_table(rows)
    result = {"device": device, "size": plan.size, "rows": rows, "first_image_s": first} | verdict(
        rows, plan.device
    )
    print(f"first image after start (load, move, warm-up): {first}")
    if plan.device.type != "cuda":
        print("no CUDA device: the goal (>= 100 images/s within 10% of bare) is for an H100-class GPU")
    else:
        met = "met" if result["goal_met"] else "NOT met"
        print(f"goal >= {GOAL_IMAGES_PER_S:.0f} images/s within 10% of bare: {met}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
