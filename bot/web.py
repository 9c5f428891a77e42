"""The bot's web server: a shareable page per result, the raw files, a health check and metrics.

Reddit comments cannot carry images, so replies link here. Nothing on disk is reachable except the files
recorded for a finished job, looked up by its unguessable id; the URL never names a path.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.jobs import JobService
from bot.metrics import Metrics
from bot.metrics import add_routes as add_metrics
from bot.settings import Settings
from bot.store import JobRecord, Store
from generators.config import LimitsConfig
from generators.grammar import format_request
from generators.health import Health
from generators.requests import GenerationRequest, GenerationResult
from generators.text import clip

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
RESULTS = web.AppKey("results", Path)
PUBLIC_URL = web.AppKey("public_url", str)
LIMITS = web.AppKey("limits", LimitsConfig)
WARMING: web.AppKey[Callable[[], bool]] = web.AppKey("warming")
HEALTH = web.AppKey("health", Health)

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_TITLE_CHARS = 90  # what link previews show of a title
# Results can be deleted (retention, the owner's 🗑): caches must ask again each time, which costs a 304
# for files (they carry an ETag) and keeps a deleted result from being served on.
_FILE_CACHE = "no-cache"
_PAGE_CACHE = "no-cache"
# The page needs nothing but its own files and inline style; a prompt that slipped past escaping could
# still not run a script.
_PAGE_POLICY = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"

# Header limits (aiohttp's defaults, stated): a longer request line or header is answered 400.
_MAX_LINE = 8190
_MAX_FIELD = 8190


def _quiet_bad_requests(record: logging.LogRecord) -> bool:
    """A malformed request (internet noise, scanners) is one INFO line, not an ERROR with a traceback."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError) and error.code < 500:
        reason = (str(error.message).splitlines() or [type(error).__name__])[0][:120]
        record.levelno, record.levelname = logging.INFO, "INFO"
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = "bad request from %s answered %d: %s", (remote, error.code, reason)
        record.exc_info = record.exc_text = None
    return True


#: aiohttp's own server log (connections, malformed requests, handler crashes).
HTTP_LOG = logging.getLogger(f"{__name__}.http")
HTTP_LOG.addFilter(_quiet_bad_requests)

#: Adds routes or state to the app (e.g. ``/metrics``); called before the catch-all result routes.
AppSetup = Callable[[web.Application], None]


def create_app(
    store: Store,
    *,
    results_dir: Path,
    public_url: str,
    limits: LimitsConfig,
    setup: Iterable[AppSetup] = (),
    warming: Callable[[], bool] = lambda: False,
    health: Health | None = None,
) -> web.Application:
    """The aiohttp application; run it with ``web.AppRunner``.

    ``setup`` functions add their routes first: ``/{job_id}`` would otherwise take every one-segment path.
    ``/healthz`` answers 503 while ``health`` has a problem or ``warming`` says the models still load.
    """
    app = web.Application()
    app[STORE] = store
    app[WARMING] = warming
    app[HEALTH] = health or Health()
    app[RESULTS] = results_dir.resolve()
    app[PUBLIC_URL] = public_url.rstrip("/")
    app[LIMITS] = limits
    app.router.add_get("/healthz", healthz)
    for add in setup:
        add(app)
    app.router.add_get("/{job_id}", page)
    app.router.add_get("/{job_id}/{name}", media)
    return app


@dataclass(frozen=True, slots=True)
class WebServer:
    """A running server: where it listens (the port is the bound one when the config says 0)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The server's own base URL (not ``web.public_url``, which may be a proxy in front of it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def running(
    settings: Settings, service: JobService, *, setup: Iterable[AppSetup] = ()
) -> AsyncIterator[WebServer]:
    """Serve result pages, ``/healthz`` and ``/metrics`` on ``web.host``:``web.port`` until the block ends."""
    metrics = Metrics.following(service)
    metrics.count_results(settings.worker.results_dir)
    app = create_app(
        service.store,
        results_dir=settings.worker.results_dir,
        public_url=settings.web.public_url,
        limits=service.limits,
        setup=(functools.partial(add_metrics, metrics=metrics), *setup),
        warming=lambda: service.runner.warming,
        health=service.health,
    )
    runner = web.AppRunner(
        app,
        access_log=None,
        logger=HTTP_LOG,
        keepalive_timeout=settings.web.idle_timeout_s,  # also bounds the wait for a request's headers
        lingering_time=settings.web.body_timeout_s,
        max_line_size=_MAX_LINE,
        max_field_size=_MAX_FIELD,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        host, port = runner.addresses[0][:2]
        server = WebServer(host, port)
        log.info("web server on %s; links say %s", server.url, settings.web.public_url)
        yield server
    finally:
        await runner.cleanup()


def page_url(public_url: str, job_id: str) -> str:
    """Where a job's page is."""
    return f"{public_url.rstrip('/')}/{job_id}"


async def healthz(request: web.Request) -> web.Response:
    """Readiness: the store can be read, nothing keeps the bot from serving, and the models are warm.

    503 ``unhealthy`` with the reasons by component (a platform not logged in, Redis unreachable, a
    model that cannot load) while there are any, else 503 ``warming`` while the models load.
    """
    stats = await request.app[STORE].stats()
    problems = request.app[HEALTH].problems
    if problems:
        body = {"ok": False, "status": "unhealthy", "problems": problems, "jobs": stats}
        return web.json_response(body, status=503, content_type="application/json")
    if request.app[WARMING]():
        body = {"ok": False, "status": "warming", "jobs": stats}
        return web.json_response(body, status=503, content_type="application/json")
    return web.json_response({"ok": True, "status": "ready", "jobs": stats}, content_type="application/json")


