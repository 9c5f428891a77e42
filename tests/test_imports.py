"""The bot side imports no GPU stack: a bot on Redis neither loads nor needs to ship torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Everything ``memebot run`` imports with ``queue.backend: redis``: adapters, job service, Redis side.
BOT_SIDE = [
    "bot.discord",
    "bot.reddit",
    "bot.web",
    "bot.jobs",
    "generators.streams.submit",
    "bot.__main__",
]
HEAVY = ["torch", "diffusers", "transformers", "onnxruntime", "cv2"]


def imported_after(modules: list[str]) -> list[str]:
    """Which of ``HEAVY`` a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_bot_side_imports_no_torch() -> None:
    assert imported_after(BOT_SIDE) == []


def test_the_check_catches_a_heavy_import() -> None:
    assert "torch" in imported_after(["generators.worker"])
