"""Redis going away: the bot and its workers say so in their health, wait longer each try, and heal.

A real redis-server without persistence: FLUSHALL is what a restart without its data leaves (no
streams, no consumer groups, no heartbeats); a stopped server is an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from bot.jobs import JobService
from generators.errors import BadRequest
from generators.health import Health
from generators.pipelines import DiffusersBackend
from generators.streams.keys import GROUP, Keys
from generators.streams.outage import Backoff, RedisHealth, describe, no_group
from tests.fakes.loopback import free_port
from tests.generators.streams.cluster import Heard, bot, stand_in, worker
from tests.generators.streams.conftest import _wait_for_ping
from tests.helpers import redis_server


class Recording(Health):
    """The real health, remembering every change it was told of."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, str | None]] = []
        self.changed = asyncio.Event()

    def report(self, component: str, problem: str | None) -> None:
        if self.problems.get(component) != problem:
            self.history.append((component, problem))
            self.changed.set()
        super().report(component, problem)

    async def until(self, wanted: bool, limit_s: float = 30) -> None:
        """Wait until Redis is (``wanted``) or is not reported as a problem."""
        async with asyncio.timeout(limit_s):
            while ("redis" in self.problems) != wanted:
                self.changed.clear()
                await self.changed.wait()


async def submit_when_served(service: JobService, prompt: str, owner: str, limit_s: float = 30) -> str:
    """Submit once a worker's heartbeat is back (a flushed Redis forgot them until their next beat)."""
    async with asyncio.timeout(limit_s):
        while True:
            try:
                record = await service.submit(service.parse(prompt), owner=owner, platform="cli", reply_to={})
            except BadRequest:  # no worker serves the model yet
                await asyncio.sleep(0.1)
                continue
            return record.id


def test_backoff_doubles_up_to_its_cap_and_starts_again_after_a_success() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_one_outage_is_one_change_of_health_however_often_it_is_retried() -> None:
    health = Recording()
    redis = RedisHealth(health)
    for port in range(20):  # each retry's message differs a little: the health does not
        redis.failed("events", RedisConnectionError(f"Error 111 connecting to 127.0.0.1:{port}. Refused."))
    redis.failed("queue", RedisConnectionError("Connection reset by peer"))
    redis.ok("events")
    redis.ok("queue")
    refused = "cannot reach Redis (Error 111 connecting to 127.0.0.1:0. Refused.)"
    assert health.history == [("redis", refused), ("redis", None)]
    assert no_group(ResponseError("NOGROUP No such key 'x' or consumer group 'bot' in XREADGROUP"))
    assert describe(ResponseError("OOM command not allowed")) == "Redis is out of memory (maxmemory)"


async def test_after_redis_lost_its_data_the_bot_and_worker_heal_and_a_job_goes_through(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    health = Recording()
    heard = Heard()
    async with (
        worker(tiny_backend, client, keys, "w1", tmp_path, claim_idle_s=2.0),
        bot(client, keys, tmp_path / "bot", health=health) as service,
    ):
        service.subscribe("cli", heard)
        before = await submit_when_served(service, "before --n 1", "u1")
        await heard.until([before])
        await client.flushall()  # a restart without persistence: groups, streams and heartbeats gone
        after = await submit_when_served(service, "after --n 1", "u1")
        await heard.until([after])
        heard.finished(after)
        await health.until(wanted=False)
    problems = [problem for component, problem in health.history if component == "redis"]
    assert problems and problems[-1] is None  # it was told, and it healed
    assert any(problem is not None for problem in problems)


@contextlib.contextmanager
def own_redis(port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test's own on ``port`` (no persistence), stopped at the end."""
    exe = redis_server()
    assert exe is not None
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_ping(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


async def test_a_redis_outage_shows_in_the_health_logs_two_lines_and_heals(
    tiny_backend: DiffusersBackend,
    tmp_path: Path,
    keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    health = Recording()
    heard = Heard()
    caplog.set_level(logging.INFO)
    with own_redis(port, tmp_path) as server:
        client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
        async with (
            client,
            worker(tiny_backend, client, keys, "w1", tmp_path, claim_idle_s=2.0),
            bot(client, keys, tmp_path / "bot", health=health) as service,
        ):
            service.subscribe("cli", heard)
            os.kill(server.pid, signal.SIGTERM)  # Redis goes away, and comes back empty
            server.wait(timeout=10)
            await health.until(wanted=True)
            with own_redis(port, tmp_path):
                job = await submit_when_served(service, "after the outage --n 1", "u1")
                await heard.until([job])
                heard.finished(job)
                await health.until(wanted=False)
                lines = [
                    r.getMessage()
                    for r in caplog.records
                    if r.name == "generators.health" and r.getMessage().startswith("redis")
                ]
    # One line per change of state, not per retry: the bot's and the worker's, three each at most.
    assert 2 <= len(lines) <= 6, lines
    told = [problem for component, problem in health.history if component == "redis"]
    assert 2 <= len(told) <= 3, told
    assert told[0] is not None and told[0].startswith("cannot reach Redis") and told[-1] is None


async def test_a_worker_makes_a_lost_group_again_and_takes_the_job_waiting_there(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    heard = Heard()
    await stand_in(client, keys)  # the bot takes the job before any worker is up
    async with bot(client, keys, tmp_path / "bot") as service:
        service.subscribe("cli", heard)
        job = await submit_when_served(service, "waiting --n 1", "u1")
        (stream,) = await client.smembers(keys.streams("tiny"))
        assert await client.xgroup_destroy(stream, GROUP)  # as a restart that lost part of the data
        health = Recording()
        async with worker(tiny_backend, client, keys, "w1", tmp_path, claim_idle_s=2.0, health=health):
            await heard.until([job])
            heard.finished(job)
    assert ("redis", None) in health.history  # it said so, and healed
    assert any(problem is not None and "consumer group" in problem for _, problem in health.history)
