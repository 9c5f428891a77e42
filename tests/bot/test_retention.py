"""Retention: expired results, pages and records are deleted; 🗑's door; expired tokens are dropped."""

from __future__ import annotations

import io
import time
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot import retention, web
from bot.jobs import JobService
from bot.retention import TOKEN_LIFETIME_S, Retention, Swept
from bot.settings import Settings, StoreConfig, WebConfig
from bot.store import JobRecord, JobStatus
from generators.config import WorkerConfig
from generators.errors import BadRequest, Forbidden, NotFound
from generators.pipelines import DiffusersBackend
from generators.requests import Finished
from tests.bot.reddit.world import until
from tests.helpers import open_service

DAY = 86400.0


async def finished(service: JobService, text: str, owner: str = "discord:1") -> JobRecord:
    reply_to = {"kind": "interaction", "token": "aW50ZXJhY3Rpb24", "created": time.time()}
    record = await service.submit(service.parse(text), owner=owner, platform="cli", reply_to=reply_to)
    async for event in service.watch(record.id):
        if isinstance(event, Finished):
            break
    done = await service.store.get(record.id)
    assert done is not None and done.result is not None
    return done


def files_of(record: JobRecord) -> list[Path]:
    assert record.result is not None
    return [file.path for file in record.result.files]


async def test_a_sweep_deletes_only_what_is_past_retention_and_ended(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        delivered = await finished(service, "old and delivered --n 2")
        await service.store.transition(delivered.id, JobStatus.DELIVERED, delivery_ref="m1")
        undelivered = await finished(service, "old but never delivered")
        queued = await service.submit(service.parse("waiting"), owner="discord:2", platform="x", reply_to={})
        assert all(path.is_file() for path in files_of(delivered) + files_of(undelivered))

        now = time.time()
        sweep = Retention(service, StoreConfig(retention_days=30), clock=lambda: now + 29 * DAY).sweep
        assert await sweep() == Swept(jobs=0, tokens=2)  # no job yet; the two tokens are long dead
        late = Retention(service, StoreConfig(retention_days=30), clock=lambda: now + 31 * DAY)
        assert await late.sweep() == Swept(jobs=2, tokens=0)
        for record in (delivered, undelivered):
            assert await service.store.get(record.id) is None
            assert await service.store.was_deleted(record.id)
            assert not any(path.exists() for path in files_of(record))
            assert not files_of(record)[0].parent.exists()  # the job's folder too
        assert await service.store.get(queued.id) is not None  # never a job that has not ended
        await service.cancel(queued.id)


async def test_a_remix_picture_goes_once_unused_for_the_retention_time(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), "teal").save(buffer, "PNG")
        source = await service.sources.take(buffer.getvalue())
        kept = service.sources.path(source.digest)
        now = time.time()
        soon = Retention(service, StoreConfig(retention_days=30), clock=lambda: now + 29 * DAY)
        assert (await soon.sweep()).pictures == 0 and kept.is_file()
        late = Retention(service, StoreConfig(retention_days=30), clock=lambda: now + 31 * DAY)
        assert (await late.sweep()).pictures == 1 and not kept.exists()


async def test_deleting_a_remix_deletes_its_picture_unless_a_waiting_job_remixes_it_too(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), "teal").save(buffer, "PNG")
        source = await service.sources.take(buffer.getvalue())
        kept = service.sources.path(source.digest)
        request = service.parse("a teal cat --n 1 --strength 0.5", source=source)
        first = await service.submit(request, owner="discord:1", platform="x", reply_to={})
        async for _ in service.watch(first.id):
            pass
        await service.runner.worker.stop()  # the next one waits
        waiting = await service.submit(request, owner="discord:2", platform="x", reply_to={})
        await service.delete(first.id, by="discord:1")  # 🗑
        assert kept.is_file()  # the waiting job still needs it
        await service.cancel(waiting.id)
        await service.runner.events.join()
        await service.delete(waiting.id)
        assert not kept.exists()


async def test_zero_days_keeps_everything_but_tokens_still_expire(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        record = await finished(service, "kept")
        fresh = Retention(service, StoreConfig(retention_days=0), clock=time.time)
        assert await fresh.sweep() == Swept(0, 0)  # the token is still alive
        later = time.time() + TOKEN_LIFETIME_S + 1
        keep = Retention(service, StoreConfig(retention_days=0), clock=lambda: later + 1000 * DAY)
        assert await keep.sweep() == Swept(jobs=0, tokens=1)
        kept = await service.store.get(record.id)
        assert kept is not None and "token" not in kept.reply_to
        assert kept.reply_to["kind"] == "interaction"  # the rest of the address stays
        assert all(path.is_file() for path in files_of(record))


async def test_the_delete_door_checks_the_owner_and_the_state(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        queued = await service.submit(service.parse("waiting"), owner="discord:1", platform="x", reply_to={})
        with pytest.raises(NotFound):
            await service.delete("AAAAAAAAAAAA")
        with pytest.raises(Forbidden):
            await service.delete(queued.id, by="discord:2")
        with pytest.raises(BadRequest, match="cancel it first"):
            await service.delete(queued.id, by="discord:1")
        await service.cancel(queued.id)
        await service.runner.events.join()
        assert (await service.delete(queued.id, by="discord:1")).id == queued.id  # a job with no files
        assert await service.store.get(queued.id) is None


async def test_a_deleted_result_answers_410_and_an_unknown_one_404(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    settings = Settings(
        worker=WorkerConfig(results_dir=tmp_path / "results"), web=WebConfig(enabled=True, port=0)
    )
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        record = await finished(service, "soon gone")
        page = f"/{record.id}"
        file = f"{page}/{files_of(record)[0].name}"
        async with web.running(settings, service) as server, aiohttp.ClientSession(server.url) as http:
            for path in (page, file):
                async with http.get(path) as response:
                    assert response.status == 200
                    assert response.headers["Cache-Control"] == "no-cache"
            await service.delete(record.id)  # what 🗑 calls
            for path in (page, file):
                async with http.get(path) as response:
                    assert response.status == 410, path
            async with http.get("/AAAAAAAAAAAAAAAA") as response:
                assert response.status == 404


async def test_the_background_task_sweeps_every_interval(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    settings = Settings(store=StoreConfig(retention_days=1, cleanup_interval_s=0.05))
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
        record = await finished(service, "expired")
        await service.store.transition(record.id, JobStatus.DELIVERED)
        async with retention.running(settings, service):
            await service.store._db.execute(
                "UPDATE jobs SET delivered_at = delivered_at - 2 * 86400 WHERE id = ?", (record.id,)
            )
            await service.store._db.commit()

            async def gone() -> bool:
                return await service.store.get(record.id) is None

            await until(gone)
        assert not any(path.exists() for path in files_of(record))
