"""SD-Turbo-size throughput on a GPU: memebot's full path against the bare diffusers call, switch by switch.

Builds an SD-Turbo-architecture pipeline in code (real shapes, random weights, no download; see
``generators/pipelines/random_turbo.py``) or loads a real folder (``--model-path``). For each dtype and
batch size it measures images/s at 512 px, 1 step, full VAE:

- bare: the diffusers call alone (the baseline; the best bare row of a dtype is 1.00);
- bare with one switch on: channels-last, fused QKV projections, the tiny VAE decode, and on CUDA
  ``torch.compile`` in its modes (``reduce-overhead`` and ``max-autotune`` both capture CUDA graphs);
- memebot: the same batches as jobs through the queue, the worker, rendering and result files, with
  the switches off and with every switch that beat the bare call at that batch (of the compile modes,
  only the fastest: a compiled UNet is not compiled again). Jobs are sized so that whole jobs fill
  calls of exactly the row's batch (16 = two jobs of 8), and the row says so if a call was smaller;
- encode: grids rendered per second on one CPU thread, beside generation, to show whether encoding
  keeps up (the worker encodes on its own thread while the next batch denoises): its ratio is how many
  times faster than the best bare call encoding is, and below 1 it would be the bottleneck.

Every row starts from the pipeline as loaded: a switch is undone after its row (the original UNet and
VAE put back). Each compile row starts with ``torch._dynamo.reset()``: all compiled models share
dynamo's recompile budget (``recompile_limit``, 8 per function), and once it is spent a function runs
uncompiled without an error, so a row that hit it says "hit the recompile limit".

It also prints the time from start (building or loading, moving to the device, compiling, warming up)
to the first image. ``--quick`` runs a narrowed pipeline at 64 px on the CPU in float32 within a
minute, so the test suite can smoke-test this script on any machine; ``--compile --compile-backend
eager`` adds the compile rows there (dynamo alone, no C compiler needed).

    python benchmarks/bench_gpu.py [--quick] [--model-path DIR] [--json benchmarks/results/gpu.json]
    python benchmarks/bench_gpu.py --batches 1,8 --compile-modes reduce-overhead   # what gpu_check.sh runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.config import LimitsConfig, RenderConfig, WorkerConfig
from generators.pipelines.backend import DiffusersBackend, StepCallback
from generators.pipelines.device import native_bf16
from generators.pipelines.random_turbo import backend_for, build_pipeline, tiny_vae
from generators.pool import ModelPool
from generators.queue import InProcessQueue
from generators.requests import TERMINAL, BatchSpec, Finished, GenerationRequest, Job, Slot
from generators.results import render_job
from generators.worker import GenerationWorker

GOAL_IMAGES_PER_S = 100.0
GOAL_RATIO = 0.9
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
#: The most images one job may ask for (``--n``).
MAX_N = LimitsConfig().max_n
#: How dynamo says a function ran out of recompiles and will run uncompiled from now on.
LIMIT_HIT = "torch._dynamo hit config."

#: Undoes a switch.
Undo = Callable[[], object]


@dataclass(frozen=True)
class Switch:
    """A speed-up that can be turned on a loaded pipeline; turning it on returns how to turn it off."""

    name: str
    apply: Callable[[Any], Undo]
    compiles: bool = False


def _memory_format(pipe: Any, fmt: torch.memory_format) -> None:
    pipe.unet.to(memory_format=fmt)
    pipe.vae.to(memory_format=fmt)


def _channels_last(pipe: Any) -> Undo:
    _memory_format(pipe, torch.channels_last)
    return lambda: _memory_format(pipe, torch.contiguous_format)


def _fused_qkv(pipe: Any) -> Undo:
    pipe.fuse_qkv_projections()
    return pipe.unfuse_qkv_projections  # type: ignore[no-any-return]


def _tiny_vae(small: Any) -> Callable[[Any], Undo]:
    def apply(pipe: Any) -> Undo:
        original, pipe.vae = pipe.vae, small
        return lambda: setattr(pipe, "vae", original)

    return apply


def compile_switch(mode: str, backend: str = "inductor") -> Switch:
    """``torch.compile`` of the UNet in ``mode``; ``backend`` eager: dynamo alone, no C compiler needed.

    The compiled UNet is kept for the switch's life, so the memebot row of a batch reuses the bare
    row's compilation instead of compiling again.
    """
    made: dict[int, Any] = {}

    def apply(pipe: Any) -> Undo:
        original = pipe.unet
        if id(original) not in made:
            options: dict[str, Any] = {"mode": mode} if backend == "inductor" else {"backend": backend}
            made[id(original)] = torch.compile(original, **options)
        pipe.unet = made[id(original)]
        return lambda: setattr(pipe, "unet", original)

    name = f"compile {mode}" if backend == "inductor" else f"compile ({backend} backend)"
    return Switch(name, apply, compiles=True)


def switches(device: torch.device, dtype: torch.dtype, plan: Plan) -> list[Switch]:
    """The switches this device can run."""
    small = tiny_vae().to(device=device, dtype=dtype)
    found = [
        Switch("channels-last", _channels_last),
        Switch("fused QKV", _fused_qkv),
        Switch("tiny VAE decode", _tiny_vae(small)),
    ]
    if device.type == "cuda" or plan.compile_on_cpu:
        modes = plan.compile_modes if plan.compile_backend == "inductor" else plan.compile_modes[:1]
        found += [compile_switch(mode, plan.compile_backend) for mode in modes]
    return found


@contextmanager
def switched(pipe: Any, on: Sequence[Switch]) -> Iterator[None]:
    """``on`` turned on for the block, then off in reverse, and the UNet and VAE as they were before."""
    unet, vae = pipe.unet, pipe.vae
    undos: list[Undo] = []
    try:
        for switch in on:
            undos.append(switch.apply(pipe))
        yield
    finally:
        for undo in reversed(undos):
            undo()
        pipe.unet, pipe.vae = unet, vae  # whatever a failing switch left half done


class _LimitHits(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.hits: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(LIMIT_HIT):
            self.hits.append(message.splitlines()[0])


@contextmanager
def recompile_limit_hits() -> Iterator[list[str]]:
    """The recompile limits dynamo hits during the block: each one a function that now runs uncompiled."""
    handler = _LimitHits()
    logger = logging.getLogger("torch._dynamo")
    logger.addHandler(handler)
    try:
        yield handler.hits
    finally:
        logger.removeHandler(handler)


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


class CountingBackend:
    """memebot's backend over the benchmark's pipeline, noting the images of every pipeline call."""

    def __init__(self, backend: DiffusersBackend) -> None:
        self.backend = backend
        self.info = backend.info
        self.calls: list[int] = []

    def generate(
        self, spec: BatchSpec, slots: Sequence[Slot], on_step: StepCallback, pictures: Sequence[Any] = ()
    ) -> list[list[Any]]:
        """The pipeline call, counted."""
        self.calls.append(len(slots))
        return self.backend.generate(spec, slots, on_step, pictures)

    def preview(self, latents: torch.Tensor, index: int) -> Any:
        """The wrapped backend's preview."""
        return self.backend.preview(latents, index)


