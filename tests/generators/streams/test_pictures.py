"""Remix pictures on Redis are bounded: written only for accepted jobs, within a budget, gone at the end.

A real redis-server; a heartbeat stands in for workers where nothing should take the jobs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image
from redis.asyncio import Redis

from bot.jobs import JobService
from generators.errors import QueueFull
from generators.pipelines import DiffusersBackend
from generators.requests import Source
from generators.streams.keys import Keys
from tests.generators.streams.cluster import Heard, bot, stand_in, worker


def noise(side: int) -> bytes:
    """A PNG of random pixels: it hardly compresses, so its size is known (about 3 bytes a pixel)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def remix(service: JobService, source: Source, owner: str) -> str:
    request = service.parse("a cat --n 1 --strength 0.5", source=source)
    return (await service.submit(request, owner=owner, platform="cli", reply_to={})).id


async def prompt(service: JobService, owner: str) -> str:
    return (await service.submit(service.parse("a dog --n 1"), owner=owner, platform="cli", reply_to={})).id


async def test_a_picture_is_written_only_for_an_accepted_job_within_its_budget_and_leaves_with_it(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    await stand_in(client, keys)
    async with bot(client, keys, tmp_path / "bot", per_user=1, source_budget_bytes=20_000) as service:
        first, second = [await service.sources.take(noise(64)) for _ in range(2)]
        assert 12_000 < service.sources.path(first.digest).stat().st_size < 20_000 / 1.5

        await prompt(service, "u1")
        with pytest.raises(QueueFull, match="already have 1 job"):
            await remix(service, first, "u1")  # refused by the caps: nothing written
        assert not await client.exists(keys.source(first.digest))

        held = await remix(service, first, "u2")
        assert await client.exists(keys.source(first.digest))
        assert 0 < await client.ttl(keys.source(first.digest)) <= 3600
        with pytest.raises(QueueFull, match="too many pictures are waiting to be remixed"):
            await remix(service, second, "u3")  # two would pass the budget
        assert not await client.exists(keys.source(second.digest))
        await prompt(service, "u3")  # plain prompts are never refused for pictures

        await service.cancel(held)  # the job ends while it waits: its picture goes with it
        assert not await client.exists(keys.source(first.digest))
        assert await client.hlen(keys.sources) == 0
        await remix(service, second, "u2")
        assert await client.exists(keys.source(second.digest))


async def test_two_jobs_on_one_picture_share_it_and_the_last_to_end_deletes_it(
    tiny_backend: DiffusersBackend, client: Redis, keys: Keys, tmp_path: Path
) -> None:
    heard = Heard()
    async with bot(client, keys, tmp_path / "bot") as service:
        service.subscribe("cli", heard)
        source = await service.sources.take(noise(48))
        async with worker(tiny_backend, client, keys, "w1", tmp_path):
            jobs = [await remix(service, source, owner) for owner in ("u1", "u2")]
            assert await client.hget(keys.sources, source.digest) in (b"2", b"1", None)
            await heard.until(jobs)
            for job_id in jobs:
                heard.finished(job_id)
        assert not await client.exists(keys.source(source.digest))
        assert await client.hlen(keys.sources) == 0


async def test_a_redis_near_its_maxmemory_refuses_remixes_but_takes_plain_prompts(
    client: Redis, keys: Keys, tmp_path: Path
) -> None:
    await stand_in(client, keys)
    async with bot(client, keys, tmp_path / "bot", per_user=5) as service:
        source = await service.sources.take(noise(256))
        size = service.sources.path(source.digest).stat().st_size
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", used + size // 2)
        try:
            with pytest.raises(QueueFull, match="too many pictures are waiting to be remixed"):
                await remix(service, source, "u1")
            await prompt(service, "u1")
        finally:
            await client.config_set("maxmemory", 0)
        assert not await client.exists(keys.source(source.digest))
