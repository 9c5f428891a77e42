"""The in-process queue: fair order, caps, batch selection and removal."""

from __future__ import annotations

import asyncio

import pytest

from generators.errors import QueueFull
from generators.queue import InProcessQueue
from generators.requests import GenerationRequest, Job


def job(job_id: str, owner: str, steps: int = 4, n: int = 1) -> Job:
    return Job(job_id, owner, GenerationRequest(prompt=f"prompt {job_id}", steps=steps, n=n))


def key(job: Job) -> int | None:
    return job.request.steps


def size(job: Job) -> int:
    return job.request.n


def test_round_robin_a_newcomer_waits_one_job_not_twenty() -> None:
    queue = InProcessQueue(per_user=50, total=100)
    for i in range(20):
        queue.put(job(f"a{i}", "alice"))
    assert queue.put(job("b0", "bob")) == 1
    queue.put(job("c0", "carol"))
    assert [j.id for j in queue.order()[:5]] == ["a0", "b0", "c0", "a1", "a2"]


async def test_take_follows_the_fair_order_and_rotates_owners() -> None:
    queue = InProcessQueue(per_user=10, total=100)
    for name in ("a0", "a1", "a2"):
        queue.put(job(name, "alice"))
    queue.put(job("b0", "bob"))
    queue.put(job("b1", "bob"))
    taken = [(await queue.take(key, size, 1))[0].id for _ in range(5)]
    assert taken == ["a0", "b0", "a1", "b1", "a2"]
    assert len(queue) == 0


async def test_take_merges_compatible_jobs_in_fair_order_up_to_the_limit() -> None:
    queue = InProcessQueue(per_user=10, total=100)
    queue.put(job("a0", "alice", steps=4, n=2))
    queue.put(job("b0", "bob", steps=8))  # incompatible: stays for the next call
    queue.put(job("c0", "carol", steps=4, n=4))
    queue.put(job("d0", "dave", steps=4, n=4))  # would go over 8 images
    queue.put(job("e0", "erin", steps=4, n=1))
    batch = await queue.take(key, size, 8)
    assert [j.id for j in batch] == ["a0", "c0", "e0"]
    assert [j.id for j in queue.order()] == ["b0", "d0"]


async def test_a_job_bigger_than_the_limit_still_runs_alone() -> None:
    queue = InProcessQueue(per_user=10, total=100)
    queue.put(job("a0", "alice", n=9))
    queue.put(job("b0", "bob", n=1))
    assert [j.id for j in await queue.take(key, size, 4)] == ["a0"]


async def test_take_waits_for_a_job() -> None:
    queue = InProcessQueue(per_user=10, total=100)
    waiter = asyncio.create_task(queue.take(key, size, 8))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.put(job("a0", "alice"))
    assert [j.id for j in await asyncio.wait_for(waiter, 1)] == ["a0"]


def test_per_user_cap_refuses_with_a_clear_error_and_keeps_the_queue() -> None:
    queue = InProcessQueue(per_user=2, total=100)
    queue.put(job("a0", "alice"))
    queue.put(job("a1", "alice"))
    with pytest.raises(QueueFull, match="already have 2 jobs waiting"):
        queue.put(job("a2", "alice"))
    assert queue.put(job("b0", "bob")) == 1
    assert len(queue) == 3


def test_global_cap_and_forced_put() -> None:
    queue = InProcessQueue(per_user=5, total=2)
    queue.put(job("a0", "alice"))
    queue.put(job("b0", "bob"))
    with pytest.raises(QueueFull, match="queue is full"):
        queue.check_room("carol")
    queue.put(job("c0", "carol"), force=True)  # a recovered job is never dropped
    assert len(queue) == 3


def test_remove_takes_one_job_out_and_positions_close_up() -> None:
    queue = InProcessQueue(per_user=5, total=10)
    queue.put(job("a0", "alice"))
    queue.put(job("b0", "bob"))
    queue.put(job("c0", "carol"))
    removed = queue.remove("b0")
    assert removed is not None and removed.id == "b0"
    assert queue.remove("b0") is None
    assert queue.position("c0") == 1
    assert queue.position("zz") == -1
