"""The job service: written before acknowledged, refusals lose nothing, restarts requeue."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from bot.store import JobStatus
from generators.errors import BadRequest, Forbidden, NotFound, QueueFull
from generators.pipelines import DiffusersBackend
from generators.requests import Cancelled, Failed, Finished, Job, Progress, Queued, Started, new_job_id
from tests.helpers import open_service


async def test_submit_writes_the_job_before_it_returns(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        record = await service.submit(
            service.parse("a frog --n 2"), owner="u1", platform="cli", reply_to={"x": 1}
        )
        stored = await service.store.get(record.job.id)
        assert stored is not None and stored.status is JobStatus.QUEUED
        assert stored.job.request.seed is not None  # a random seed is fixed before storing
        assert stored.reply_to == {"x": 1}


async def test_watch_follows_a_job_and_the_store_ends_done(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        record = await service.submit(service.parse("a frog --n 1"), owner="u1", platform="cli", reply_to={})
        events = [event async for event in service.watch(record.job.id)]
        assert isinstance(events[0], Queued)
        assert any(isinstance(e, Started) for e in events)
        assert isinstance(events[-1], Finished)
        stored = await service.store.get(record.job.id)
        assert stored is not None and stored.status is JobStatus.DONE
        assert stored.result == events[-1].result


async def test_a_refused_request_writes_nothing(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    async with open_service(
        tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False, per_user=1
    ) as service:
        await service.submit(service.parse("one"), owner="u1", platform="cli", reply_to={})
        with pytest.raises(QueueFull):
            await service.submit(service.parse("two"), owner="u1", platform="cli", reply_to={})
        with pytest.raises(BadRequest, match="--video"):
            await service.submit(service.parse("three --video"), owner="u2", platform="cli", reply_to={})
        assert await service.store.stats() == {"queued": 1}


async def test_cancel_checks_the_owner(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        record = await service.submit(service.parse("mine"), owner="u1", platform="cli", reply_to={})
        watch = service.watch(record.job.id)
        with pytest.raises(Forbidden):
            await service.cancel(record.job.id, by="u2")
        with pytest.raises(NotFound):
            await service.cancel("no-such-job", by="u1")
        await service.cancel(record.job.id, by="u1")
        assert isinstance([e async for e in watch][-1], Cancelled)
        stored = await service.store.get(record.job.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED


async def test_a_restart_queues_unfinished_jobs_again(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with open_service(tiny_backend, db, tmp_path, start_worker=False) as before:
        ids = [
            (await before.submit(before.parse(f"job {i}"), owner=f"u{i}", platform="web", reply_to={})).job.id
            for i in range(2)
        ]
        await before.store.transition(ids[0], JobStatus.RUNNING)  # as if the process died mid-job
    async with open_service(tiny_backend, db, tmp_path) as after:
        recovered = await after.recover()
        assert [r.job.id for r in recovered] == ids
        watches = [after.watch(job_id) for job_id in ids]
        for watch in watches:
            assert isinstance([e async for e in watch][-1], Finished)
        for job_id in ids:
            stored = await after.store.get(job_id)
            assert stored is not None and stored.status is JobStatus.DONE


async def test_a_restart_fails_the_command_lines_jobs_and_those_of_a_model_gone_from_the_config(
    tiny_backend: DiffusersBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "jobs.db"
    async with open_service(tiny_backend, db, tmp_path, start_worker=False) as before:
        cli = await before.submit(before.parse("from imagine"), owner="cli", platform="cli", reply_to={})
        await before.store.transition(cli.id, JobStatus.RUNNING)  # `memebot imagine` got SIGTERM
        request = dataclasses.replace(before.parse("an old model"), model="turbo")
        gone = Job(new_job_id(), "u1", request, 1 << 20)
        await before.store.add(gone, platform="web", reply_to={})  # written when turbo was configured
        kept = await before.submit(before.parse("still fine"), owner="u2", platform="web", reply_to={})
    heard: list[tuple[str, Progress]] = []
    async with open_service(tiny_backend, db, tmp_path) as after:
        after.subscribe("web", lambda job_id, event: heard.append((job_id, event)))
        watch = after.watch(kept.id)
        recovered = await after.recover()
        assert {r.id for r in recovered} == {cli.id, gone.id, kept.id}
        assert isinstance([e async for e in watch][-1], Finished)
        for job_id, why in (
            (cli.id, "the command line that asked for it stopped before it finished"),
            (gone.id, "its model turbo is no longer configured"),
        ):
            stored = await after.store.get(job_id)
            assert stored is not None and stored.status is JobStatus.FAILED and stored.error == why
            assert f"not resuming job {job_id}" in caplog.text
    assert (gone.id, Failed("its model turbo is no longer configured")) in heard
    assert "requeued 1 unfinished jobs" in caplog.text


async def test_steps_are_capped_by_the_model(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        with pytest.raises(BadRequest, match="no clip model"):
            service.parse("a clip --video")
        with pytest.raises(BadRequest, match="--steps"):
            service.parse("x --steps 500")
        assert service.parse("x --steps 50").model == "tiny"  # filled in: the default image model


async def test_a_platform_subscriber_hears_its_jobs_only_after_the_store(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        heard: list[tuple[str, Progress]] = []
        finished = asyncio.Event()

        def handler(job_id: str, event: Progress) -> None:
            heard.append((job_id, event))
            if isinstance(event, Finished):
                finished.set()

        service.subscribe("reddit", handler)
        mine = await service.submit(service.parse("mine --n 1"), owner="r:u", platform="reddit", reply_to={})
        other = await service.submit(
            service.parse("other --n 1"), owner="d:u", platform="discord", reply_to={}
        )
        await asyncio.wait_for(finished.wait(), 60)
        assert {job_id for job_id, _ in heard} == {mine.job.id}
        stored = await service.store.get(mine.job.id)
        assert stored is not None and stored.status is JobStatus.DONE  # written before the handler heard
        assert other.job.id not in {job_id for job_id, _ in heard}


async def test_deliveries_are_recorded_through_the_service_once(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        first = await service.submit(service.parse("a cat --n 1"), owner="u", platform="cli", reply_to={})
        watch_first = service.watch(first.id)
        second = await service.submit(service.parse("a dog --n 1"), owner="v", platform="cli", reply_to={})
        watch_second = service.watch(second.id)
        for watch in (watch_first, watch_second):
            assert isinstance([event async for event in watch][-1], Finished)
        assert await service.mark_delivered(first.id, "message-1")
        assert not await service.mark_delivered(first.id, "message-2")  # a second post is not recorded
        assert not await service.mark_undeliverable(first.id, "too late")
        assert await service.mark_undeliverable(second.id, "the channel is gone")
        done = await service.store.get(first.id)
        gone = await service.store.get(second.id)
    assert done is not None and (done.status, done.delivery_ref) == (JobStatus.DELIVERED, "message-1")
    assert gone is not None and (gone.status, gone.error) == (JobStatus.UNDELIVERABLE, "the channel is gone")
