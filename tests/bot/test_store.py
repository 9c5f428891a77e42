"""The SQLite job store: round trips, the lifecycle, races and restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bot.store import (
    ALLOWED_FROM,
    TIMESTAMP_OF,
    InvalidTransition,
    JobRecord,
    JobStatus,
    Store,
    remove_files,
)
from generators.requests import GenerationRequest, GenerationResult, Job, Kind, MediaFile

S = JobStatus
#: A legal way from QUEUED to each status.
PATH_TO: dict[JobStatus, tuple[JobStatus, ...]] = {
    S.QUEUED: (),
    S.RUNNING: (S.RUNNING,),
    S.DONE: (S.RUNNING, S.DONE),
    S.FAILED: (S.RUNNING, S.FAILED),
    S.CANCELLED: (S.CANCELLED,),
    S.DELIVERED: (S.RUNNING, S.DONE, S.DELIVERED),
    S.UNDELIVERABLE: (S.FAILED, S.UNDELIVERABLE),
}
LEGAL = [(before, to) for to, sources in ALLOWED_FROM.items() for before in sorted(sources)]
ILLEGAL = [(before, to) for before in S for to in S if before not in ALLOWED_FROM[to]]


def job(job_id: str = "job-1", owner: str = "discord:1", prompt: str = "a cat") -> Job:
    return Job(
        job_id, owner, GenerationRequest(prompt, negative="dogs", seed=7, aspect=(16, 9), n=4, top="hi")
    )


def result(job_id: str = "job-1") -> GenerationResult:
    files = (
        MediaFile(Path("results/job-1/grid.png"), "image/png", 123),
        MediaFile(Path("/abs/ünï/0.webp"), "image/webp", 45),
    )
    return GenerationResult(job_id, files, (7, 8), 1024, 576, 2.5)


async def walk(store: Store, job_id: str, statuses: tuple[JobStatus, ...]) -> None:
    for status in statuses:
        await store.transition(job_id, status)


async def test_add_and_get_round_trip_across_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "dir" / "jobs.db"
    video = Job("v", "reddit:bob", GenerationRequest("🍝 spaghetti 吃 \"'; --", kind=Kind.VIDEO, seed=1))
    reply_to = {"comment": "t1_abc", "nested": {"ids": [1, 2]}, "text": "é"}
    async with Store.open(db) as store:
        added = await store.add(video, platform="reddit", reply_to=reply_to)
        assert added.status is S.QUEUED and added.attempts == 0 and added.owner == "reddit:bob"
    async with Store.open(db) as store:
        got = await store.get("v")
        assert got == added
        assert got is not None and got.job == video and got.reply_to == reply_to
        assert await store.get("missing") is None


async def test_memory_store_and_schema_version(tmp_path: Path) -> None:
    async with Store.open(":memory:") as store:
        await store.add(job(), platform="cli", reply_to={})
        assert await store.stats() == {"queued": 1}
    db = tmp_path / "jobs.db"
    async with Store.open(db):
        pass
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        raw.execute("UPDATE schema_version SET version = 99")
    raw.close()
    with pytest.raises(RuntimeError, match="version 99"):
        async with Store.open(db):
            pass


@pytest.mark.parametrize(("before", "to"), LEGAL)
async def test_every_legal_transition_stamps_its_time(
    tmp_path: Path, before: JobStatus, to: JobStatus
) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        await store.add(job(), platform="cli", reply_to={})
        await walk(store, "job-1", PATH_TO[before])
        old = await store.get("job-1")
        assert old is not None and old.status is before
        start = time.time()
        new = await store.transition("job-1", to)
        assert new.status is to and new == await store.get("job-1")
        assert new.attempts == old.attempts + (to is S.RUNNING)
        for column in ("started_at", "finished_at", "delivered_at"):
            if column == TIMESTAMP_OF.get(to):
                stamped = getattr(new, column)
                assert stamped is not None and start <= stamped <= time.time()
            else:
                assert getattr(new, column) == getattr(old, column)


@pytest.mark.parametrize(("before", "to"), ILLEGAL)
async def test_illegal_transitions_are_refused(tmp_path: Path, before: JobStatus, to: JobStatus) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        await store.add(job(), platform="cli", reply_to={})
        await walk(store, "job-1", PATH_TO[before])
        old = await store.get("job-1")
        with pytest.raises(InvalidTransition, match=f"from {before.value} to {to.value}"):
            await store.transition("job-1", to)
        assert await store.get("job-1") == old


async def test_unknown_job_raises_key_error(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        with pytest.raises(KeyError):
            await store.transition("nope", S.RUNNING)
        with pytest.raises(KeyError):
            await store.update_reply_to("nope", {"message": 1})


async def test_result_error_and_delivery_ref_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with Store.open(db) as store:
        for name in ("ok", "bad"):
            await store.add(job(name), platform="discord", reply_to={})
            await store.transition(name, S.RUNNING)
        await store.transition("ok", S.DONE, result=result("ok"))
        await store.transition("ok", S.DELIVERED, delivery_ref="msg-9")
        await store.transition("bad", S.FAILED, error="out of memory")
        await store.transition("bad", S.UNDELIVERABLE, error="channel deleted")
    async with Store.open(db) as store:
        ok, bad = await store.get("ok"), await store.get("bad")
        assert ok is not None and ok.result == result("ok") and ok.delivery_ref == "msg-9"
        assert ok.result.primary.path == Path("results/job-1/grid.png") and ok.error is None
        assert bad is not None and bad.result is None and bad.error == "channel deleted"


async def test_two_processes_racing_to_deliver_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with Store.open(db) as first, Store.open(db) as second:
        await first.add(job(), platform="cli", reply_to={})
        await walk(first, "job-1", (S.RUNNING, S.DONE))
        outcomes = await asyncio.gather(
            first.transition("job-1", S.DELIVERED, delivery_ref="a"),
            second.transition("job-1", S.DELIVERED, delivery_ref="b"),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, JobRecord)]
        assert len(winners) == 1 and sum(isinstance(o, InvalidTransition) for o in outcomes) == 1
        stored = await second.get("job-1")
        assert stored is not None and stored.delivery_ref == winners[0].delivery_ref


async def test_reopening_requeues_unfinished_and_lists_undelivered(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    paths = {
        "queued": PATH_TO[S.QUEUED],
        "running": PATH_TO[S.RUNNING],
        "done": PATH_TO[S.DONE],
        "failed": (S.FAILED,),
        "cancelled": (S.RUNNING, S.CANCELLED),
        "delivered": PATH_TO[S.DELIVERED],
        "undeliverable": PATH_TO[S.UNDELIVERABLE],
        "retried": (S.RUNNING, S.QUEUED, S.RUNNING),
    }
    async with Store.open(db) as store:
        for name, path in paths.items():
            await store.add(job(name), platform="cli", reply_to={})
            await walk(store, name, path)
        assert [r.id for r in await store.unfinished()] == ["queued", "running", "retried"]
    async with Store.open(db) as store:
        for name in ("running", "retried"):  # as JobService.recover does with jobs nobody runs now
            await store.transition(name, S.QUEUED)
        requeued = await store.unfinished()
        assert [(r.id, r.status, r.attempts) for r in requeued] == [
            ("queued", S.QUEUED, 0),
            ("running", S.QUEUED, 1),
            ("retried", S.QUEUED, 2),
        ]
        assert [r.id for r in await store.unfinished()] == ["queued", "running", "retried"]
        assert [r.id for r in await store.undelivered()] == ["done", "failed", "cancelled"]
        assert (await store.transition("running", S.RUNNING)).attempts == 2


async def test_jobs_of_recent_and_stats(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        for i in range(3):
            await store.add(job(f"a{i}", owner="alice"), platform="cli", reply_to={})
        await store.add(job("b0", owner="bob"), platform="cli", reply_to={})
        await store.transition("a1", S.CANCELLED)
        assert [r.id for r in await store.jobs_of("alice")] == ["a2", "a1", "a0"]
        assert [r.id for r in await store.jobs_of("alice", {S.QUEUED})] == ["a2", "a0"]
        assert [r.id for r in await store.jobs_of("alice", [S.CANCELLED, S.DONE])] == ["a1"]
        assert [r.id for r in await store.jobs_of("alice", limit=1)] == ["a2"]
        assert await store.jobs_of("alice", ()) == []
        assert await store.jobs_of("carol") == []
        assert [r.id for r in await store.recent(2)] == ["b0", "a2"]
        assert await store.stats() == {"queued": 3, "cancelled": 1}


async def test_update_reply_to_merges(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        await store.add(job(), platform="discord", reply_to={"channel": 1, "thread": 2})
        updated = await store.update_reply_to("job-1", {"message": 55, "thread": 3})
        assert updated.reply_to == {"channel": 1, "thread": 3, "message": 55}
        assert updated == await store.get("job-1")
        # Two adapters' updates at once: neither key is lost.
        await asyncio.gather(
            store.update_reply_to("job-1", {"progress": 7}), store.update_reply_to("job-1", {"preview": 8})
        )
        stored = await store.get("job-1")
        assert stored is not None
        assert stored.reply_to == {"channel": 1, "thread": 3, "message": 55, "progress": 7, "preview": 8}


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


async def test_only_ended_jobs_expire_and_can_be_deleted(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        for status in S:
            await store.add(job(f"job-{status.value}"), platform="cli", reply_to={})
            await walk(store, f"job-{status.value}", PATH_TO[status])
        ended = {S.DONE, S.FAILED, S.CANCELLED, S.DELIVERED, S.UNDELIVERABLE}
        assert await store.expired(time.time() - 60) == []  # too young
        old = await store.expired(time.time() + 60)
        assert {record.status for record in old} == ended
        assert len(await store.expired(time.time() + 60, limit=2)) == 2
        for status in S:
            assert await store.delete(f"job-{status.value}") is (status in ended)
            assert await store.was_deleted(f"job-{status.value}") is (status in ended)
        assert set(await store.stats()) == {S.QUEUED.value, S.RUNNING.value}
        assert await store.kv_prune("deleted", time.time() + 60) == len(ended)
        assert not await store.was_deleted("job-done")


async def test_expired_tokens_are_dropped_and_nothing_else(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "jobs.db") as store:
        address = {"kind": "interaction", "token": "aW50ZXJhY3Rpb24", "channel_id": "5"}
        await store.add(job("old"), platform="discord", reply_to=address)
        await store.add(job("plain"), platform="reddit", reply_to={"fullname": "t1_x"})
        assert await store.drop_tokens(before=time.time() - 900) == 0
        assert await store.drop_tokens(before=time.time() + 1) == 1
        assert await store.drop_tokens(before=time.time() + 1) == 0
        old, plain = await store.get("old"), await store.get("plain")
        assert old is not None and old.reply_to == {"kind": "interaction", "channel_id": "5"}
        assert plain is not None and plain.reply_to == {"fullname": "t1_x"}


def test_only_files_in_the_jobs_own_folder_are_removed(tmp_path: Path) -> None:
    mine = tmp_path / "results" / "job-1"
    mine.mkdir(parents=True)
    (mine / "grid.png").write_bytes(b"12345")
    elsewhere = tmp_path / "precious.png"
    elsewhere.write_bytes(b"keep")
    files = (
        MediaFile(mine / "grid.png", "image/png", 5),
        MediaFile(mine / "gone.webp", "image/webp", 1),  # already removed
        MediaFile(elsewhere, "image/png", 4),  # a tampered record
    )
    assert remove_files(GenerationResult("job-1", files, (1,), 8, 8, 0.1)) == 5
    assert not mine.exists() and elsewhere.read_bytes() == b"keep"
