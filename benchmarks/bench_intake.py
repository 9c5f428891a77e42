"""Hostile pictures through the intake: what each costs to read, and what a burst of them does to the bot.

- per input (``tests/pictures.py``: scan bombs, header bombs of every allowed format, garbage metadata,
  too many pieces, truncated files, formats not taken): the outcome, the CPU seconds and the peak RSS
  of the decoding process (``python -m generators.decode``, as the bot runs it), against the baseline of
  the code before: Pillow's own ``open``/``load``/``exif_transpose``/``convert`` of any format, cut off
  at 30 s of CPU;
- burst: ``--burst`` copies of each of the worst inputs at once through ``decode_isolated``: the
  event-loop lag of a 10 ms ticker (measured as ``bench_worker.py`` does) against the same ticker idle,
  and the slowest ``asyncio.to_thread`` round trip meanwhile.

Goals: no input over 2 s of CPU or 300 MB; lag under 100 ms during the burst.

    python benchmarks/bench_intake.py [--json benchmarks/results/intake.json] [--burst 8] [--scale 1]
        [--side 1024]   # the long side pictures are read at: a remix's 1024 (limits.max_side), /meme's 2048
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.decode import BadImage, IntakeLimits, decode_isolated
from tests.pictures import corpus

ROOT = Path(__file__).resolve().parents[1]
CPU_GOAL_S, RSS_GOAL_MB, LAG_GOAL_MS = 2.0, 300, 100
BASELINE_CPU_CAP_S = 30
LIMITS = IntakeLimits()
# The decode before: any format Pillow knows, no pieces counted, EXIF orientation outside any handling.
#: Both report their own peak RSS at exit (``VmHWM``: the kernel's figure for a child counts the parent
#: it was forked from).
PEAK = """
import atexit, sys
def _peak():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print("PEAK", line.split()[1], file=sys.stderr, flush=True)
atexit.register(_peak)
"""
OURS = PEAK + "from generators.decode import main\nsys.exit(main(sys.argv[1:]))\n"
BASELINE = (
    PEAK
    + f"""
import io, resource, sys, warnings
resource.setrlimit(resource.RLIMIT_CPU, ({BASELINE_CPU_CAP_S}, {BASELINE_CPU_CAP_S} + 1))
from PIL import Image, ImageOps
warnings.simplefilter("ignore")
data = open(sys.argv[1], "rb").read()
try:
    image = Image.open(io.BytesIO(data))
    if image.size[0] * image.size[1] > 4096 * 4096:
        print("NO too many pixels")
        sys.exit(0)
    image.seek(0)
    image.load()
except Exception as error:
    print("NO", type(error).__name__)
    sys.exit(0)
picture = ImageOps.exif_transpose(image).convert("RGB")
print("OK", *picture.size)
"""
)


def measured(command: list[str], stdin: bytes | None) -> dict[str, Any]:
    """Run ``command``; its first output line, CPU seconds and peak RSS (from the kernel, at its exit)."""
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    ) as process:
        assert process.stdin and process.stdout and process.stderr
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.close()
        first = process.stdout.readline().decode(errors="replace").strip()
        process.stdout.read()
        peak = [line.split()[1] for line in process.stderr.read().decode().splitlines() if "PEAK" in line]
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    outcome = first[:70] if first else f"killed (exit {process.returncode})"
    return {
        "outcome": outcome,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "rss_mb": round(int(peak[0]) / 1024, 1) if peak else None,  # None: killed before it could say
    }


def per_input(scale: int, side: int) -> list[dict[str, Any]]:
    """Each hostile picture through the bot's decoding process and through the baseline."""
    limits = (LIMITS.max_bytes, LIMITS.max_pixels, side, LIMITS.decode_s, LIMITS.decode_memory)
    args = [str(n) for n in limits]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, build in corpus(scale=scale).items():
            data = build()
            path = Path(folder) / "picture"
            path.write_bytes(data)
            ours = measured([sys.executable, "-c", OURS, *args], data)
            before = measured([sys.executable, "-c", BASELINE, str(path)], None)
            rows.append({"input": name, "bytes": len(data), "ours": ours, "baseline": before})
            print(f"  {name}: {ours['outcome']} ({ours['cpu_s']} s, {ours['rss_mb']} MB)", flush=True)
    return rows


async def ticker_lag(busy: asyncio.Future[Any] | None, duration: float = 1.0) -> list[float]:
    """Lateness (s) of each tick of a 10 ms ticker while ``busy`` runs (or for ``duration`` s), the
    measure ``bench_worker.py`` takes."""
    lags, interval = [], 0.010
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    expected = loop.time() + interval
    while (busy is not None and not busy.done()) or (busy is None and loop.time() < end):
        await asyncio.sleep(max(0.0, expected - loop.time()))
        lags.append(max(0.0, loop.time() - expected))
        expected = max(expected + interval, loop.time())
    return lags


