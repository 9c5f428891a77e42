"""A running Reddit bot for the tests: the fake Reddit, the real tiny pipeline, the bot's web server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from bot import web
from bot.jobs import JobService
from bot.reddit import FetcherFactory, RedditBot, connected
from bot.reddit import running as reddit_running
from bot.reddit._ledger import Entry, Ledger, State
from bot.settings import RedditConfig, Secrets, Settings, WebConfig
from bot.store import JobStatus
from generators.config import LimitsConfig, WorkerConfig
from generators.intake import Fetcher, IntakeLimits
from generators.pipelines import DiffusersBackend
from tests.fakes.loopback import free_port
from tests.fakes.reddit import FakeReddit
from tests.helpers import open_service


def make_settings(fake: FakeReddit, tmp_path: Path, port: int, **reddit: Any) -> Settings:
    """Settings for a bot on the fake Reddit, fast retries unless ``reddit`` says otherwise."""
    config: dict[str, Any] = {"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_interval_s": 3600.0}
    return Settings(
        worker=WorkerConfig(results_dir=tmp_path / "results"),
        web=WebConfig(enabled=True, port=port, public_url=f"http://127.0.0.1:{port}"),
        reddit=RedditConfig(
            enabled=True,
            oauth_url=fake.url,
            reddit_url=fake.url,
            short_url=fake.url,
            **(config | reddit),
        ),
        secrets=Secrets(
            reddit_client_id=fake.client_id,
            reddit_client_secret=fake.client_secret,
            reddit_username=fake.username,
            reddit_password=fake.password,
        ),
    )


def loopback_fetcher(max_bytes: int | None = None) -> FetcherFactory:
    """Downloads from the fake Reddit's media hosts (plain HTTP on 127.0.0.1), with an optional byte cap."""

    def build(session: aiohttp.ClientSession, limits: LimitsConfig) -> Fetcher:
        caps = IntakeLimits.of(limits)
        if max_bytes is not None:
            caps = replace(caps, max_bytes=max_bytes)
        return Fetcher(session, ("127.0.0.1",), caps, schemes=("http",))

    return build


@dataclass
class World:
    """One run of the bot: its Reddit side, its job service and where its pages are."""

    fake: FakeReddit
    bot: RedditBot
    service: JobService
    settings: Settings

    @property
    def ledger(self) -> Ledger:
        return self.bot.ledger

    async def entry(self, fullname: str) -> Entry | None:
        return await self.ledger.get(fullname)


@contextlib.asynccontextmanager
async def run_bot(
    backend: DiffusersBackend | Sequence[DiffusersBackend],
    tmp_path: Path,
    fake: FakeReddit,
    *,
    poll: bool = False,
    fetcher: FetcherFactory | None = None,
    start_worker: bool = True,
    **reddit: Any,
) -> AsyncIterator[World]:
    """Start as ``memebot run`` does (store, web, Reddit, then ``recover``), on ``tmp_path/jobs.db``.

    Unless ``poll``, polling is left to the test (``world.bot.poll_once()``); leaving the block is a
    clean stop, and a test simulates a crash by calling ``world.bot.close(grace_s=0)`` first. Pictures
    are downloaded from the fake's media hosts (``fetcher``: ``loopback_fetcher()`` unless given).
    Without ``start_worker`` jobs wait in the queue (a full queue, in tests of refusals).
    """
    settings = make_settings(fake, tmp_path, free_port(), **reddit)
    adapter = reddit_running if poll else connected
    async with (
        open_service(
            backend, tmp_path / "jobs.db", tmp_path, per_user=5, start_worker=start_worker
        ) as service,
        web.running(settings, service),
        adapter(settings, service, fetcher=fetcher or loopback_fetcher()) as bot,
    ):
        await service.recover()
        yield World(fake, bot, service, settings)


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], limit_s: float = 30.0) -> None:
    """Wait until ``check()`` is true (it may be a coroutine function)."""
    deadline = time.monotonic() + limit_s
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {limit_s} s: {check}")
        await asyncio.sleep(0.02)


async def replied(world: World, fullname: str) -> bool:
    """The item's story ended (replied or undeliverable) and its job, if any, is marked."""
    entry = await world.entry(fullname)
    if entry is None or entry.state not in (State.REPLIED, State.UNDELIVERABLE):
        return False
    if entry.job_id is None:
        return True
    record = await world.service.store.get(entry.job_id)
    return record is not None and record.status in (JobStatus.DELIVERED, JobStatus.UNDELIVERABLE)


async def answered(world: World, fullname: str) -> None:
    """Wait until the item was answered (or found undeliverable) and its job marked."""
    await until(lambda: replied(world, fullname))
