"""Progress in words: the sentences every front end uses, and the CLI's one-line bar.

Discord renders the same words with its own decoration (emoji, live relative timestamps, escaping):
see ``bot/discord/_text.py``; only the rendering differs between front ends, never the wording.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from generators.requests import Cancelled, Failed, Finished, Phase, Preview, Progress, Queued, Started, Step

BAR_WIDTH = 24
PHASES = {"loading": "loading", "decoding": "decoding the images", "encoding": "encoding the"}


def counted(n: int, noun: str) -> str:
    """``1 step``, ``4 steps``: a number with its noun in the right number."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def place_words(position: int) -> str:
    """Where a waiting job is in line."""
    return "next in line" if position == 0 else f"{position} ahead"


def started_words(batch_size: int) -> str:
    """What a started job is doing."""
    return "generating" + (f" ({batch_size} images in this batch)" if batch_size > 1 else "")


def phase_words(phase: Phase) -> str:
    """What a job does between or after its steps: loading its model, decoding, encoding."""
    if phase.name == "encoding":
        return f"encoding the {phase.detail or 'result'}"
    words = PHASES.get(phase.name, phase.name)
    return f"{words} {phase.detail}".strip()


def bar(i: int, n: int, *, full: str = "#", empty: str = ".", width: int = BAR_WIDTH) -> str:
    """A progress bar for step ``i`` of ``n``."""
    filled = round(width * i / n)
    return f"{full * filled}{empty * (width - filled)}"


def describe(event: Progress) -> str:
    """A short human sentence for one event (the terminal's wording)."""
    match event:
        case Queued(position=position, eta_s=eta):
            ahead = place_words(position)
            return (
                ("" if position == 0 else "queued: ") + ahead + (f", starting in ~{eta:.0f}s" if eta else "")
            )
        case Started(batch_size=size):
            return started_words(size)
        case Step(i=i, n=n, part=part, parts=parts):
            return f"[{bar(i, n)}] step {i}/{n}" + (f" (part {part} of {parts})" if parts > 1 else "")
        case Phase():
            return phase_words(event) + "…"
        case Preview(step=step):
            return f"preview at step {step}"
        case Finished():
            return "done"
        case Failed(reason=reason):
            return f"failed: {reason}"
        case Cancelled():
            return "cancelled"
    return type(event).__name__


class ProgressLine:
    """Rewrites one terminal line per event (or prints a line each when not a terminal).

    A phase (loading, decoding, encoding) that ends is printed with how long it took, so a real-size
    run shows where its time went.
    """

    def __init__(
        self, stream: TextIO, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.clock = clock
        self._tty = stream.isatty()
        self._width = 0
        self._phase: tuple[str, float] | None = None  # what runs now, since when

    def show(self, event: Progress) -> None:
        """Show ``event``; the line is closed after a terminal event."""
        if not self.enabled or isinstance(event, Preview):
            return
        self._end_phase()
        if isinstance(event, Phase):
            self._phase = (phase_words(event), self.clock())
        self._write(describe(event), final=isinstance(event, Finished | Failed | Cancelled))

    def end(self) -> None:
        """Close a line left open (a terminal's bar mid-job), so what is printed next starts afresh."""
        self._end_phase()
        if self._tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _end_phase(self) -> None:
        if self._phase is not None:
            words, since = self._phase
            self._phase = None
            self._write(f"{words}: {self.clock() - since:.1f} s", final=True)

    def _write(self, text: str, *, final: bool) -> None:
        if self._tty:
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
