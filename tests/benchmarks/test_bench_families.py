"""The families benchmark measures memebot's path against the bare call for an image and a clip family."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_families import main


def test_a_run_compares_memebot_with_the_bare_call_per_family(tmp_path: Path) -> None:
    out = tmp_path / "families.json"
    rows = main(["--families", "tiny-flux,tiny-wan", "--runs", "1", "--steps", "2", "--json", str(out)])
    assert json.loads(out.read_text())["rows"] == rows
    by_model = {row["model"]: row for row in rows}
    assert by_model["tiny-flux"]["family"] == "flux" and by_model["tiny-flux"]["units_per_job"] == 4
    assert by_model["tiny-wan"]["kind"] == "video" and by_model["tiny-wan"]["units_per_job"] == 9
    for row in rows:
        assert row["memebot_per_s"] > 0 and row["bare_per_s"] > 0 and row["first_result_s"] > 0
