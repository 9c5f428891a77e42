"""The result page in a real browser (Debian's headless Chromium): it renders, its image loads, and
its preview tags point to the file.

The page itself is served untouched. A probe page on the same server frames it and writes what the
browser made of it into its own DOM, which ``chromium --dump-dom`` prints.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web as aioweb
from PIL import Image

from generators.pipelines import DiffusersBackend
from tests.bot.test_web import site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI needs Debian's chromium for the browser test (.ci/run installs it)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)

# Flags known to work on a closed network: no background connections, no sandbox as root.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PROBE = """<!doctype html>
<html><body>
<pre id="out">not loaded</pre>
<iframe id="page" src="/{job_id}" width="800" height="600"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", () => {{
  const doc = frame.contentDocument;
  const img = doc.querySelector("main img");
  const meta = (key) => {{
    const tag = doc.querySelector(`meta[property="${{key}}"], meta[name="${{key}}"]`);
    return tag && tag.content;
  }};
  document.getElementById("out").textContent = JSON.stringify({{
    title: doc.title,
    heading: doc.querySelector("h1") && doc.querySelector("h1").textContent,
    complete: img ? img.complete : null,
    width: img ? img.naturalWidth : null,
    height: img ? img.naturalHeight : null,
    shown: img ? img.getBoundingClientRect().width : null,
    og_image: meta("og:image"),
    twitter_image: meta("twitter:image"),
  }});
}});
</script>
</body></html>
"""


def add_probe(app: aioweb.Application) -> None:
    async def probe(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(
            text=PROBE.format(job_id=request.match_info["job_id"]), content_type="text/html"
        )

    app.router.add_get("/probe/{job_id}", probe)


async def dump_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` once Chromium has loaded it (the server runs on this loop: never block it)."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.timeout(120)
async def test_the_page_renders_its_image_loads_and_its_tags_point_to_the_file(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    async with site(tiny_backend, tmp_path, setup=(add_probe,)) as s:
        dom = await dump_dom(f"{s.server.url}/probe/{s.job.id}", tmp_path / "chromium-profile")
        found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.DOTALL)
        assert found is not None, dom[:2000]
        seen = json.loads(html.unescape(found.group(1)))  # the DOM dump escapes text

        assert seen["title"] == "a <b>bold</b> hamster · memebot"
        assert seen["heading"] == "a <b>bold</b> hamster"  # shown as text, not markup
        assert seen["complete"] is True
        with Image.open(s.result.primary.path) as grid:
            assert (seen["width"], seen["height"]) == grid.size  # decoded, not a broken-image icon
        assert seen["shown"] > 0
        assert seen["og_image"] == seen["twitter_image"] == s.file
        async with aiohttp.ClientSession() as http, http.get(seen["og_image"]) as response:
            assert response.status == 200
            assert response.content_type == s.result.primary.mime
            assert await response.read() == s.result.primary.path.read_bytes()
