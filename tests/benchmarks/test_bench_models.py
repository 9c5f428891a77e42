"""The models benchmark's load figures alone, as the GPU check runs them (here on the CPU only)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from benchmarks.bench_models import main


def test_loads_only_measures_cold_loads_and_skips_the_schedules(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    report = asyncio.run(main(["--quick", "--loads-only", "--repeats", "1", "--json", str(out)]))
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["schedules"] == []
    rows = report["loads"]["cpu"]
    assert [row["model"] for row in rows] == ["tiny", "tiny-video"]
    assert all(row["cold_load_s"] > 0 and row["warm_call_s"] > 0 for row in rows)
    assert report["loads"]["gpu"] is None and report["loads"]["evictions"] is None  # no CUDA here
