"""GPU-only tests: marked ``gpu``, skipped where no CUDA device is present (``pytest -m gpu tests/gpu``)."""

from __future__ import annotations

import pytest
import torch

GPU_MARKER = "gpu: needs a CUDA device, skipped without one (benchmarks/gpu_check.sh runs them)"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker here too, so these tests run under any pytest configuration."""
    config.addinivalue_line("markers", GPU_MARKER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``gpu`` tests on a machine without CUDA, saying why."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device: this test needs a GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
