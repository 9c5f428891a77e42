"""Library warnings a user can't act on are dropped by name; every other warning still shows."""

from __future__ import annotations

import logging

import pytest

from generators.config import ModelConfig
from generators.pipelines import load_backend
from generators.pipelines.quiet import UNACTIONABLE
from generators.requests import BatchSpec, Slot
from tests.helpers import TEST_SIZE


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("diffusers.pipelines.pipeline_utils", "The TextToVideoSDPipeline has been deprecated and will..."),
        (
            "diffusers.models.modeling_utils",
            "There are modules in AutoencoderTiny that should be kept in float32: [].",
        ),
        (
            "diffusers.models.modeling_utils",
            "There are modules in AutoencoderKL that should be kept in float32: []",
        ),
    ],
)
def test_only_the_named_messages_are_dropped(name: str, message: str) -> None:
    logger = logging.getLogger(name)
    kept = Kept()
    logger.addHandler(kept)
    actionable = "There are modules in UNet2DConditionModel that should be kept in float32: ['norm']"
    try:
        logger.warning(message)
        logger.warning(actionable)
        logger.warning("something else this library warns about")
    finally:
        logger.removeHandler(kept)
    assert kept.messages == [actionable, "something else this library warns about"]
    assert name in {logger_name for logger_name, _ in UNACTIONABLE}


def test_a_clip_prints_no_deprecation_notice(capfd: pytest.CaptureFixture[str]) -> None:
    backend = load_backend(ModelConfig(name="tiny-video", size=TEST_SIZE, steps=1, frames=2))
    backend.generate(BatchSpec(TEST_SIZE, TEST_SIZE, 1), [Slot("a cat", "", 1)], lambda i, n, latents: None)
    out, err = capfd.readouterr()
    assert "deprecated" not in out + err
