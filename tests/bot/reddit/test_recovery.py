"""Exactly once across crashes: a bot stopped between any two steps answers after a restart, once.

A crash is a bot closed with no grace (nothing more reaches Reddit) while its state is on disk; the
restart is a fresh job service and bot on the same SQLite file, as ``memebot run`` would start them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.reddit._ledger import Entry, Ledger, State
from bot.store import JobStatus, Store
from generators.pipelines import DiffusersBackend
from generators.requests import GenerationRequest, Job
from tests.bot.reddit.world import World, answered, run_bot, until
from tests.fakes.reddit import FakeReddit


async def job_is(world: World, fullname: str, status: JobStatus) -> bool:
    entry = await world.entry(fullname)
    record = None if entry is None or entry.job_id is None else await world.service.store.get(entry.job_id)
    return record is not None and record.status is status


async def test_a_crash_between_generation_and_reply_then_restart_replies_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a phoenix --n 1", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake) as before:
        await before.bot.poll_once()
        await before.bot.close(grace_s=0)  # dies: the job goes on, nothing reaches Reddit any more
        await until(lambda: job_is(before, mention, JobStatus.DONE))
    assert fake.replies_to(mention) == []

    async with run_bot(tiny_backend, tmp_path, fake) as after:
        await answered(after, mention)
        assert await after.bot.poll_once() == 0
        assert await job_is(after, mention, JobStatus.DELIVERED)
    assert len(fake.replies_to(mention)) == 1
    assert len(fake.requests_to("POST", "/api/comment")) == 1


@pytest.mark.parametrize("landed", [False, True], ids=["lost-reply", "landed-reply"])
@pytest.mark.parametrize("body", ["a phoenix --n 1", "a phoenix --sed 1"], ids=["result", "refusal"])
async def test_a_crash_after_a_reply_attempt_then_restart_replies_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit, landed: bool, body: str
) -> None:
    """The attempt was recorded, then its answer was a 503 (the reply may or may not be on Reddit)."""
    mention = fake.mention(f"u/memebot {body}", author="alice")
    fake.fail_next("POST", "/api/comment", status=503, landed=landed)
    async with run_bot(tiny_backend, tmp_path, fake, retry_base_s=60, retry_max_s=60) as before:
        await before.bot.poll_once()
        await until(lambda: len(fake.requests_to("POST", "/api/comment")) == 1)
        entry = await before.entry(mention)
        assert entry is not None and entry.attempts == 1 and entry.state is not State.REPLIED
        await before.bot.close(grace_s=0)  # dies while waiting to try again
    assert len(fake.replies_to(mention)) == int(landed)

    async with run_bot(tiny_backend, tmp_path, fake) as after:
        await answered(after, mention)
        (reply,) = fake.replies_to(mention)
        entry = await after.entry(mention)
        assert entry is not None and entry.state is State.REPLIED and entry.reply_id == reply.fullname
        if entry.job_id is not None:
            record = await after.service.store.get(entry.job_id)
            assert record is not None and record.delivery_ref == reply.fullname
    # Landed: found by looking, not posted again. Lost: posted once more.
    assert len(fake.requests_to("POST", "/api/comment")) == (1 if landed else 2)


@pytest.mark.parametrize("submitted", [False, True], ids=["before-submit", "after-submit"])
async def test_an_item_recorded_before_a_crash_gets_one_job_and_one_reply(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit, submitted: bool
) -> None:
    """The state a stop right after recording the item leaves, with or without its job written."""
    mention = fake.mention("u/memebot a kraken --n 1", author="alice")
    async with Store.open(tmp_path / "jobs.db") as store:
        entry = Entry(State.ACCEPTED, "alice", "memes", "a kraken --n 1", time.time())
        assert await Ledger(store).claim(mention, entry)
        if submitted:
            job = Job("kraken-job-0001", "reddit:alice", GenerationRequest("a kraken", seed=3, n=1))
            await store.add(job, platform="reddit", reply_to={"fullname": mention})

    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await answered(world, mention)
        assert await world.bot.poll_once() == 0
        jobs = await world.service.store.jobs_of("reddit:alice")
        assert [record.status for record in jobs] == [JobStatus.DELIVERED]
        assert (jobs[0].id == "kraken-job-0001") is submitted
    assert len(fake.replies_to(mention)) == 1
