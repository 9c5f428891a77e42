"""Decoding a member's picture where it cannot hurt: checked first, then read in a child process with
CPU, memory and time limits.

A picture can be a CPU bomb that passes every size cap: an 8 MiB progressive JPEG of 253,000 tiny
scans took 4.5 minutes of CPU, and six of them held every thread of the default executor (DNS, file
reads, the worker's pictures) for a quarter of an hour. So, in order:

- the bytes must be one of :data:`~generators.sniff.FORMATS`, and only that format's decoder is tried;
- the pieces are counted without decoding (:mod:`generators.sniff`): too many JPEG scans or segments, or
  PNG chunks, is a refusal;
- the header's pixel count is checked before any pixel is decoded;
- the decode itself runs in a child process of its own (``python -m generators.decode``) under an
  ``RLIMIT_CPU``, an address-space limit and a wall-clock budget; at most :data:`DECODERS` run at once
  and at most :data:`WAITING` more wait, so no thread of the bot's is ever held by a picture, and a
  picture that outruns the budget is refused in one line, its process killed.

Everything Pillow does on the way (EXIF orientation, the mode conversion) is inside the refusal's
handling: Pillow raises a zoo of exception types on hostile bytes, and each is the member's one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import math
import os
import signal
import sys
import warnings
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from generators.errors import BadRequest
from generators.sniff import pieces, sniff, too_many

if TYPE_CHECKING:
    from generators.config import LimitsConfig

MIB = 1024 * 1024
#: Decodes running at once (each a process), leaving a core to the bot on a small host; how many more
#: may wait.
DECODERS = max(1, min(2, (os.cpu_count() or 2) - 1))
WAITING = 16
#: A decoding process gives way to the bot's own (the event loop, the worker) when they share a core.
NICENESS = 10
NOT_AN_IMAGE = "that file is not an image this bot can read (PNG, JPEG, GIF or WebP)"
DAMAGED = "that image is damaged or cut short; try another one"
TOO_SLOW = "that image takes too long to read; save it again as a plain PNG or JPEG"
TOO_MUCH_MEMORY = "that image needs too much memory to read; send a smaller one"
BUSY = "too many pictures are being read right now; try again in a minute"
# The child imports this module by name: from the folder that holds the ``generators`` package.
_ROOT = Path(__file__).resolve().parents[1]


class BadImage(BadRequest):
    """A picture the bot will not take, with the reason for the member."""


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """How big a picture may be (bytes, pixels), how long its download and its decode may take, and
    how much memory its decoding process may map."""

    max_bytes: int = 8 * MIB
    max_pixels: int = 4096 * 4096
    timeout_s: float = 15.0
    decode_s: float = 10.0
    decode_memory: int = 1024 * MIB

    @classmethod
    def of(cls, limits: LimitsConfig) -> IntakeLimits:
        """The configured caps (``limits.max_image_bytes``, ``limits.max_image_pixels``)."""
        return cls(max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)


def too_big(cap: int) -> str:
    """The refusal of a picture over ``cap`` bytes."""
    return f"the image is over {cap / MIB:g} MiB; send a smaller one"


def decode_header_refusal(width: int, height: int, max_pixels: int) -> None:
    """Raise the pixel-count refusal for a picture whose size is known without its bytes."""
    side = int(max_pixels**0.5)
    raise BadImage(f"the image is {width}×{height} pixels; the limit is {side}×{side}")


def check(data: bytes, limits: IntakeLimits) -> str:
    """The picture's format, once its bytes, format and pieces pass; BadImage otherwise (no decoding)."""
    if len(data) > limits.max_bytes:
        raise BadImage(too_big(limits.max_bytes))
    fmt = sniff(data)
    if fmt is None:
        raise BadImage(NOT_AN_IMAGE)
    problem = too_many(pieces(data, fmt))
    if problem is not None:
        raise BadImage(problem)
    return fmt


def decode(data: bytes, *, limits: IntakeLimits, max_side: int | None = None) -> Image.Image:
    """An RGB image from ``data`` in this process: checked, header first, first frame, EXIF orientation
    applied, at most ``max_side`` on its long side. Members' pictures go through :func:`decode_isolated`."""
    fmt = check(data, limits)
    side = int(limits.max_pixels**0.5)
    with warnings.catch_warnings():
        # Odd metadata makes Pillow warn; what matters is whether it decodes, and that is caught below.
        warnings.simplefilter("ignore")
        try:
            return _decode(data, fmt, limits, max_side)
        except BadImage:
            raise
        except Image.DecompressionBombError as error:
            raise BadImage(f"the image has too many pixels; the limit is {side}×{side}") from error
        except UnidentifiedImageError as error:
            raise BadImage(DAMAGED if fmt else NOT_AN_IMAGE) from error
        except MemoryError as error:
            raise BadImage(TOO_MUCH_MEMORY) from error
        except Exception as error:  # SyntaxError from EXIF, struct.error, OSError...: all hostile bytes
            raise BadImage(DAMAGED) from error


