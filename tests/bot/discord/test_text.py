"""What /info says about the workers."""

from __future__ import annotations

from bot.discord._text import workers_line
from generators.streams.heartbeat import WorkerStatus


def test_workers_line_names_each_worker_with_its_load_and_speed() -> None:
    workers = [
        WorkerStatus("gpu0", "sd-turbo", "cuda:0", busy=2, images_per_s=3.456),
        WorkerStatus("gpu1", "sd-turbo", "cuda:0"),
    ]
    assert workers_line(workers) == "Workers: 2: gpu0 (2 running, 3.46 images/s), gpu1 (0 running)"


def test_no_worker_online_says_jobs_wait() -> None:
    assert "none online" in workers_line([])


def test_a_long_list_is_cut_with_a_count() -> None:
    line = workers_line([WorkerStatus(f"w{i}", "tiny", "cpu") for i in range(13)])
    assert line.startswith("Workers: 13: w0 (0 running)") and line.endswith("w9 (0 running) and 3 more")
