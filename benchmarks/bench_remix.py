"""What a remix costs: image-to-image against text-to-image on the same model, size and steps.

Each row is a pipeline call of ``--batch`` images through the backend the worker uses, alternating with
the text-to-image call in the same process (the baseline, measured in the same run):

- ``strength 1``: as many denoising steps as the baseline, so the difference is the cost of encoding
  the pictures with the VAE (and fitting them);
- ``strength 0.6`` (the default): fewer denoising steps, so a remix is usually faster than a new grid.

The model is the ``tiny`` preset by default, or ``--model real-size``: the SD-Turbo-shaped pipeline
built in code with random weights (``generators.pipelines.random_turbo``), whose full VAE makes the
encoding cost visible. ``--quick`` narrows the real-size pipeline for a smoke run.

    python benchmarks/bench_remix.py [--model tiny|real-size] [--json benchmarks/results/remix.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from generators.config import ModelConfig
from generators.pipelines import DiffusersBackend
from generators.pipelines.loading import load_backend
from generators.pipelines.random_turbo import backend_for, build_pipeline
from generators.requests import BatchSpec, Slot


def backend(model: str, quick: bool, size: int) -> DiffusersBackend:
    """The model to measure, at ``size`` pixels."""
    if model == "real-size":
        return backend_for(build_pipeline(quick=quick), size=size)
    return load_backend(ModelConfig(name="tiny", size=size))


def pictures(count: int, size: int) -> list[Image.Image]:
    """Distinct start pictures (smooth gradients, as photos are smoother than noise)."""
    ramp = np.linspace(0, 255, size * size * 3, dtype=np.float64).reshape(size, size, 3)
    return [Image.fromarray(((ramp * (i + 1)) % 256).astype(np.uint8)) for i in range(count)]


def timed(model: DiffusersBackend, spec: BatchSpec, batch: int, starts: Sequence[Image.Image]) -> float:
    """Seconds for one call of ``batch`` images."""
    slots = [Slot("a hamster godzilla", "", seed, "x" if starts else "") for seed in range(batch)]
    start = time.perf_counter()
    model.generate(spec, slots, lambda *a: None, starts)
    return time.perf_counter() - start


def measure(model: DiffusersBackend, *, size: int, steps: int, batch: int, runs: int) -> list[dict[str, Any]]:
    """Images/s of text-to-image and of remixes at strength 1 and 0.6, alternating call by call."""
    starts = pictures(batch, size)
    cases: dict[str, tuple[BatchSpec, Sequence[Image.Image]]] = {
        "text-to-image": (BatchSpec(size, size, steps), ()),
        "remix, strength 1": (BatchSpec(size, size, steps, strength=1.0, picture=True), starts),
        "remix, strength 0.6": (BatchSpec(size, size, steps, strength=0.6, picture=True), starts),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs + 1):  # the first round warms every path up
        for name, (spec, given) in cases.items():
            seconds = timed(model, spec, batch, given)
            if run:
                times[name].append(seconds)
    base = batch / statistics.median(times["text-to-image"])
    rows = []
    for name, (spec, _) in cases.items():
        rate = batch / statistics.median(times[name])
        rows.append(
            {
                "case": name,
                "denoising_steps": spec.denoising_steps,
                "images_per_s": round(rate, 3),
                "baseline_images_per_s": round(base, 3),
                "ratio": round(rate / base, 3),
            }
        )
    return rows


def measure_clips(model: DiffusersBackend, *, size: int, steps: int, runs: int) -> list[dict[str, Any]]:
    """Frames/s of text-to-clip and of image-to-clip (the picture as the first frame), same model and
    frames, alternating call by call."""
    frames = model.info.frames
    cases: dict[str, tuple[BatchSpec, Sequence[Image.Image]]] = {
        "text-to-clip": (BatchSpec(size, size, steps, frames=frames), ()),
        "image-to-clip": (BatchSpec(size, size, steps, frames=frames, picture=True), pictures(1, size)),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs + 1):
        for name, (spec, given) in cases.items():
            seconds = timed(model, spec, 1, given)
            if run:
                times[name].append(seconds)
    base = frames / statistics.median(times["text-to-clip"])
    return [
        {
            "case": name,
            "denoising_steps": spec.denoising_steps,
            "images_per_s": round(frames / statistics.median(times[name]), 3),
            "baseline_images_per_s": round(base, 3),
            "ratio": round(frames / statistics.median(times[name]) / base, 3),
        }
        for name, (spec, _) in cases.items()
    ]


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    print(title)
    print(f"{'case':<22} {'steps run':>9} {'images/s':>10} {'baseline':>10} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['case']:<22} {r['denoising_steps']:>9} {r['images_per_s']:>10.3f} "
            f"{r['baseline_images_per_s']:>10.3f} {r['ratio']:>7.3f}"
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=["tiny", "real-size"], default="tiny")
    parser.add_argument(
        "--size", type=int, default=None, help="pixels per side (default: 256 tiny, 512 real)"
    )
    parser.add_argument("--steps", type=int, default=None, help="scheduled steps (default: 4 tiny, 2 real)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a narrowed real-size pipeline (smoke run)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/remix.json"))
    parser.add_argument(
        "--clip-model", default="tiny-ltx", help="a clip model with an image-to-video form ('' to skip)"
    )
    args = parser.parse_args(argv)
    real = args.model == "real-size"
    size = args.size or (512 if real else 256)
    steps = args.steps or (2 if real else 4)
    model = backend(args.model, args.quick, size)
    rows = measure(model, size=size, steps=steps, batch=args.batch, runs=args.runs)
    title = f"{args.model}{' (quick)' if args.quick else ''}, {size} px, {steps} steps, batch {args.batch}"
    print_table(rows, title)
    result: dict[str, Any] = {
        "model": args.model,
        "size": size,
        "steps": steps,
        "batch": args.batch,
        "rows": rows,
    }
    if args.clip_model:
        clip_size = 64 if args.model == "tiny" else 256
        clips = load_backend(ModelConfig(name=args.clip_model, size=clip_size, frames=9), args.clip_model)
        clip_rows = measure_clips(clips, size=clip_size, steps=steps, runs=args.runs)
        print()
        print_table(
            clip_rows,
            f"{args.clip_model}, {clip_size} px, {clips.info.frames} frames, {steps} steps (frames/s)",
        )
        result["clips"] = {
            "model": args.clip_model,
            "size": clip_size,
            "frames": clips.info.frames,
            "rows": clip_rows,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
