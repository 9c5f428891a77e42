"""The web server: a result's page and file, and nothing else on disk."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yarl
from aiohttp import web as aioweb

from bot import web
from bot.jobs import JobService
from bot.settings import Settings, WebConfig
from bot.store import JobRecord, JobStatus
from generators.config import ModelConfig, WorkerConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.pool import ModelPool
from generators.requests import Finished, GenerationRequest, GenerationResult, Job, MediaFile, Source
from tests.fakes.loopback import free_port
from tests.helpers import open_service


@dataclass
class Site:
    service: JobService
    server: web.WebServer
    job: JobRecord
    result: GenerationResult

    @property
    def page(self) -> str:
        return f"{self.server.url}/{self.job.id}"

    @property
    def file(self) -> str:
        return f"{self.page}/{self.result.primary.path.name}"


async def finished_job(service: JobService, text: str) -> tuple[JobRecord, GenerationResult]:
    record = await service.submit(service.parse(text), owner="cli", platform="cli", reply_to={})
    async for event in service.watch(record.id):
        if isinstance(event, Finished):
            return record, event.result
    raise AssertionError("the job did not finish")


@contextlib.asynccontextmanager
async def site(
    backend: DiffusersBackend, tmp_path: Path, *, setup: tuple[web.AppSetup, ...] = ()
) -> AsyncIterator[Site]:
    """A finished job and the web server, whose public URL is its own address."""
    port = free_port()
    settings = Settings(
        worker=WorkerConfig(results_dir=tmp_path / "results"),
        web=WebConfig(enabled=True, port=port, public_url=f"http://127.0.0.1:{port}/"),
    )
    async with open_service(backend, tmp_path / "jobs.db", tmp_path) as service:
        record, result = await finished_job(service, "a <b>bold</b> hamster --n 4 --seed 5")
        async with web.running(settings, service, setup=setup) as server:
            yield Site(service, server, record, result)


async def test_the_page_shows_the_result_with_preview_tags(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with site(tiny_backend, tmp_path) as s, aiohttp.ClientSession() as http:
        async with http.get(s.page) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            html = await response.text()
    tags = dict(re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', html))
    assert tags["og:image"] == tags["twitter:image"] == s.file
    assert tags["og:url"] == s.page
    assert tags["og:title"] == "a &lt;b&gt;bold&lt;/b&gt; hamster"  # escaped, never markup
    assert tags["og:image:type"] == s.result.primary.mime
    assert tags["og:description"] == "seed 5 · 4 images of 64×64 · made with memebot"
    assert tags["twitter:card"] == "summary_large_image"
    assert "<b>" not in html
    assert "Seed <strong>5</strong>" in html
    assert "<code>a &lt;b&gt;bold&lt;/b&gt; hamster --seed 5 --n 4 --model tiny</code>" in html


async def test_the_file_has_its_type_and_cache_headers(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with site(tiny_backend, tmp_path) as s, aiohttp.ClientSession() as http:
        async with http.get(s.file) as response:
            assert response.status == 200
            assert response.content_type == s.result.primary.mime
            # Results can be deleted: caches revalidate (a 304 by the ETag) rather than keep them a year.
            assert response.headers["Cache-Control"] == "no-cache"
            assert await response.read() == s.result.primary.path.read_bytes()
            etag = response.headers["ETag"]
        async with http.get(s.file, headers={"If-None-Match": etag}) as response:
            assert response.status == 304


async def test_unknown_ids_and_path_tricks_are_404(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    secret = tmp_path / "results" / "secret.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("not for the web")
    async with site(tiny_backend, tmp_path) as s, aiohttp.ClientSession() as http:
        queued = await s.service.submit(s.service.parse("later"), owner="cli", platform="cli", reply_to={})
        name = s.result.primary.path.name
        paths = [
            "/AAAAAAAAAAAAAAAA",  # well formed, unknown
            f"/{s.job.id}x",
            f"/{queued.id}",  # not finished: no page yet
            f"/{s.job.id}/nope.png",
            f"/{s.job.id}/secret.txt",
            f"/{s.job.id}/..%2Fsecret.txt",
            f"/{s.job.id}/..%2Fjobs.db",  # results/../jobs.db is the store
            f"/{s.job.id}/%2e%2e%2f%2e%2e%2fjobs.db",
            f"/..%2F..%2Fjobs.db/{name}",
            f"/{s.job.id}/../../jobs.db",
            f"/{s.job.id}/{name}/..%2F..%2F..%2Fjobs.db",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/",
        ]
        for path in paths:
            url = yarl.URL(s.server.url + path, encoded=True)  # sent exactly as written
            async with http.get(url) as response:
                assert response.status == 404, path
                body = await response.read()
                assert b"not for the web" not in body and b"SQLite format" not in body


async def test_a_file_outside_the_results_folder_is_never_served(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    """Even a job whose stored result names a file elsewhere (a tampered or moved store)."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG not for the web")
    async with site(tiny_backend, tmp_path) as s, aiohttp.ClientSession() as http:
        record = await s.service.submit(s.service.parse("moved"), owner="cli", platform="cli", reply_to={})
        result = GenerationResult(record.id, (MediaFile(outside, "image/png", 20),), (1,), 64, 64, 0.1)
        await s.service.store.transition(record.id, JobStatus.RUNNING)
        await s.service.store.transition(record.id, JobStatus.DONE, result=result)
        async with http.get(f"{s.server.url}/{record.id}/outside.png") as response:
            assert response.status == 404


