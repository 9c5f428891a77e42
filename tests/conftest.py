"""Shared fixtures: the real tiny pipelines (loaded once), and helpers to follow a worker's events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from generators.config import LimitsConfig, ModelConfig, RenderConfig, WorkerConfig
from generators.pipelines import DiffusersBackend, load_backend
from tests.helpers import TEST_SIZE


@pytest.fixture(scope="session")
def tiny_backend() -> DiffusersBackend:
    """The ``tiny`` image preset at 64 px, 2 steps: the real diffusers code path in milliseconds."""
    return load_backend(ModelConfig(name="tiny", size=TEST_SIZE, steps=2, tiny_vae="tiny"))


@pytest.fixture(scope="session")
def tiny_video_backend() -> DiffusersBackend:
    """The ``tiny-video`` preset: 8 frames of 64 px, 2 steps."""
    return load_backend(ModelConfig(name="tiny-video", size=TEST_SIZE, steps=2, frames=8))


@pytest.fixture
def worker_config(tmp_path: Path) -> WorkerConfig:
    return WorkerConfig(results_dir=tmp_path / "results", per_user_queue=20, global_queue=100)


@pytest.fixture
def limits() -> LimitsConfig:
    return LimitsConfig()


@pytest.fixture
def render_config() -> RenderConfig:
    return RenderConfig()


@pytest.fixture(autouse=True)
def fail_on_error_logs(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> Iterator[None]:
    """A test fails when anything logs at ERROR, unless it is marked ``expect_errors``."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors and request.node.get_closest_marker("expect_errors") is None:
        pytest.fail("ERROR logged: " + "; ".join(r.getMessage() for r in errors))