@dataclass(frozen=True)
class PathRun:
    """What memebot's path did: images/s, and the images in each timed pipeline call."""

    images_per_s: float
    calls: tuple[int, ...]


def job_size(batch: int) -> int:
    """Images per job so that whole jobs fill a call of exactly ``batch``: its largest divisor up to max n."""
    return max(n for n in range(1, min(batch, MAX_N) + 1) if batch % n == 0)


async def full_path(pipe: Any, batch: int, size: int, runs: int, folder: Path) -> PathRun:
    """Images/s of the same batches as jobs: queue, worker, render, files (after one warm-up call)."""
    per_job = job_size(batch)
    jobs_per_call = batch // per_job
    config = WorkerConfig(results_dir=folder, max_batch=batch, per_user_queue=1000, global_queue=1000)
    queue = InProcessQueue(per_user=1000, total=1000)
    backend = CountingBackend(backend_for(pipe, size=size))
    pool = ModelPool.serving(backend)
    pool.measure_batches = False  # calls of max_batch, the bare call's size, not of a measured limit
    async with GenerationWorker(
        pool, queue, config=config, limits=LimitsConfig(), render=RenderConfig()
    ) as worker:
        await _run_jobs(worker, [_job(f"warm{i}", per_job, i) for i in range(jobs_per_call)])
        backend.calls.clear()
        jobs = [_job(f"j{i}", per_job, i) for i in range(runs * jobs_per_call)]
        start = time.perf_counter()
        await _run_jobs(worker, jobs)
        elapsed = time.perf_counter() - start
    return PathRun(per_job * len(jobs) / elapsed, tuple(backend.calls))


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
    compile_modes: tuple[str, ...] = COMPILE_MODES
    compile_backend: str = "inductor"
    encode: bool = True


