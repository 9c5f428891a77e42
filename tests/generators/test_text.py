"""Shortening with an ellipsis, shared by every place with a length limit."""

from __future__ import annotations

from generators.text import clip


def test_clip_keeps_short_text_and_ends_cut_text_with_an_ellipsis() -> None:
    assert clip("hamster", 7) == "hamster"
    assert clip("hamsters", 7) == "hamste…"
    assert len(clip("x" * 500, 300)) == 300
    assert clip("hamster", 0) == ""
