"""The SQLite job store: round trips, the lifecycle, races and restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store import InvalidTransition, JobStatus, Store
from generators.requests import GenerationRequest, GenerationResult, Job, Kind, MediaFile

S = JobStatus


def job(job_id: str = "job-1", owner: str = "discord:1", prompt: str = "a cat") -> Job:
    return Job(
        job_id, owner, GenerationRequest(prompt, negative="dogs", seed=7, aspect=(16, 9), n=4, top="hi")
    )


async def test_add_and_get_round_trip(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "sub" / "jobs.db") as store:
        video = Job("v", "reddit:bob", GenerationRequest("🍝 spaghetti 吃", kind=Kind.VIDEO, seed=1))
        added = await store.add(video, platform="reddit", reply_to={"comment": "t1_abc"})
        got = await store.get("v")
        assert got == added
        assert got is not None and got.job == video and got.status is S.QUEUED
        assert got.reply_to == {"comment": "t1_abc"}
        assert await store.get("missing") is None


async def test_each_transition_sets_its_timestamp_and_attempts(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        await store.add(job(), platform="cli", reply_to={})
        running = await store.transition("job-1", S.RUNNING)
        assert running.started_at is not None and running.attempts == 1
        result = GenerationResult(
            "job-1", (MediaFile(Path("r/job-1/grid.png"), "image/png", 123),), (7, 8), 64, 64, 0.5
        )
        done = await store.transition("job-1", S.DONE, result=result)
        assert done.finished_at is not None and done.result == result
        delivered = await store.transition("job-1", S.DELIVERED, delivery_ref="msg-9")
        assert delivered.delivered_at is not None and delivered.delivery_ref == "msg-9"


@pytest.mark.parametrize(
    ("path", "illegal"),
    [((), S.DELIVERED), ((S.RUNNING, S.DONE, S.DELIVERED), S.RUNNING), ((S.CANCELLED,), S.DONE)],
)
async def test_illegal_transitions_are_refused(
    tmp_path: Path, path: tuple[JobStatus, ...], illegal: JobStatus
) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        await store.add(job(), platform="cli", reply_to={})
        for status in path:
            await store.transition("job-1", status)
        with pytest.raises(InvalidTransition, match=f"to {illegal.value}"):
            await store.transition("job-1", illegal)
        with pytest.raises(KeyError):
            await store.transition("nope", S.RUNNING)


async def test_two_processes_racing_to_deliver_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with Store.open(db) as first, Store.open(db) as second:
        await first.add(job(), platform="cli", reply_to={})
        await first.transition("job-1", S.RUNNING)
        await first.transition("job-1", S.DONE)
        outcomes = await asyncio.gather(
            first.transition("job-1", S.DELIVERED, delivery_ref="a"),
            second.transition("job-1", S.DELIVERED, delivery_ref="b"),
            return_exceptions=True,
        )
        assert sum(isinstance(o, InvalidTransition) for o in outcomes) == 1


async def test_reopening_requeues_unfinished_and_lists_undelivered(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with Store.open(db) as store:
        for name in ("queued", "running", "done", "delivered"):
            await store.add(job(name), platform="cli", reply_to={})
        await store.transition("running", S.RUNNING)
        for name in ("done", "delivered"):
            await store.transition(name, S.RUNNING)
            await store.transition(name, S.DONE)
        await store.transition("delivered", S.DELIVERED)
    async with Store.open(db) as store:
        requeued = await store.requeue_unfinished()
        assert [r.id for r in requeued] == ["queued", "running"]
        assert all(r.status is S.QUEUED for r in requeued)
        assert requeued[1].attempts == 1
        assert [r.id for r in await store.undelivered()] == ["done"]


async def test_jobs_of_recent_stats_and_reply_updates(tmp_path: Path) -> None:
    async with Store.open(":memory:") as store:
        for i in range(3):
            await store.add(job(f"a{i}", owner="alice"), platform="cli", reply_to={"channel": 1})
        await store.add(job("b0", owner="bob"), platform="cli", reply_to={})
        await store.transition("a1", S.CANCELLED)
        assert [r.id for r in await store.jobs_of("alice")] == ["a2", "a1", "a0"]
        assert [r.id for r in await store.jobs_of("alice", {S.QUEUED})] == ["a2", "a0"]
        assert [r.id for r in await store.recent(2)] == ["b0", "a2"]
        assert await store.stats() == {"queued": 3, "cancelled": 1}
        updated = await store.update_reply_to("a0", {"message": 55})
        assert updated.reply_to == {"channel": 1, "message": 55}
        stored = await store.get("a0")
        assert stored is not None and stored.reply_to == updated.reply_to


async def test_key_values_for_adapters(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with Store.open(db) as first, Store.open(db) as second:
        assert await first.kv_get("guild", "1") is None
        await first.kv_set("guild", "1", {"ban_words": ["x"], "nsfw": False})
        await first.kv_set("guild", "1", {"ban_words": ["y"]})
        assert await second.kv_get("guild", "1") == {"ban_words": ["y"]}
        assert await first.kv_items("guild") == {"1": {"ban_words": ["y"]}}
        assert await first.kv_items("other") == {}
        once = await asyncio.gather(first.kv_add("hof", "m1", 1), second.kv_add("hof", "m1", 2))
        assert sorted(once) == [False, True]
        assert await first.kv_get("hof", "m1") in (1, 2)
