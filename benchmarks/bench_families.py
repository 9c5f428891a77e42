"""Every family through memebot's whole path against the bare diffusers call on the same pipeline.

Per family: images (or clip frames) per second through memebot (the in-process queue, the worker, the
grid or clip encoder, the result file) and through the bare ``pipe(...)`` call with the same arguments,
alternating job by job in one process (the baseline is measured in the same run), their ratio, and the
time to the first result from a cold start (loading the model included).

By default each family's built-in tiny preset (random weights built in code, real latent layout);
``--model NAME=PATH`` (repeatable) measures downloaded models instead, e.g. on a CUDA machine
``--model flux-schnell=/models/flux-schnell``.

    python benchmarks/bench_families.py [--families tiny-flux,tiny-wan] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.pool import ModelPool
from generators.queue import InProcessQueue
from generators.requests import Finished, GenerationRequest, Job, Kind
from generators.worker import GenerationWorker

TINY = [
    "tiny",
    "tiny-sdxl",
    "tiny-sd3",
    "tiny-flux",
    "tiny-pixart",
    "tiny-sana",
    "tiny-video",
    "tiny-animatediff",
    "tiny-cogvideox",
    "tiny-ltx",
    "tiny-wan",
]


def bare_call(model: DiffusersBackend, size: int, images: int, steps: int, seed: int) -> float:
    """Seconds for the bare pipeline call memebot would make for one job."""
    video = model.info.kind is Kind.VIDEO
    kwargs: dict[str, Any] = {
        "prompt": ["a hamster godzilla"] * (1 if video else images),
        "num_inference_steps": steps,
        "width": size,
        "height": size,
        "guidance_scale": model.info.guidance,
        "generator": [torch.Generator("cpu").manual_seed(seed + i) for i in range(1 if video else images)],
        "output_type": "np",
    }
    if video:
        kwargs["num_frames"] = model.info.frames
    if model.traits.binning:
        kwargs["use_resolution_binning"] = False
    if model.traits.clean_caption:
        kwargs["clean_caption"] = False
    start = time.perf_counter()
    with torch.inference_mode():
        model.pipe(**kwargs)
    return time.perf_counter() - start


async def memebot_jobs(worker: GenerationWorker, model: DiffusersBackend, images: int, seed: int) -> float:
    """Seconds for one job through the queue, the worker and the encoder, until its file is written."""
    video = model.info.kind is Kind.VIDEO
    request = GenerationRequest(
        "a hamster godzilla", n=1 if video else images, seed=seed, kind=model.info.kind
    )
    job = Job(f"j{seed}", "bench", request)
    start = time.perf_counter()
    worker.submit(job)
    while True:
        _, event = await worker.events.get()
        if isinstance(event, Finished):
            return time.perf_counter() - start


async def measure(name: str, config: ModelConfig, runs: int, images: int, folder: Path) -> dict[str, Any]:
    """One family's row: memebot vs bare, alternating, and the cold start to the first result."""
    cold = time.perf_counter()
    model = load_backend(config, name)
    worker = GenerationWorker(
        ModelPool.serving(model),
        InProcessQueue(per_user=100, total=100),
        config=WorkerConfig(results_dir=folder, max_batch=images),
        limits=LimitsConfig(),
        render=RenderConfig(),
    )
    units = model.info.frames if model.info.kind is Kind.VIDEO else images
    ours: list[float] = []
    bare: list[float] = []
    async with worker:
        first = await memebot_jobs(worker, model, images, 0)
        first_s = time.perf_counter() - cold
        for run in range(1, runs + 1):
            ours.append(await memebot_jobs(worker, model, images, run))
            bare.append(bare_call(model, model.info.size, images, model.info.steps, run))
    ours_rate = units / statistics.median(ours)
    bare_rate = units / statistics.median(bare)
    return {
        "model": name,
        "family": model.info.family,
        "kind": model.info.kind.value,
        "units_per_job": units,
        "memebot_per_s": round(ours_rate, 3),
        "bare_per_s": round(bare_rate, 3),
        "ratio": round(ours_rate / bare_rate, 3),
        "first_result_s": round(first_s, 2),
        "first_job_s": round(first, 2),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'model':<18} {'family':<14} {'per job':>7} {'memebot/s':>10} {'bare/s':>9} {'ratio':>6} first")
    for r in rows:
        print(
            f"{r['model']:<18} {r['family']:<14} {r['units_per_job']:>7} {r['memebot_per_s']:>10.2f} "
            f"{r['bare_per_s']:>9.2f} {r['ratio']:>6.2f} {r['first_result_s']:>6.1f}s"
        )


def configs(args: argparse.Namespace) -> dict[str, ModelConfig]:
    """The models to measure: named downloaded ones, else the tiny presets at small sizes."""
    if args.model:
        pairs = [item.split("=", 1) for item in args.model]
        return {name: ModelConfig(name=name, path=Path(path)) for name, path in pairs}
    names = args.families.split(",") if args.families else TINY
    return {name: ModelConfig(name=name, size=args.size, steps=args.steps, frames=9) for name in names}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--families", default="", help="comma-separated tiny presets (default: all)")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of a downloaded model")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--images", type=int, default=4, help="images per grid job")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/families.json"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memebot-bench-") as folder:
        for name, config in configs(args).items():
            rows.append(asyncio.run(measure(name, config, args.runs, args.images, Path(folder))))
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "device": _device()}, indent=2))
    return rows


def _device() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    main()
