"""Fixtures of the Reddit adapter's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.reddit import FakeReddit


@pytest.fixture
async def fake() -> AsyncIterator[FakeReddit]:
    async with FakeReddit("memebot") as server:
        yield server
