"""Library warnings a user can't act on are dropped by name; every other warning still shows."""

from __future__ import annotations

import logging

import pytest

from generators.config import ModelConfig
from generators.pipelines import load_backend
from generators.pipelines.backend import BatchSpec, Slot
from generators.pipelines.quiet import UNACTIONABLE
from tests.helpers import TEST_SIZE


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(("name", "prefix"), UNACTIONABLE)
def test_only_the_named_message_is_dropped(name: str, prefix: str) -> None:
    logger = logging.getLogger(name)
    kept = Kept()
    logger.addHandler(kept)
    try:
        logger.warning("%s and the rest of that message", prefix)
        logger.warning("something else this library warns about")
    finally:
        logger.removeHandler(kept)
    assert kept.messages == ["something else this library warns about"]


def test_a_clip_prints_no_deprecation_notice(capfd: pytest.CaptureFixture[str]) -> None:
    backend = load_backend(ModelConfig(name="tiny-video", size=TEST_SIZE, steps=1, frames=2))
    backend.generate(BatchSpec(TEST_SIZE, TEST_SIZE, 1), [Slot("a cat", "", 1)], lambda i, n, latents: None)
    out, err = capfd.readouterr()
    assert "deprecated" not in out + err