def cuda_dtypes(device: torch.device) -> tuple[torch.dtype, ...]:
    """float16, and bfloat16 where the card has bf16 tensor cores (elsewhere it is emulated, no contest)."""
    return (torch.float16, torch.bfloat16) if native_bf16(device) else (torch.float16,)


def plan_from(args: argparse.Namespace) -> Plan:
    """Sizes and dtypes for this machine: the GPU goal's, or the quick CPU smoke run's."""
    cuda = torch.cuda.is_available() and not args.quick
    device = torch.device("cuda" if cuda else "cpu")
    dtypes = cuda_dtypes(device) if cuda else (torch.float32,)
    if args.dtypes:
        dtypes = tuple(getattr(torch, name) for name in args.dtypes.split(","))
    return Plan(
        device=device,
        dtypes=dtypes,
        batches=tuple(int(b) for b in args.batches.split(","))
        if args.batches
        else ((1, 4, 8, 16) if cuda else (1, 2)),
        size=64 if args.quick else 512,
        runs=args.runs or (1 if args.quick else 5),
        quick=args.quick,
        model_path=args.model_path,
        compile_on_cpu=args.compile,
        compile_modes=tuple(args.compile_modes.split(",")),
        compile_backend=args.compile_backend,
        encode=not args.no_encode,
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
    torch._dynamo.reset()  # nothing compiled for the last dtype counts against this one's budget
    started = time.perf_counter()
    pipe = load(plan, dtype)
    asyncio.run(full_path(pipe, 1, plan.size, 1, folder))
    first_image = time.perf_counter() - started
    label = str(dtype).removeprefix("torch.")
    rows: list[dict[str, Any]] = []
    for batch in plan.batches:
        rows += measure_batch(pipe, plan, batch, label, folder)
    if plan.encode:
        encode = encode_rate(pipe, plan.size, folder, plan.runs)
        rows.append(row(label, 9, "encode 3x3 grids (1 CPU thread)", encode))
    return rows, first_image


def measure_batch(pipe: Any, plan: Plan, batch: int, label: str, folder: Path) -> list[dict[str, Any]]:
    """The bare call, with each switch, and memebot's path without and with the winners, at ``batch``."""
    plain = bare(pipe, batch, plan.size, plan.runs)
    rows = [row(label, batch, "bare", plain)]
    speeds: list[tuple[Switch, float]] = []
    for switch in switches(plan.device, pipe.unet.dtype, plan):
        speed, hits = with_switch(pipe, switch, batch, plan)
        case = f"bare + {switch.name}" + ("" if speed else " (failed: see the log above)")
        rows.append(row(label, batch, case, speed, hits))
        speeds.append((switch, speed))
    rows.append(memebot_row(pipe, plan, batch, label, [], folder))
    winners = pick_winners(speeds, plain)
    if winners:
        rows.append(memebot_row(pipe, plan, batch, label, winners, folder))
    return rows


def pick_winners(speeds: Sequence[tuple[Switch, float]], plain: float) -> list[Switch]:
    """The switches that beat the bare call by 2%; of the compile modes only the fastest."""
    won = [(switch, speed) for switch, speed in speeds if speed > plain * 1.02]
    compiled = max((pair for pair in won if pair[0].compiles), key=lambda pair: pair[1], default=None)
    return [switch for switch, _ in won if not switch.compiles or (compiled and switch is compiled[0])]


def with_switch(pipe: Any, switch: Switch, batch: int, plan: Plan) -> tuple[float, list[str]]:
    """Images/s of the bare call with ``switch`` on (0 when it fails here), and recompile limits hit.

    A switch that breaks here (a compiler missing, a mode this GPU lacks) is a finding, not a reason
    to lose the rest of the table.
    """
    if switch.compiles:
        torch._dynamo.reset()  # a fresh recompile budget, and no CUDA graphs of earlier rows
    try:
        with recompile_limit_hits() as hits, switched(pipe, [switch]):
            return bare(pipe, batch, plan.size, plan.runs), hits
    except Exception as error:
        print(f"{switch.name} failed at batch {batch}: {type(error).__name__}: {error}".splitlines()[0])
        return 0.0, []


def memebot_row(
    pipe: Any, plan: Plan, batch: int, label: str, on: Sequence[Switch], folder: Path
) -> dict[str, Any]:
    """memebot's path at ``batch`` with ``on`` switched on for the row only (0 when it fails here)."""
    names = " + ".join(s.name for s in on)
    case = f"memebot + {names}" if on else "memebot"
    with recompile_limit_hits() as hits:
        try:
            with switched(pipe, on):
                run = asyncio.run(full_path(pipe, batch, plan.size, plan.runs, folder))
        except Exception as error:  # a finding for the table, like a failing switch
            print(f"{case} failed at batch {batch}: {type(error).__name__}: {error}".splitlines()[0])
            return row(label, batch, f"{case} (failed: see the log above)", 0.0, hits)
    sizes = sorted(set(run.calls))
    if sizes != [batch]:
        case += f" (calls of {', '.join(map(str, sizes))})"
    return row(label, batch, case, run.images_per_s, hits) | {"images_per_call": sizes}


def row(label: str, batch: int, case: str, speed: float, limit_hits: Sequence[str] = ()) -> dict[str, Any]:
    """One table row; a row during which dynamo gave up compiling says so."""
    if limit_hits:
        case += " (hit the recompile limit: ran uncompiled)"
    return {
        "dtype": label,
        "batch": batch,
        "case": case,
        "images_per_s": speed,
        "recompile_limit_hit": bool(limit_hits),
    }


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
    print(f"{'dtype':<9} {'batch':>5}  {'case':<60} {'images/s':>9} {'vs best bare':>12}")
    for r in rows:
        print(
            f"{r['dtype']:<9} {r['batch']:>5}  {r['case']:<60} {r['images_per_s']:>9.2f} {r['ratio']:>12.2f}"
        )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a narrowed pipeline at 64 px on the CPU")
    parser.add_argument("--model-path", type=Path, default=None, help="a real SD-Turbo-style folder")
    parser.add_argument("--batches", default="", help="comma-separated batch sizes")
    parser.add_argument("--runs", type=int, default=0, help="timed calls per row (default 5; quick 1)")
    parser.add_argument("--compile", action="store_true", help="try torch.compile on the CPU too (slow)")
    parser.add_argument(
        "--compile-modes", default=",".join(COMPILE_MODES), help="comma-separated torch.compile modes"
    )
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        choices=("inductor", "eager"),
        help="eager: dynamo alone, one compile row (tests the rows on machines without a compiler)",
    )
    parser.add_argument("--dtypes", default="", help="comma-separated, e.g. float16,bfloat16")
    parser.add_argument("--no-encode", action="store_true", help="leave out the encoding row")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu.json"))
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the plan, print the table and write the JSON (after each dtype); return what was written."""
    args = parser().parse_args(argv)
    plan = plan_from(args)
    device = torch.cuda.get_device_name(plan.device) if plan.device.type == "cuda" else "CPU"
    print(f"{device}; {plan.size} px, 1 step, full VAE unless a row says otherwise")
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    result: dict[str, Any] = {}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in plan.dtypes:
            found, first[str(dtype).removeprefix("torch.")] = measure_dtype(plan, dtype, Path(tmp))
            found = with_ratios(found)  # ratios are within a dtype: each table stands alone
            print_table(found)
            rows += found
            # Written after each dtype, so a check that runs out of time keeps what it measured.
            result = {"device": device, "size": plan.size, "rows": rows, "first_image_s": first}
            result |= verdict(rows, plan.device) | {"complete": dtype == plan.dtypes[-1]}
            args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f"first image after start (load, move, warm-up): {first}")
    if plan.device.type != "cuda":
        print("no CUDA device: the goal (>= 100 images/s within 10% of bare) is for an H100-class GPU")
    else:
        met = "met" if result["goal_met"] else "NOT met"
        print(f"goal >= {GOAL_IMAGES_PER_S:.0f} images/s within 10% of bare: {met}")
    return result


if __name__ == "__main__":
    main()
