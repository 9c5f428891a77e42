"""The pictures remixes start from, kept by their SHA-256 until the worker has used them.

A member's picture comes in through ``generators.intake`` (checked and decoded safely), is scaled to at
most ``max_side`` on its long side and written as a PNG named by the digest of the bytes the member
sent. The request names only that digest (``requests.Source``): the worker reads the picture from the
same folder (a worker on Redis copies it there first), and a result's metadata and page name the digest,
never the picture. A remix of a memebot result starts from one tile of its grid and names that job.

Retention deletes pictures as old as the results (``remove_older_than``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Protocol

from PIL import Image

from generators import intake
from generators.config import LimitsConfig
from generators.errors import BadRequest
from generators.intake import IntakeLimits
from generators.render import grid_shape, png_bytes
from generators.requests import GenerationResult, Job, Kind, Source
from generators.results import write_atomic

#: Stored pictures are PNGs named by a SHA-256 in hex.
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sources_folder(results_dir: Path) -> Path:
    """Where the pictures live next to the results (no job id starts with a dot, so none collides)."""
    return results_dir / ".sources"


def source_path(folder: Path, digest: str) -> Path:
    """The file of the picture ``digest``; ValueError for anything but a SHA-256 in hex."""
    if not _DIGEST.match(digest):
        raise ValueError(f"not a picture digest: {digest[:80]!r}")
    return folder / f"{digest}.png"


def write_source(folder: Path, digest: str, data: bytes) -> Path:
    """Write a stored picture's PNG bytes atomically (a worker never reads half a file)."""
    return write_atomic(source_path(folder, digest), data)


def open_source(folder: Path, digest: str, width: int, height: int) -> Image.Image | None:
    """The picture ``digest`` fitted to ``width``×``height`` (aspect kept, centre cropped); None when gone."""
    try:
        with Image.open(source_path(folder, digest)) as image:
            picture = image.convert("RGB")
    except FileNotFoundError:
        return None
    return intake.fit(picture, width, height)


class FinishedJob(Protocol):
    """A stored job, as :meth:`SourceStore.take_result` reads it."""

    @property
    def id(self) -> str:
        """The job's id."""
        ...

    @property
    def job(self) -> Job:
        """The job, with its request."""
        ...

    @property
    def result(self) -> GenerationResult | None:
        """Its files, once it finished."""
        ...


class SourceStore:
    """Takes members' pictures and result tiles in, and keeps them for the worker."""

    def __init__(self, folder: Path, limits: IntakeLimits, *, max_side: int = 1024) -> None:
        self.folder = folder
        self.limits = limits
        self.max_side = max_side

    @classmethod
    def beside(cls, results_dir: Path, limits: LimitsConfig) -> SourceStore:
        """The store in ``results_dir``'s source folder, with the configured caps."""
        return cls(sources_folder(results_dir), IntakeLimits.of(limits), max_side=limits.max_side)

    def path(self, digest: str) -> Path:
        """Where the picture ``digest`` is kept."""
        return source_path(self.folder, digest)

    async def take(self, data: bytes) -> Source:
        """Check and keep a member's picture; BadImage (a BadRequest) for anything it can't take.

        Decoding runs in a process of its own (``intake.decode_isolated``): a picture can cost seconds of
        CPU, and must hold none of the threads the loop's DNS lookups and file reads need.
        """
        digest = intake.digest(data)
        path = self.path(digest)
        try:
            touch(path)  # taken before: the same picture, already checked
            size = await asyncio.to_thread(_size_of, path)
        except FileNotFoundError:
            picture = await intake.decode_isolated(data, limits=self.limits, max_side=self.max_side)
            png, size = await asyncio.to_thread(png_bytes, picture), picture.size
            await asyncio.to_thread(write_source, self.folder, digest, png)
        return Source(digest, width=size[0], height=size[1])

    async def take_result(self, record: FinishedJob, index: int) -> Source:
        """Keep tile ``index`` (1 = the first) of a finished image job's grid, naming that job."""
        result = record.result
        if record.job.request.kind is Kind.VIDEO:
            raise BadRequest("a clip can't be remixed: remix one of your pictures instead")
        if result is None:
            raise BadRequest(f"job {record.id} has no result to remix")
        count = len(result.seeds)
        if not 1 <= index <= count:
            raise BadRequest(f"pick an image from 1 to {count}")
        try:
            png, size = await asyncio.to_thread(_tile_png, result.primary.path, count, index)
        except FileNotFoundError as error:
            raise BadRequest(f"the result of job {record.id} is gone, so it can't be remixed") from error
        digest = intake.digest(png)
        await asyncio.to_thread(write_source, self.folder, digest, png)
        return Source(digest, job=record.id, width=size[0], height=size[1])

    def remove(self, digest: str) -> bool:
        """Delete the picture ``digest`` now (its job was deleted); False if it was not here."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def remove_older_than(self, cutoff: float) -> int:
        """Delete the pictures last used before ``cutoff`` (a time.time() value); how many went."""
        return prune(self.folder, cutoff)


def _size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _tile_png(grid_path: Path, count: int, index: int) -> tuple[bytes, tuple[int, int]]:
    """Tile ``index`` of a grid of ``count`` images, cut at its share of the file's size.

    The file may have been scaled down to fit a platform's upload limit, so the boxes are proportional.
    """
    cols, rows = grid_shape(count)
    with Image.open(grid_path) as grid:
        width, height = grid.size
        col, row = (index - 1) % cols, (index - 1) // cols
        box = (
            col * width // cols,
            row * height // rows,
            (col + 1) * width // cols,
            (row + 1) * height // rows,
        )
        tile = grid.convert("RGB").crop(box)
    return png_bytes(tile), tile.size


def prune(folder: Path, cutoff: float) -> int:
    """Delete the pictures in ``folder`` last used before ``cutoff``; how many went."""
    removed = 0
    for path in folder.glob("*.png") if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def touch(path: Path) -> None:
    """Mark a kept picture as used now, so retention keeps it as long as the newest remix of it."""
    now = time.time()
    os.utime(path, (now, now))
