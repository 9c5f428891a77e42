"""Result files that travel through Redis: small ones are read and written on the loop, quickly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

__all__ = ["INLINE_IO_BYTES", "file_io"]

T = TypeVar("T")

#: Files up to this size are read or written on the event loop: that takes microseconds, while a
#: hand-off to a thread costs a millisecond on a busy machine, on every result.
INLINE_IO_BYTES = 1 << 20


async def file_io(size: int, call: Callable[[], T]) -> T:
    """Run the disk access ``call`` on the loop for up to INLINE_IO_BYTES, else on a thread."""
    if size <= INLINE_IO_BYTES:
        return call()
    return await asyncio.to_thread(call)
