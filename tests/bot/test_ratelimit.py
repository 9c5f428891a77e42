"""The sliding window both adapters count requests with."""

from __future__ import annotations

from bot.ratelimit import SlidingWindow


def test_a_key_waits_until_its_oldest_hit_leaves_the_window() -> None:
    now = [100.0]
    window = SlidingWindow(2, 60.0, clock=lambda: now[0])
    window.hit("ann")
    now[0] = 110.0
    window.hit("ann")
    assert window.retry_after("ann") == 50.0
    assert window.retry_after("bob") == 0.0  # keys are counted apart
    now[0] = 160.0
    assert window.retry_after("ann") == 0.0
