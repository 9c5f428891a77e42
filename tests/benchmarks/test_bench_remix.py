"""The remix benchmark runs in one command and measures every case against text-to-image."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_remix import main


def test_the_quick_run_compares_remixes_with_text_to_image(tmp_path: Path) -> None:
    out = tmp_path / "remix.json"
    result = main(["--size", "64", "--batch", "2", "--runs", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    rows = {row["case"]: row for row in result["rows"]}
    assert set(rows) == {"text-to-image", "remix, strength 1", "remix, strength 0.6"}
    assert rows["text-to-image"]["ratio"] == 1.0
    assert rows["remix, strength 1"]["denoising_steps"] == 4  # the same steps: the cost is the encoding
    assert rows["remix, strength 0.6"]["denoising_steps"] == 2
    assert all(row["images_per_s"] > 0 for row in rows.values())
    clips = {row["case"]: row for row in result["clips"]["rows"]}
    assert set(clips) == {"text-to-clip", "image-to-clip"}  # on the same model and frames
    assert result["clips"]["frames"] == 9 and all(row["images_per_s"] > 0 for row in clips.values())
