"""Bots and GPU workers on one Redis, with the real tiny pipeline: sharing, dying, poison, caps, restarts."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from redis.asyncio import Redis

from bot.jobs import JobService
from bot.store import JobStatus
from generators.errors import QueueFull
from generators.pipelines import DiffusersBackend
from generators.requests import Cancelled, Failed, Finished, Started, Step
from generators.streams.codec import encode
from generators.streams.heartbeat import live_workers
from generators.streams.keys import GROUP, Keys
from generators.streams.take import DEAD_REASON, RedisQueue
from generators.worker import SOURCE_GONE_REASON
from tests.generators.streams.cluster import (
    BOTH,
    Heard,
    bot,
    stand_in,
    start_worker,
    worker,
    write_config,
)
from tests.helpers import TEST_SIZE

#: About two seconds of denoising on two CPU cores: long enough to act while it runs.
SLOW = "a slow one --n 9 --steps 50 --ar 3:1"


async def test_two_workers_share_a_burst_in_fair_order(
    tiny_backend: DiffusersBackend,
    other_tiny_backend: DiffusersBackend,
    client: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    heard, owners = Heard(), {}
    await stand_in(client, keys)  # the jobs are queued before the workers start
    async with bot(client, keys, tmp_path / "bot") as service:
        service.subscribe("cli", heard)
        for owner in "abcd":  # everyone's jobs are queued before a worker looks
            for i in range(3):
                record = await service.submit(
                    service.parse(f"{owner}{i} --n 2 --steps 6"), owner=owner, platform="cli", reply_to={}
                )
                owners[record.id] = owner
        async with (
            worker(tiny_backend, client, keys, "w1", tmp_path, batching=False) as first,
            worker(other_tiny_backend, client, keys, "w2", tmp_path, batching=False) as second,
        ):
            await heard.until(owners)
            started = [job_id for job_id, event in heard.order if isinstance(event, Started)]
        for job_id in owners:
            heard.finished(job_id)  # exactly one end each, and it is a result
            stored = await service.store.get(job_id)
            assert stored is not None and stored.status is JobStatus.DONE
            assert stored.result is not None and stored.result.primary.path.is_file()
    assert first.done + second.done == 12
    assert first.done >= 3 and second.done >= 3  # both took a share
    rounds = [{owners[job_id] for job_id in started[i : i + 4]} for i in (0, 4, 8)]
    assert rounds == [set("abcd")] * 3  # round-robin: nobody's second job before everyone's first


async def test_a_job_on_a_killed_worker_finishes_on_another_of_its_model_and_is_delivered_once(
    client: Redis, keys: Keys, redis_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, keys, redis_url, "  claim_idle_s: 1.0\n", video=True)
    serves = {"w1": "tiny", "w2": "tiny", "v1": "tiny-video"}
    procs = {name: await start_worker(config, name, models) for name, models in serves.items()}
    try:
        await _until_workers(client, keys, set(serves))
        heard = Heard()
        async with bot(client, keys, tmp_path / "bot", catalog=BOTH) as service:
            service.subscribe("cli", heard)
            record = await service.submit(service.parse(SLOW), owner="u1", platform="cli", reply_to={})
            await heard.until([record.id], Started)
            (pending,) = await client.xpending_range(keys.queue("tiny", "u1"), GROUP, "-", "+", 10)
            victim = pending["consumer"].decode()
            procs[victim].send_signal(signal.SIGKILL)
            await heard.until([record.id], Finished, limit_s=120)  # a loaded machine runs it slowly
            await asyncio.sleep(0.3)  # room for a second delivery, if there were one
            finished = heard.finished(record.id)
            stored = await service.store.get(record.id)
            assert stored is not None and stored.status is JobStatus.DONE
            with Image.open(finished.result.primary.path) as grid:
                assert grid.size == (3 * 2 * TEST_SIZE, 3 * TEST_SIZE)
        survivor = ({"w1", "w2"} - {victim}).pop()
        assert await procs[victim].wait() == -signal.SIGKILL
        async with asyncio.timeout(10):  # its next heartbeat counts the job; the clip worker took none
            while {w.name: w.done for w in await live_workers(client, keys)} != {survivor: 1, "v1": 0}:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        for name in (survivor, "v1"):
            procs[name].send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert [await procs[name].wait() for name in (survivor, "v1")] == [0, 0]  # graceful stops
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _until_workers(client: Redis, keys: Keys, names: set[str], limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while {w.name for w in await live_workers(client, keys)} != names:
        assert time.monotonic() < deadline, "the workers did not start"
        await asyncio.sleep(0.2)


async def test_a_poison_job_goes_to_the_dead_letter_stream_and_its_owner_is_told(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    heard = Heard()
    await stand_in(client, keys)  # the ghosts send no heartbeat
    async with bot(client, keys, tmp_path / "bot") as service:
        service.subscribe("cli", heard)
        poison = await service.submit(service.parse("poison"), owner="mallory", platform="cli", reply_to={})
        for ghost in ("ghost1", "ghost2"):  # each takes the job and dies (no heartbeat, no answer)
            queue = RedisQueue(client, keys, name=ghost, models=["tiny"], claim_idle_s=0.2, max_deliveries=2)
            assert [job.id for job in await queue.take(lambda job: 0, lambda job: 1, 1)] == [poison.id]
            await asyncio.sleep(0.25)
        async with worker(tiny_backend, client, keys, "w1", tmp_path, claim_idle_s=0.2, max_deliveries=2):
            fine = await service.submit(service.parse("fine"), owner="alice", platform="cli", reply_to={})
            await heard.until([poison.id], Failed)
            await heard.until([fine.id])  # the worker goes on with other jobs
        assert heard.ends(poison.id) == [Failed(DEAD_REASON)]
        stored = await service.store.get(poison.id)
        assert stored is not None and stored.status is JobStatus.FAILED and stored.error == DEAD_REASON
    ((_, dead),) = await client.xrange(keys.dead)
    assert dead[b"id"] == poison.id.encode() and dead[b"owner"] == b"mallory"
    assert dead[b"deliveries"] == b"3"
    assert not await client.exists(keys.queue("tiny", "mallory"), keys.job(poison.id))


async def test_two_bot_processes_share_one_per_user_cap_and_one_global_cap(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    await stand_in(client, keys)
    async with (
        bot(client, keys, tmp_path / "a", per_user=2, total=3) as first,
        bot(client, keys, tmp_path / "b", per_user=2, total=3) as second,
    ):

        async def submit(service: JobService, owner: str) -> str:
            record = await service.submit(service.parse("a cat"), owner=owner, platform="cli", reply_to={})
            return record.id

        await submit(first, "u")
        await submit(second, "u")
        for service in (first, second):
            with pytest.raises(QueueFull, match="already have 2 jobs waiting"):
                await submit(service, "u")
        await submit(first, "v")
        with pytest.raises(QueueFull, match="queue is full"):
            await submit(second, "w")
        assert await first.store.stats() == {"queued": 2}
        assert await second.store.stats() == {"queued": 1}
    assert await client.get(keys.total) == b"3"


async def test_a_restarted_bot_follows_its_jobs_without_queueing_them_twice(
    tiny_backend: DiffusersBackend,
    client: Redis,
    keys: Keys,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "bot"
    async with worker(tiny_backend, client, keys, "w1", tmp_path) as relay:
        async with bot(client, keys, folder) as before:
            quick = await before.submit(before.parse("quick --n 1"), owner="u1", platform="cli", reply_to={})
            slow = await before.submit(before.parse(SLOW), owner="u2", platform="cli", reply_to={})
        # The bot is down: the quick job ends meanwhile, the slow one is running when it comes back.
        async with asyncio.timeout(30):
            while await client.exists(keys.job(quick.id)):  # noqa: ASYNC110 - nothing to wait on
                await asyncio.sleep(0.02)
        assert await client.hget(keys.job(slow.id), "state") == b"running"
        heard = Heard()
        async with bot(client, keys, folder) as after:
            after.subscribe("cli", heard)
            recovered = await after.recover()
            assert {r.id for r in recovered} == {quick.id, slow.id}
            stored = await after.store.get(quick.id)  # recorded from the events that waited in Redis
            assert stored is not None and stored.status is JobStatus.DONE
            assert stored.result is not None and stored.result.primary.path.is_file()
            await heard.until([slow.id])
            heard.finished(slow.id)
            stored = await after.store.get(slow.id)
            assert stored is not None and stored.status is JobStatus.DONE
    assert relay.done == 2  # each job ran once
    assert "requeued" not in caplog.text
    assert "following 1 jobs the queue still holds" in caplog.text


async def test_cancel_stops_a_job_running_on_a_remote_worker_at_its_next_step(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    heard = Heard()
    async with (
        bot(client, keys, tmp_path / "bot") as service,
        worker(tiny_backend, client, keys, "w1", tmp_path) as relay,
    ):
        service.subscribe("cli", heard)
        record = await service.submit(service.parse(SLOW), owner="u1", platform="cli", reply_to={})
        await heard.until([record.id], Step)
        await service.cancel(record.id, by="u1")
        await heard.until([record.id], Cancelled, limit_s=30)
        steps = [e for e in heard.events[record.id] if isinstance(e, Step)]
        assert heard.ends(record.id) == [Cancelled()]
        assert steps[-1].i < 50  # stopped early (two chunks of 50 steps would be 100)
        stored = await service.store.get(record.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED
        assert relay.done == 1
    assert not await client.exists(keys.cancel(record.id), keys.job(record.id))


async def test_a_second_result_for_the_same_job_is_not_delivered_again(
    tiny_backend: DiffusersBackend,
    client: Redis,
    keys: Keys,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard = Heard()
    async with (
        bot(client, keys, tmp_path / "bot") as service,
        worker(tiny_backend, client, keys, "w1", tmp_path),
    ):
        service.subscribe("cli", heard)
        record = await service.submit(service.parse("once --n 1"), owner="u1", platform="cli", reply_to={})
        await heard.until([record.id])
        first = heard.finished(record.id)
        # As if a second worker had finished it too and its event got through.
        await client.xadd(service.runner.stream, encode(record.id, first))  # type: ignore[attr-defined]
        await service.runner.sync()
        await asyncio.sleep(0.1)
    assert heard.ends(record.id) == [first]
    assert "cannot go from done to done" in caplog.text


async def test_memebot_imagine_runs_on_a_memebot_worker(
    client: Redis, keys: Keys, redis_url: str, tmp_path: Path
) -> None:
    """The commands end to end: the bot side holds no model, the worker process runs it."""
    config = write_config(tmp_path, keys, redis_url)
    proc = await start_worker(config, "gpu0")
    try:
        await _until_workers(client, keys, {"gpu0"})
        out = tmp_path / "grid.png"
        bot = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "--config", str(config), "imagine", "a cat --n 4", "-q"),
            *("-o", str(out)),
            stderr=subprocess.PIPE,
        )
        _, err = await bot.communicate()
        assert bot.returncode == 0, err.decode()
        with Image.open(out) as grid:
            assert grid.size == (2 * TEST_SIZE, 2 * TEST_SIZE)
        # It stopped as soon as it had its result, and still acknowledged every event it read.
        streams = [key async for key in client.scan_iter(match=f"{keys.prefix}:events:*")]
        assert len(streams) == 1 and await client.xlen(streams[0]) == 0
        async with asyncio.timeout(10):  # its next heartbeat counts the job
            while [(w.models, w.done) for w in await live_workers(client, keys)] != [(("tiny",), 1)]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        assert await live_workers(client, keys) == []  # a stopping worker withdraws its heartbeat
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_remix_travels_to_its_worker_with_its_picture(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    heard = Heard()
    async with (
        bot(client, keys, tmp_path / "bot") as service,
        worker(tiny_backend, client, keys, "w1", tmp_path),
    ):
        service.subscribe("cli", heard)
        jobs = {}
        for colour in ("red", "blue"):
            source = await service.sources.take(_png(colour))
            request = service.parse("a cat --n 1 --seed 3 --strength 0.5 --steps 2", source=source)
            jobs[colour] = (await service.submit(request, owner="u1", platform="cli", reply_to={})).id
        await heard.until(jobs.values())
        pixels = {
            c: Image.open(heard.finished(j).result.primary.path).convert("RGB").tobytes()
            for c, j in jobs.items()
        }
        assert pixels["red"] != pixels["blue"]
        # The worker took its copy from Redis (the bot's folder is not the worker's).
        assert len(list((tmp_path / "w1" / ".sources").glob("*.png"))) == 2

        gone = await service.sources.take(_png("green"))
        await client.delete(keys.source(gone.digest))  # as if it expired on Redis before the take
        service.sources.path(gone.digest).unlink()
        request = service.parse("a cat --n 1", source=gone)
        job_id = (await service.submit(request, owner="u1", platform="cli", reply_to={})).id
        await heard.until([job_id], Failed)
        assert heard.ends(job_id) == [Failed(SOURCE_GONE_REASON)]


def _png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 48), colour).save(buffer, "PNG")
    return buffer.getvalue()
