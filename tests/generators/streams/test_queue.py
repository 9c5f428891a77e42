"""The Redis queue itself: fair order across bots, batches, claims, take-overs, cancels and clean keys."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from redis.asyncio import Redis

from generators.queue import InProcessQueue
from generators.requests import (
    Cancelled,
    Failed,
    Finished,
    GenerationResult,
    MediaFile,
    Preview,
    Queued,
    Started,
    Step,
)
from generators.streams.codec import decode, encode
from generators.streams.keys import GROUP, Keys
from tests.generators.streams.cluster import Heard, bot, images, stand_in, steps, taker


@pytest.fixture(autouse=True)
async def _served(client: Redis, keys: Keys) -> None:
    """The takers here send no heartbeat: a stand-in's says tiny is served, so the bots queue its jobs."""
    await stand_in(client, keys)


async def test_jobs_from_two_bots_are_taken_in_the_in_process_queues_order(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    local = InProcessQueue(per_user=10, total=100)
    async with bot(client, keys, tmp_path / "a") as first, bot(client, keys, tmp_path / "b") as second:
        for service, owner, count in ((first, "alice", 3), (second, "bob", 2), (first, "carol", 1)):
            for i in range(count):
                record = await service.submit(
                    service.parse(f"{owner} {i} --n 1"), owner=owner, platform="cli", reply_to={}
                )
                local.put(record.job)
        expected = [job.id for job in local.order()]
        await first.runner.refresh()  # (the bot reads the order again shortly after each change)
        assert [job.id for job in first.runner.queue.order()] == expected  # what /queue shows
        taken = [(await taker(client, keys, "w1").take(steps, images, 1))[0].id for _ in expected]
    assert taken == expected  # alice, bob, carol, alice, bob, alice


async def test_a_batch_merges_compatible_jobs_but_never_reorders_one_owners_jobs(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    async with bot(client, keys, tmp_path / "bot", per_user=5) as service:
        ids = {}
        for name, owner, flags in (
            ("a0", "alice", "--steps 4 --n 2"),
            ("a1", "alice", "--steps 8 --n 1"),  # incompatible: a2 must wait behind it
            ("a2", "alice", "--steps 4 --n 1"),
            ("b0", "bob", "--steps 4 --n 4"),
            ("c0", "carol", "--steps 4 --n 4"),  # would make 10 images
        ):
            record = await service.submit(
                service.parse(f"{name} {flags}"), owner=owner, platform="cli", reply_to={}
            )
            ids[record.id] = name
        queue = taker(client, keys, "w1")
        batches = [[ids[job.id] for job in await queue.take(steps, images, 8)] for _ in range(4)]
    # (The in-process queue would let a2 join c0; here each owner's jobs start in the order sent.)
    assert batches == [["a0", "b0"], ["c0"], ["a1"], ["a2"]]


async def test_two_workers_racing_take_every_job_exactly_once(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    async with bot(client, keys, tmp_path / "bot", per_user=5) as service:
        submitted = set()
        for i in range(20):
            owner = f"user{i % 4}"
            record = await service.submit(
                service.parse(f"job {i} --n 1"), owner=owner, platform="cli", reply_to={}
            )
            submitted.add(record.id)
        queues = [taker(client, keys, name) for name in ("w1", "w2")]
        taken: list[list[str]] = [[], []]

        async def drain(index: int) -> None:
            while sum(map(len, taken)) < len(submitted):
                with contextlib.suppress(TimeoutError):  # nothing left to take: look whether we are done
                    async with asyncio.timeout(0.5):
                        taken[index] += [job.id for job in await queues[index].take(steps, images, 3)]

        async with asyncio.timeout(30):
            await asyncio.gather(drain(0), drain(1))
        # Which worker wins each race is chance; that no job is taken twice or lost is not.
        assert sorted(taken[0] + taken[1]) == sorted(submitted)
        assert await client.get(keys.total) == b"0"
        assert not await client.exists(keys.owners("tiny"), keys.waiting)


async def test_a_job_taken_over_from_a_silent_worker_reaches_its_bot_once(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    async with bot(client, keys, tmp_path / "bot") as service:
        heard = Heard()
        service.subscribe("cli", heard)
        record = await service.submit(service.parse("slow"), owner="u1", platform="cli", reply_to={})
        slow, fast = (
            taker(client, keys, "slow", claim_idle_s=0.1),
            taker(client, keys, "fast", claim_idle_s=0.1),
        )
        assert [job.id for job in await slow.take(steps, images, 1)] == [record.id]
        await asyncio.sleep(0.15)  # "slow" did not keep its claim alive: it looks dead
        assert [job.id for job in await fast.take(steps, images, 1)] == [record.id]
        pending = await client.xpending_range(keys.queue("tiny", "u1"), GROUP, "-", "+", 10)
        assert [(p["consumer"], p["times_delivered"]) for p in pending] == [(b"fast", 2)]
        # Both finish; only the worker holding the job may report it.
        assert not await slow.report(record.id, encode(record.id, Cancelled()), terminal=True)
        assert await fast.report(record.id, encode(record.id, Cancelled()), terminal=True)
        await heard.until([record.id], Cancelled, limit_s=10)
    assert len(heard.ends(record.id)) == 1
    assert not await client.exists(keys.queue("tiny", "u1"), keys.job(record.id))


async def test_cancelling_a_waiting_job_removes_it_before_any_worker_sees_it(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    async with bot(client, keys, tmp_path / "bot") as service:
        heard = Heard()
        service.subscribe("cli", heard)
        gone = await service.submit(service.parse("gone"), owner="u1", platform="cli", reply_to={})
        kept = await service.submit(service.parse("kept"), owner="u1", platform="cli", reply_to={})
        await service.cancel(gone.id, by="u1")
        await heard.until([gone.id], Cancelled, limit_s=10)
        assert [job.id for job in await taker(client, keys, "w1").take(steps, images, 8)] == [kept.id]
        stored = await service.store.get(gone.id)
        assert stored is not None and stored.status.value == "cancelled"
    assert not await client.exists(keys.job(gone.id))
    assert await client.get(keys.total) == b"0"


def test_events_survive_the_trip_through_stream_fields() -> None:
    result = GenerationResult("j", (MediaFile(Path("grid.png"), "image/png", 10),), (1, 2), 64, 64, 0.5)
    events = [
        Queued(2, 1.5),
        Queued(0, None),
        Started(3),
        Step(1, 4),
        Preview(b"\x89PNG\x00\xff", 2),
        Finished(result),
        Failed("no"),
        Cancelled(),
    ]
    for event in events:
        fields = encode("j", event)
        raw = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in fields.items()}
        assert decode(raw) == ("j", event)
