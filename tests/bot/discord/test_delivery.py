"""Delivery on shutdown: events that arrive after close() start nothing."""

from __future__ import annotations

from typing import Any, cast

from bot.discord._delivery import Delivery
from bot.settings import DiscordConfig
from generators.requests import Cancelled, Started


async def test_events_after_close_are_left_for_the_next_start() -> None:
    delivery = Delivery(cast(Any, None), cast(Any, None), DiscordConfig())
    await delivery.close()
    delivery.on_event("job1", Started(1))  # the service still reports while it drains
    delivery.on_event("job1", Cancelled())
    assert delivery._tracked == {}  # no task that would read the store after it closed