async def thread_round_trips(busy: asyncio.Future[Any]) -> list[float]:
    """Seconds each ``asyncio.to_thread`` call took to come back while ``busy`` runs."""
    trips = []
    while not busy.done():
        started = time.perf_counter()
        await asyncio.to_thread(time.perf_counter)
        trips.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return trips


async def burst(inputs: dict[str, bytes], copies: int, side: int) -> dict[str, Any]:
    """``copies`` of every input at once: loop lag and thread round trips against the idle loop."""
    idle = await ticker_lag(None)

    async def one(data: bytes) -> str:
        try:
            return "accepted " + "×".join(
                map(str, (await decode_isolated(data, limits=LIMITS, max_side=side)).size)
            )
        except BadImage as refusal:
            return f"refused: {refusal}"

    started = time.perf_counter()
    work = asyncio.gather(*(one(d) for d in inputs.values() for _ in range(copies)))
    lags, trips = await asyncio.gather(ticker_lag(work), thread_round_trips(work))
    outcomes = await work
    return {
        "inputs": list(inputs),
        "decodes": len(outcomes),
        "seconds": round(time.perf_counter() - started, 2),
        "outcomes": sorted(set(outcomes)),
        "idle_lag_max_ms": round(max(idle) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
        "lag_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000, 1),
        "to_thread_max_ms": round(max(trips) * 1000, 1),
    }


def print_table(rows: list[dict[str, Any]], storm: dict[str, Any]) -> None:
    print(f"\n{'input':<38} {'bytes':>9}  {'ours: outcome':<44} {'cpu s':>6} {'MB':>6}  {'before cpu s':>12}")
    for r in rows:
        ours, before = r["ours"], r["baseline"]
        print(
            f"{r['input']:<38} {r['bytes']:>9}  {ours['outcome'][:44]:<44} {ours['cpu_s']:>6} "
            f"{ours['rss_mb']:>6}  {before['cpu_s']:>12}"
        )
    worst_cpu = max(rows, key=lambda r: r["ours"]["cpu_s"])
    worst_rss = max(rows, key=lambda r: r["ours"]["rss_mb"] or 0)
    print(f"\nworst CPU: {worst_cpu['input']} {worst_cpu['ours']['cpu_s']} s (goal <= {CPU_GOAL_S})")
    print(f"worst RSS: {worst_rss['input']} {worst_rss['ours']['rss_mb']} MB (goal <= {RSS_GOAL_MB})")
    slowest_before = max(rows, key=lambda r: r["baseline"]["cpu_s"])
    print(f"worst before: {slowest_before['input']} {slowest_before['baseline']['cpu_s']} s of CPU")
    print(
        f"burst of {storm['decodes']} decodes ({', '.join(storm['inputs'])}) in {storm['seconds']} s: "
        f"loop lag max {storm['lag_max_ms']} ms, p99 {storm['lag_p99_ms']} ms (idle max "
        f"{storm['idle_lag_max_ms']} ms; goal < {LAG_GOAL_MS}); to_thread max {storm['to_thread_max_ms']} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/intake.json"))
    parser.add_argument("--burst", type=int, default=8, help="copies of each worst input at once")
    parser.add_argument("--scale", type=int, default=1, help="divide the inputs' sides and counts")
    parser.add_argument("--side", type=int, default=1024, help="the long side pictures are read at")
    args = parser.parse_args()
    rows = per_input(args.scale, args.side)
    worst = sorted(rows, key=lambda r: r["ours"]["cpu_s"])[-2:]
    pictures = corpus(scale=args.scale)
    storm = asyncio.run(burst({r["input"]: pictures[r["input"]]() for r in worst}, args.burst, args.side))
    print_table(rows, storm)
    cpu = max(r["ours"]["cpu_s"] for r in rows)
    rss = max(r["ours"]["rss_mb"] or RSS_GOAL_MB + 1 for r in rows)
    met = cpu <= CPU_GOAL_S and rss <= RSS_GOAL_MB and storm["lag_max_ms"] < LAG_GOAL_MS
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {"side": args.side, "worst_cpu_s": cpu, "worst_rss_mb": rss, "goals_met": met}
    args.json.write_text(json.dumps({"rows": rows, "burst": storm, **summary}, indent=2))
    print(f"goals met: {met}")


if __name__ == "__main__":
    main()