async def _finished(request: web.Request) -> tuple[JobRecord, GenerationResult]:
    job_id = request.match_info["job_id"]
    if not _JOB_ID.match(job_id):
        raise web.HTTPNotFound(text="no such result")
    store = request.app[STORE]
    record = await store.get(job_id)
    if record is None and await store.was_deleted(job_id):
        raise web.HTTPGone(text="this result was deleted")
    if record is None or record.result is None:
        raise web.HTTPNotFound(text="no such result")
    return record, record.result


async def media(request: web.Request) -> web.FileResponse:
    """A result's raw file, with its content type and long-lived cache headers."""
    _, result = await _finished(request)
    name = request.match_info["name"]
    # Only a file the job recorded, by its bare name: the URL never becomes a path.
    for file in result.files:
        path = file.path.resolve()
        if file.path.name == name and path.is_relative_to(request.app[RESULTS]) and path.is_file():
            headers = {
                "Content-Type": file.mime,
                "Cache-Control": _FILE_CACHE,
                "X-Content-Type-Options": "nosniff",
            }
            return web.FileResponse(path, headers=headers)
    raise web.HTTPNotFound(text="no such file")


async def page(request: web.Request) -> web.Response:
    """A small HTML page with the result, its prompt and seed, and the command that reproduces it."""
    record, result = await _finished(request)
    base = request.app[PUBLIC_URL]
    body = render_page(
        record.job.request,
        result,
        page_url=page_url(base, record.id),
        file_url=file_url(base, result),
        command=format_request(record.job.request, request.app[LIMITS]),
        show_flagged=request.query.get("show") == "1",
    )
    headers = {
        "Cache-Control": _PAGE_CACHE,
        "Content-Security-Policy": _PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)


def file_url(public_url: str, result: GenerationResult) -> str:
    """Where a result's primary file (the grid or clip) is."""
    return f"{page_url(public_url, result.job_id)}/{result.primary.path.name}"


def _origin(request: GenerationRequest, page_url: str) -> str:
    """A remix's line naming where it started: its source job's page, or its picture's SHA-256."""
    source = request.source
    if source is None:
        return ""
    e = html.escape
    strength = f"{request.strength or 0:g}"
    if source.job:
        link = page_url.rsplit("/", 1)[0] + f"/{source.job}"
        start = f'job <a href="{e(link)}">{e(source.job)}</a>'
    else:
        start = f"a picture with SHA-256 <code>{e(source.digest)}</code>"
    return f"<p>Remix of {start} at strength {strength}</p>\n"


def _shown(
    request: GenerationRequest, result: GenerationResult, file_url: str, *, show_flagged: bool
) -> tuple[str, list[tuple[str, str]]]:
    """The result's element on the page and its link-preview tags.

    A result the image classifier flagged is a click-through (``?show=1``) and previews carry no image:
    a link posted anywhere must not unfurl an explicit picture.
    """
    e = html.escape
    mime = result.primary.mime
    if result.flagged and not show_flagged:
        shown = (
            '<p class="flagged">This result was flagged as explicit. '
            '<a href="?show=1" rel="nofollow">Show explicit result</a></p>'
        )
        return shown, []
    if mime.startswith("video/"):
        shown = f'<video src="{e(file_url)}" autoplay loop muted playsinline controls></video>'
        preview = [("og:video", file_url), ("og:video:type", mime)]
    else:
        shown = f'<img src="{e(file_url)}" alt="{e(request.prompt)}">'
        preview = [("og:image", file_url), ("og:image:type", mime), ("twitter:image", file_url)]
    return shown, [] if result.flagged else preview


def render_page(
    request: GenerationRequest,
    result: GenerationResult,
    *,
    page_url: str,
    file_url: str,
    command: str,
    show_flagged: bool = False,
) -> str:
    """The page's HTML (pure: easy to test and to look at)."""
    e = html.escape
    title = clip(request.prompt, _TITLE_CHARS)
    size = f"{result.width}×{result.height}"
    if request.n > 1:
        size = f"{request.n} images of {size}"
    description = f"seed {request.seed} · {size} · made with memebot"
    shown, preview = _shown(request, result, file_url, show_flagged=show_flagged)
    tags = [
        ("og:type", "website"),
        ("og:title", title),
        ("og:description", description),
        ("og:url", page_url),
        *preview,
        ("twitter:card", "summary_large_image" if preview else "summary"),
        ("twitter:title", title),
        ("twitter:description", description),
    ]
    meta = "\n".join(
        f'<meta {"name" if key.startswith("twitter:") else "property"}="{key}" content="{e(value)}">'
        for key, value in tags
    )
    origin = _origin(request, page_url)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · memebot</title>
{meta}
<style>
body {{ font-family: system-ui, sans-serif; background: #111; color: #eee; margin: 0; padding: 1rem; }}
main {{ max-width: 960px; margin: auto; }}
img, video {{ max-width: 100%; height: auto; display: block; margin: 1rem auto; border-radius: 6px; }}
code {{ background: #222; padding: .2rem .4rem; border-radius: 4px; word-break: break-word; }}
a {{ color: #8cf; }}
</style>
</head>
<body>
<main>
<h1>{e(title)}</h1>
{shown}
<p>Seed <strong>{e(str(request.seed))}</strong> · {size}</p>
<p>Reproduce: <code>{e(command)}</code></p>
{origin}<p><a href="{e(file_url)}" download>Download</a></p>
</main>
</body>
</html>
"""
