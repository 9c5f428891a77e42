"""On any machine: the ``gpu`` marker is registered, and without CUDA the GPU tests skip, saying why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("gpu:") for line in pytestconfig.getini("markers"))


def test_without_cuda_the_gpu_tests_are_skipped_not_failed() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU tests run here")
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu"]
    run = subprocess.run(
        [*command, "tests/gpu/test_cuda_paths.py"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped" in run.stdout and "failed" not in run.stdout and "passed" not in run.stdout
    assert "no CUDA device: this test needs a GPU" in run.stdout
