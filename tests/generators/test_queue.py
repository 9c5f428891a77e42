"""The in-process queue: fair order, caps, batch selection and removal."""

from __future__ import annotations

import asyncio
import functools

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


# -- several models: prefer the loaded one, within a bound ---------------------------------------------


def model_job(job_id: str, owner: str, model: str, n: int = 1) -> Job:
    return Job(job_id, owner, GenerationRequest(prompt=job_id, n=n, model=model))


def by_model(job: Job) -> str | None:
    return job.request.model


async def serve(queue: InProcessQueue, max_images: int, max_loaded: int = 1) -> tuple[list[str], int, int]:
    """Drain ``queue`` as a worker would: the loaded models are the last ``max_loaded`` used.

    Returns the run order, the number of model loads after the first, and the most times any job was
    overtaken by a job of another model that stood behind it in the fair order when the batch was taken
    (counted here from the orders, not from the queue's own bookkeeping).
    """
    loaded: list[str] = []
    ran: list[str] = []
    switches = 0
    overtaken: dict[str, int] = {}
    while len(queue):
        order = queue.order()
        batch = await queue.take(by_model, size, max_images, functools.partial(is_loaded, tuple(loaded)))
        model = batch[0].request.model
        assert model is not None and {j.request.model for j in batch} == {model}  # one model a batch
        if model not in loaded:
            switches += bool(loaded)
            loaded = [*loaded, model][-max_loaded:]
        chosen = {j.id for j in batch}
        for i, waiting in enumerate(order):
            if waiting.id not in chosen and waiting.request.model != model:
                passed = sum(1 for later in order[i + 1 :] if later.id in chosen)
                overtaken[waiting.id] = overtaken.get(waiting.id, 0) + passed
        ran += [j.id for j in batch]
    return ran, switches, max(overtaken.values(), default=0)


def is_loaded(loaded: tuple[str, ...], job: Job) -> bool:
    return job.request.model in loaded


def mixed(queue: InProcessQueue, users: int, jobs_each: int) -> int:
    count = 0
    for round_ in range(jobs_each):
        for user in range(users):
            model = "clip" if (user + round_) % 2 else "grid"
            queue.put(model_job(f"u{user}-{round_}", f"user{user}", model))
            count += 1
    return count


async def test_a_loaded_model_goes_first_but_no_job_is_overtaken_more_than_switch_after_times() -> None:
    naive = InProcessQueue(per_user=50, total=500)
    total = mixed(naive, users=8, jobs_each=6)
    _, naive_switches, _ = await serve(naive, max_images=1)
    for k in (1, 2, 4, 8):
        queue = InProcessQueue(per_user=50, total=500, switch_after=k)
        mixed(queue, users=8, jobs_each=6)
        ran, switches, worst = await serve(queue, max_images=1)
        assert sorted(ran) == sorted(f"u{u}-{r}" for u in range(8) for r in range(6))
        assert worst <= k
        # Each switch is followed by up to k jobs of the new model before anyone waits k times.
        assert switches <= total // (k + 1) + 2
        assert switches < naive_switches
    assert naive_switches >= total // 2  # round-robin over alternating models switches all the time


async def test_the_bound_holds_with_batches_and_two_loaded_models() -> None:
    for max_loaded in (1, 2):
        queue = InProcessQueue(per_user=50, total=500, switch_after=3)
        for i in range(30):
            queue.put(model_job(f"j{i}", f"user{i % 5}", ("a", "b", "c")[i * 7 % 3], n=1 + i % 3))
        ran, _, worst = await serve(queue, max_images=4, max_loaded=max_loaded)
        assert len(ran) == 30 and worst <= 3


async def test_without_a_bound_the_fair_order_is_kept() -> None:
    queue = InProcessQueue(per_user=50, total=500)  # switch_after None: no preference
    mixed(queue, users=4, jobs_each=3)
    fair = [j.id for j in queue.order()]
    ran, _, _ = await serve(queue, max_images=1)
    assert ran == fair


async def test_a_removed_or_taken_job_leaves_no_overtake_count_behind() -> None:
    queue = InProcessQueue(per_user=50, total=500, switch_after=2)
    queue.put(model_job("b0", "bob", "b"))
    queue.put(model_job("a0", "alice", "a"))
    queue.put(model_job("a1", "carol", "a"))
    assert [j.id for j in await queue.take(by_model, size, 1, lambda j: j.request.model == "a")] == ["a0"]
    assert queue.remove("b0") is not None
    assert queue._overtaken == {}
