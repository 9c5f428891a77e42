"""The one-command GPU check refuses a machine without CUDA at once, saying so, and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def run_check(python: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHON": python}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_without_cuda_the_check_fails_fast_and_clearly() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check would run")
    log = ROOT / "benchmarks" / "results" / "gpu_check.txt"
    before = log.stat().st_mtime_ns if log.exists() else None
    run = run_check(sys.executable)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("no CUDA device: this check needs a GPU")
    assert run.stdout == ""  # no step started
    assert (log.stat().st_mtime_ns if log.exists() else None) == before


def test_without_torch_the_check_says_what_to_install(tmp_path: Path) -> None:
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')  # no site-packages: no torch
    bare.chmod(0o755)
    run = run_check(str(bare))
    assert run.returncode == 2
    assert "torch is not installed" in run.stderr
