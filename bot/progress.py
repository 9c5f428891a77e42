"""Progress events as text: a one-line bar for the terminal, and the words adapters reuse."""

from __future__ import annotations

from typing import TextIO

from generators.requests import Cancelled, Failed, Finished, Preview, Progress, Queued, Started, Step

BAR_WIDTH = 24


def describe(event: Progress) -> str:
    """A short human sentence for one event."""
    match event:
        case Queued(position=0, eta_s=eta):
            return "next in line" + (f", starting in ~{eta:.0f}s" if eta else "")
        case Queued(position=position, eta_s=eta):
            return f"queued: {position} ahead" + (f", starting in ~{eta:.0f}s" if eta else "")
        case Started(batch_size=size):
            return "generating" + (f" ({size} images in this batch)" if size > 1 else "")
        case Step(i=i, n=n):
            filled = round(BAR_WIDTH * i / n)
            return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] step {i}/{n}"
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
    """Rewrites one terminal line per event (or prints a line each when not a terminal)."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self._tty = stream.isatty()
        self._width = 0

    def show(self, event: Progress) -> None:
        """Show ``event``; the line is closed after a terminal event."""
        if not self.enabled or isinstance(event, Preview):
            return
        text = describe(event)
        final = isinstance(event, Finished | Failed | Cancelled)
        if self._tty:
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