def _decode(data: bytes, fmt: str, limits: IntakeLimits, max_side: int | None) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
    width, height = image.size
    if width * height > limits.max_pixels:
        decode_header_refusal(width, height, limits.max_pixels)
    image.seek(0)  # an animation's first frame
    image.load()
    picture = ImageOps.exif_transpose(image).convert("RGB")
    if max_side is not None:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture


async def decode_isolated(data: bytes, *, limits: IntakeLimits, max_side: int | None = None) -> Image.Image:
    """:func:`decode` in a child process under CPU, memory and time limits; BadImage for any refusal."""
    check(data, limits)  # the cheap refusals without starting a process
    async with _turn():
        answer, code = await _run_child(data, limits, max_side)
    # Copying a 4096² answer into an image takes ~100 ms: on a thread of the intake's own, not the loop's.
    return await asyncio.get_running_loop().run_in_executor(_assembler(), _picture_from, answer, code)


@functools.cache
def _assembler() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="intake")


@dataclass
class _Turns:
    slots: asyncio.Semaphore
    waiting: int = 0


# One set of turns per event loop (asyncio primitives belong to the loop they were first used on).
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _turn() -> AsyncIterator[None]:
    turns = _TURNS.setdefault(asyncio.get_running_loop(), _Turns(asyncio.Semaphore(DECODERS)))
    if turns.waiting >= DECODERS + WAITING:
        raise BadImage(BUSY)
    turns.waiting += 1
    try:
        async with turns.slots:
            yield
    finally:
        turns.waiting -= 1


async def _run_child(data: bytes, limits: IntakeLimits, max_side: int | None) -> tuple[bytes, int | None]:
    """The child's answer and exit status; BadImage when it outran the wall-clock budget."""
    args = (limits.max_bytes, limits.max_pixels, max_side or 0, limits.decode_s, limits.decode_memory)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "generators.decode",
        *map(str, args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=_ROOT,
    )
    try:
        async with asyncio.timeout(limits.decode_s):
            answer, _ = await process.communicate(data)
    except TimeoutError:
        raise BadImage(TOO_SLOW) from None
    finally:
        if process.returncode is None:  # past the budget, or the member's request was cancelled
            process.kill()
            await process.wait()
    return answer, process.returncode


def _picture_from(answer: bytes, code: int | None) -> Image.Image:
    """The image the child sent (``OK w h`` then RGB bytes), or its refusal (``NO reason``)."""
    header = answer[: answer.find(b"\n", 0, 300) + 1]
    if header.startswith(b"NO "):
        raise BadImage(header[3:].decode(errors="replace").strip())
    if header.startswith(b"OK ") and code == 0:
        width, height = (int(n) for n in header.split()[1:3])
        body = memoryview(answer)[len(header) :]
        if len(body) == width * height * 3:
            return Image.frombytes("RGB", (width, height), body)
    if code == -signal.SIGXCPU:
        raise BadImage(TOO_SLOW)
    raise BadImage(TOO_MUCH_MEMORY if code == -signal.SIGKILL else DAMAGED)


def _limit_self(cpu_s: float, memory: int) -> None:
    """Cap this process's CPU seconds (SIGXCPU ends it) and address space (allocations past it fail),
    and lower its priority below the bot's."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICENESS)
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # POSIX only: elsewhere the wall-clock budget still holds

        cpu = max(1, math.ceil(cpu_s))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def main(argv: list[str]) -> int:
    """The child: limits itself, reads the picture from stdin, writes ``OK w h`` + RGB or ``NO reason``."""
    max_bytes, max_pixels, max_side, decode_s, memory = argv
    _limit_self(float(decode_s), int(memory))
    limits = IntakeLimits(max_bytes=int(max_bytes), max_pixels=int(max_pixels), decode_s=float(decode_s))
    data = sys.stdin.buffer.read(limits.max_bytes + 1)
    try:
        picture = decode(data, limits=limits, max_side=int(max_side) or None)
    except BadImage as refusal:
        sys.stdout.buffer.write(b"NO " + str(refusal).encode() + b"\n")
        return 0
    sys.stdout.buffer.write(f"OK {picture.width} {picture.height}\n".encode() + picture.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