async def test_healthz_and_extra_routes_come_before_the_result_routes(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async def extra(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text="extra")

    def add_extra(app: aioweb.Application) -> None:
        app.router.add_get("/extra", extra)

    async with site(tiny_backend, tmp_path, setup=(add_extra,)) as s, aiohttp.ClientSession() as http:
        async with http.get(f"{s.server.url}/extra") as response:
            assert (response.status, await response.text()) == (200, "extra")
        async with http.get(f"{s.server.url}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"ok": True, "status": "ready", "jobs": {"done": 1}}


async def test_port_zero_binds_a_free_port(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    settings = Settings(web=WebConfig(enabled=True, port=0))
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        async with web.running(settings, service) as server, aiohttp.ClientSession() as http:
            assert server.port != 0
            async with http.get(f"{server.url}/healthz") as response:
                assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz"):
                pass  # stopped with the block


def page_of(request: GenerationRequest, name: str = "grid.png", mime: str = "image/png") -> str:
    """The page of a one-file result of ``request`` at https://x.example/job."""
    result = GenerationResult("job", (MediaFile(Path(name), mime, 10),), (3,), 64, 64, 0.1)
    return web.render_page(
        request,
        result,
        page_url="https://x.example/job",
        file_url=f"https://x.example/job/{name}",
        command="the command",
    )


def test_a_clip_page_shows_a_video() -> None:
    html = page_of(GenerationRequest("a dancing cat", seed=3), "clip.mp4", "video/mp4")
    assert '<video src="https://x.example/job/clip.mp4"' in html
    assert '<meta property="og:video:type" content="video/mp4">' in html
    assert "og:image" not in html


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (
            Source("ab" * 32, job="Src123_job"),
            'Remix of job <a href="https://x.example/Src123_job">Src123_job</a>',
        ),
        (Source("ab" * 32), f"Remix of a picture with SHA-256 <code>{'ab' * 32}</code>"),
    ],
)
def test_a_remix_page_names_its_source_and_strength(source: Source, shown: str) -> None:
    html = page_of(GenerationRequest("a <b>cat</b>", seed=3, n=1, source=source, strength=0.45))
    assert f"{shown} at strength 0.45" in html
    assert "<b>cat</b>" not in html  # the prompt is escaped as ever


def test_a_plain_page_names_no_source() -> None:
    assert "Remix" not in page_of(GenerationRequest("a cat", seed=3))


async def exchange(server: web.WebServer, raw: bytes) -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
    b"GET /\xff\xfe\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-Huge: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/9.9\r\n\r\n",
]


