"""The task supervisor: one task per key, and a close that lets writes finish."""

from __future__ import annotations

import asyncio

import pytest

from generators.tasks import TaskSupervisor


async def test_the_same_work_runs_once_at_a_time() -> None:
    tasks = TaskSupervisor("test")
    release = asyncio.Event()
    runs: list[str] = []

    async def work(name: str) -> None:
        runs.append(name)
        await release.wait()

    assert tasks.spawn("a", work("first"))
    assert not tasks.spawn("a", work("second"))  # closed, never awaited: no warning
    await asyncio.sleep(0)
    release.set()
    await tasks.settle()
    assert runs == ["first"]
    assert tasks.spawn("a", work("third"))
    await tasks.settle()
    assert runs == ["first", "third"]


async def test_close_cancels_idle_work_and_lets_a_write_finish() -> None:
    tasks = TaskSupervisor("test")
    writing = asyncio.Event()
    written: list[str] = []
    idle_cancelled = asyncio.Event()

    async def write() -> None:
        with tasks.finishing():
            writing.set()
            await asyncio.sleep(0.01)
            written.append("reply")

    async def idle() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            idle_cancelled.set()
            raise

    tasks.spawn("write", write())
    tasks.spawn("idle", idle())
    await writing.wait()
    await tasks.close(grace_s=30)
    assert written == ["reply"] and idle_cancelled.is_set()
    assert tasks.closed and not tasks.spawn("late", idle())


async def test_a_write_past_its_grace_is_stopped() -> None:
    tasks = TaskSupervisor("test")
    writing = asyncio.Event()

    async def stuck() -> None:
        with tasks.finishing():
            writing.set()
            await asyncio.Event().wait()

    tasks.spawn("stuck", stuck())
    await writing.wait()
    await tasks.close(grace_s=0.01)
    assert "stuck" not in tasks


@pytest.mark.expect_errors
async def test_a_failure_is_logged_with_its_key(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSupervisor("test")

    async def broken() -> None:
        raise RuntimeError("boom")

    tasks.spawn("job:1", broken())
    await tasks.settle()
    await asyncio.sleep(0)
    assert any("test work job:1 failed" in r.getMessage() for r in caplog.records)
