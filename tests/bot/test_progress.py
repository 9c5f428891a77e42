"""The CLI's progress line: one sentence per event, and how long each phase took."""

from __future__ import annotations

import io

from bot.progress import ProgressLine, counted, describe, phase_words
from generators.requests import Cancelled, Phase, Queued, Started, Step


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_phases_print_how_long_they_took() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, clock=clock)
    line.show(Phase("loading", "model sd-turbo (4.96 GB)"))
    clock.now += 5.5
    line.show(Step(1, 1))
    line.show(Phase("decoding"))
    clock.now += 24.25
    line.show(Phase("encoding", "grid"))
    clock.now += 0.5
    line.show(Cancelled())
    assert out.getvalue().splitlines() == [
        "loading model sd-turbo (4.96 GB)…",
        "loading model sd-turbo (4.96 GB): 5.5 s",
        f"[{'#' * 24}] step 1/1",
        "decoding the images…",
        "decoding the images: 24.2 s",
        "encoding the grid…",
        "encoding the grid: 0.5 s",
        "cancelled",
    ]


def test_the_words_front_ends_share() -> None:
    assert describe(Queued(0, 3.0)) == "next in line, starting in ~3s"
    assert describe(Queued(2, None)) == "queued: 2 ahead"
    assert describe(Started(4)) == "generating (4 images in this batch)"
    assert phase_words(Phase("encoding", "clip")) == "encoding the clip"


def test_counts_agree_with_their_number() -> None:
    assert [counted(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]


def test_ending_a_terminal_bar_mid_job_closes_its_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    line = ProgressLine(stream)
    line.show(Step(3, 40))
    line.end()
    stream.write("cancelled")
    assert stream.getvalue() == "\r[##......................] step 3/40\ncancelled"