@pytest.mark.parametrize(
    "raw", MALFORMED, ids=["line", "header", "utf8", "huge-header", "huge-path", "version"]
)
async def test_a_malformed_request_is_answered_400_and_logged_as_one_quiet_line(
    raw: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(web=WebConfig(enabled=True, port=0))
    async with open_service([], tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        async with web.running(settings, service) as server:
            answer = await exchange(server, raw)
    assert answer.startswith(b"HTTP/1.") and answer.split(b" ")[1] == b"400", answer[:80]
    lines = [r for r in caplog.records if r.name == web.HTTP_LOG.name and r.levelno >= logging.INFO]
    assert len(lines) <= 1  # a request that is not HTTP at all is only a DEBUG line
    for line in lines:
        assert line.levelno < logging.ERROR and line.exc_info is None
        assert "\n" not in line.getMessage() and line.getMessage().startswith("bad request from 127.0.0.1")


async def test_idle_and_half_sent_connections_are_closed(tmp_path: Path) -> None:
    settings = Settings(web=WebConfig(enabled=True, port=0, idle_timeout_s=0.2))
    async with open_service([], tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        async with web.running(settings, service) as server:
            assert await exchange(server, b"") == b""  # connected, said nothing
            assert await exchange(server, b"GET /healthz HTTP/1.1\r\nHo") == b""  # headers never end
            answer = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200")  # answered, then closed once idle


def test_the_timeouts_have_defaults() -> None:
    config = WebConfig()
    assert (config.idle_timeout_s, config.body_timeout_s) == (15.0, 10.0)


async def test_healthz_says_warming_until_the_models_are_loaded_and_compiled(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_loader(config: ModelConfig, name: str) -> DiffusersBackend:
        release.wait(60)  # the test decides when loading (and compiling) is over
        return load_backend(config.model_copy(update={"compile": "off"}), name)

    compiled = ModelConfig(name="tiny", size=64, steps=1, compile="default")
    pool = ModelPool({"tiny": compiled}, image="tiny", video=None, loader=slow_loader)
    settings = Settings(web=WebConfig(enabled=True, port=0))
    async with open_service(pool, tmp_path / "jobs.db", tmp_path) as service:
        async with web.running(settings, service) as server, aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/healthz") as response:
                assert (response.status, (await response.json())["status"]) == (503, "warming")
            release.set()
            while True:  # the worker reports ready once its warm-up call has run
                async with http.get(f"{server.url}/healthz") as response:
                    if response.status == 200:
                        assert (await response.json())["status"] == "ready"
                        break
                await asyncio.sleep(0.05)


async def test_healthz_is_503_with_the_reasons_while_anything_keeps_the_bot_from_serving(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    settings = Settings(web=WebConfig(enabled=True, port=0))
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        async with web.running(settings, service) as server, aiohttp.ClientSession() as http:
            service.health.report("discord", "cannot log in, retrying: cannot connect to discord.com:443")
            async with http.get(f"{server.url}/healthz") as response:
                assert response.status == 503
                body = await response.json()
            assert body["status"] == "unhealthy" and body["ok"] is False
            assert body["problems"] == {
                "discord": "cannot log in, retrying: cannot connect to discord.com:443"
            }
            service.health.report("discord", None)
            async with http.get(f"{server.url}/healthz") as response:
                assert (response.status, (await response.json())["status"]) == (200, "ready")


def flagged_result(name: str = "grid.png", mime: str = "image/png") -> GenerationResult:
    return GenerationResult("job", (MediaFile(Path(name), mime, 10),), (3,), 64, 64, 0.1, nsfw=(0,))


@pytest.mark.parametrize(("name", "mime"), [("grid.png", "image/png"), ("clip.mp4", "video/mp4")])
def test_a_flagged_result_is_a_click_through_and_previews_carry_no_picture(name: str, mime: str) -> None:
    request = GenerationRequest("a cat", seed=3)
    common = {
        "page_url": "https://x.example/job",
        "file_url": f"https://x.example/job/{name}",
        "command": "c",
    }
    hidden = web.render_page(request, flagged_result(name, mime), **common)
    assert "<img" not in hidden and "<video" not in hidden
    assert '<a href="?show=1"' in hidden and "Show explicit result" in hidden
    tags = dict(re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', hidden))
    assert not {"og:image", "twitter:image", "og:video"} & set(tags)
    assert tags["twitter:card"] == "summary"
    shown = web.render_page(request, flagged_result(name, mime), show_flagged=True, **common)
    assert f'src="https://x.example/job/{name}"' in shown
    tags = dict(re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', shown))
    assert not {"og:image", "twitter:image", "og:video"} & set(tags)  # even once shown


async def test_a_flagged_page_shows_the_picture_only_after_the_click(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with site(tiny_backend, tmp_path) as s, aiohttp.ClientSession() as http:
        store = s.service.store
        job = Job("flagged-job-0001", "cli", GenerationRequest("a cat", seed=1, n=1))
        await store.add(job, platform="cli", reply_to={})
        await store.transition(job.id, JobStatus.RUNNING)
        flagged = dataclasses.replace(s.result, job_id=job.id, nsfw=(0,), nsfw_labels=("explicit",))
        await store.transition(job.id, JobStatus.DONE, result=flagged)
        page = f"{s.server.url}/{job.id}"
        image = f'<img src="{page}/{s.result.primary.path.name}"'
        async with http.get(page) as response:
            html = await response.text()
        assert image not in html and "Show explicit result" in html and "og:image" not in html
        async with http.get(page, params={"show": "1"}) as response:
            assert image in await response.text()
