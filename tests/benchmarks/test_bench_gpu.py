"""The GPU benchmark's quick CPU path: one command builds the SD-Turbo-shaped pipeline and measures it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_gpu import main


def test_the_quick_run_measures_bare_calls_switches_and_memebots_path(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    result = main(["--quick", "--batches", "1", "--json", str(out)])
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"], default=str))
    cases = {row["case"] for row in result["rows"]}
    assert {"bare", "memebot", "bare + channels-last", "bare + fused QKV", "bare + tiny VAE decode"} <= cases
    assert all(row["images_per_s"] > 0 for row in result["rows"])
    bare = [row["ratio"] for row in result["rows"] if row["case"].startswith("bare")]
    assert max(bare) == 1.0  # every ratio is against the best bare call of its dtype
    assert result["first_image_s"]["float32"] > 0
    assert result["measured_on_gpu"] is False and result["goal_met"] is False  # the goal needs a GPU
    assert result["complete"] is True
    memebot = [row for row in result["rows"] if row["case"].startswith("memebot")]
    assert memebot and all(row["images_per_call"] == [1] for row in memebot)  # calls of the row's batch
    assert not any(row["recompile_limit_hit"] for row in result["rows"])
