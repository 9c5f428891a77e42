"""The command line end to end: imagine (grid and clip), check-config, and one-line errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main
from bot.store import JobStatus, Store
from generators.grammar import FLAGS
from generators.render import read_metadata
from generators.requests import GenerationRequest, Job
from tests.fakes.loopback import free_port


def write_config(tmp_path: Path, model: str = "tiny", extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model:\n  name: {model}\n  size: 64\n  steps: 2\n  frames: 8\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\n"
        f"worker:\n  results_dir: {tmp_path / 'results'}\n{extra}"
    )
    return config


def test_imagine_writes_a_grid_with_its_command_inside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grid.png"
    code = main(
        [
            "--config",
            str(write_config(tmp_path)),
            "imagine",
            "a hamster godzilla --n 9 --seed 7",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    with Image.open(out) as grid:
        assert grid.size == (3 * 64, 3 * 64)
    meta = read_metadata(out.read_bytes())
    assert meta["seed"] == "7"
    assert meta["command"].startswith("a hamster godzilla")
    stdout, stderr = capsys.readouterr()
    assert str(out) in stdout and "seed 7" in stdout
    assert stderr.splitlines()[-1] == "done"
    assert "Loading" not in stderr and "shards" not in stderr and "torchvision" not in stderr


def test_imagine_a_clip(tmp_path: Path) -> None:
    out = tmp_path / "clip.gif"
    code = main(
        [
            "imagine",
            "a cat dancing --video --seed 1",
            "-o",
            str(out),
            "-q",
            "--config",
            str(write_config(tmp_path, "tiny-video")),
        ]
    )
    assert code == 0
    with Image.open(out) as clip:
        assert clip.n_frames == 8


def write_models(tmp_path: Path, extra: str = "") -> Path:
    """A config serving tiny and tiny-video at test sizes, like the shipped one."""
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: tiny-video\n  entries:\n"
        "    tiny: {size: 64, steps: 2}\n    tiny-video: {size: 64, steps: 2, frames: 8}\n"
        f"{extra}"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n"
    )
    return config


def test_one_config_makes_grids_and_clips_and_model_picks_one(tmp_path: Path) -> None:
    config = str(write_models(tmp_path))
    for prompt, name in (
        ("a cat --n 4", "grid.png"),
        ("a cat --video", "clip.gif"),
        ("a cat --model tiny-video", "named.gif"),
    ):
        assert main(["imagine", prompt, "-o", str(tmp_path / name), "-q", "--config", config]) == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and grid.size == (128, 128)
        assert "--model tiny" in grid.info["command"]  # the reproduce line names the model
    for clip_name in ("clip.gif", "named.gif"):
        with Image.open(tmp_path / clip_name) as clip:
            assert clip.format == "GIF" and clip.n_frames == 8


def test_model_mistakes_are_one_line_with_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_models(tmp_path))
    assert main(["imagine", "a cat --model tiyn", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean tiny?" in err and "tiny, tiny-video" in err
    assert main(["imagine", "a cat --model tiny --video", "--config", config]) == 2
    assert "tiny is an image model" in capsys.readouterr().err


def test_check_config_lists_the_models_and_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(write_models(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "model tiny: image, " in out and ", 64 px, 2 steps (default for image)" in out
    assert "model tiny-video: video" in out and "(default for video)" in out
    assert out.splitlines()[-1].startswith("OK: `memebot run` would start")
    broken = write_models(tmp_path, extra="")
    broken.write_text(
        broken.read_text().replace("    tiny-video:", f"    mine: {{path: {tmp_path}/none}}\n    tiny-video:")
    )
    assert main(["check-config", "--config", str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"model mine: PROBLEM: folder {tmp_path}/none does not exist" in out
    assert "OK" not in out  # never OK beside a PROBLEM


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("a cat --n 99", "--n"), ("a cat --sed 4", "did you mean --seed"), ("--seed 4", "prompt is empty")],
)
def test_a_bad_prompt_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prompt: str, message: str
) -> None:
    code = main(["--config", str(write_config(tmp_path)), "imagine", prompt, "-o", str(tmp_path / "x.png")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_check_config_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker:\n  max_batch: many\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "worker.max_batch" in capsys.readouterr().err
    assert main(["check-config", "--config", str(write_config(tmp_path))]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.expect_errors
def test_a_model_that_cannot_load_exits_1_with_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "sd-turbo", extra="")
    config.write_text(config.read_text().replace("  size: 64\n", "  size: 64\n  offline: true\n"))
    assert main(["--config", str(config), "imagine", "a cat"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("model error:") and "hf download stabilityai/sd-turbo" in err


def test_the_console_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "--config",
            str(write_config(tmp_path)),
            "imagine",
            "tiny --n 4",
            "-o",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as grid:
        assert grid.size == (128, 128)


def test_run_finishes_jobs_left_by_a_previous_run_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "memebot.db"

    async def leave_jobs() -> tuple[str, str]:
        """A job the previous bot was running, and one an interrupted `memebot imagine` left."""
        async with Store.open(db) as store:
            ids = []
            for job_id, platform in (("left-behind-job1", "reddit"), ("imagine-job-0001", "cli")):
                request = GenerationRequest("a cat", seed=1, n=1)
                await store.add(Job(job_id, "someone", request), platform=platform, reply_to={})
                await store.transition(job_id, JobStatus.RUNNING)  # the previous process died mid-job
                ids.append(job_id)
            return ids[0], ids[1]

    job_id, cli_job = asyncio.run(leave_jobs())
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    async def status(of: str) -> JobStatus | None:
        async with Store.open(db) as store:
            record = await store.get(of)
            return None if record is None else record.status

    try:
        deadline = time.monotonic() + 60
        while asyncio.run(status(job_id)) is not JobStatus.DONE and time.monotonic() < deadline:
            time.sleep(0.2)
        assert asyncio.run(status(job_id)) is JobStatus.DONE
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "requeued 1 unfinished jobs" in output
    # The command line's job is not the bot's: nobody is left to receive it.
    assert asyncio.run(status(cli_job)) is JobStatus.FAILED


def test_an_enabled_adapter_without_its_token_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMEBOT_DISCORD_TOKEN", raising=False)
    config = write_config(tmp_path, extra="discord:\n  enabled: true\n")
    assert main(["--config", str(config), "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and "MEMEBOT_DISCORD_TOKEN" in err and "Traceback" not in err


def test_worker_needs_the_redis_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write_config(tmp_path)), "worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and "queue.backend: redis" in err


@pytest.mark.parametrize("command", ["worker", "run", "imagine"])
def test_an_unreachable_redis_is_one_line_and_exit_1(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = f"queue:\n  backend: redis\n  redis_url: redis://:hunter2secret@127.0.0.1:{port}/0\n"
    args = ["--config", str(write_config(tmp_path, extra=redis)), command]
    assert main([*args, "a cat"] if command == "imagine" else args) == 1
    err = capsys.readouterr().err
    assert err.startswith("queue error: cannot use Redis") and len(err.splitlines()) == 1
    assert "hunter2secret" not in err


@pytest.mark.parametrize("command", ["check-config", "run", "worker"])
def test_a_redis_password_with_a_hash_is_one_config_line_without_it(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis = "queue:\n  backend: redis\n  redis_url: 'redis://:hunter#2secret@127.0.0.1:6379/0'\n"
    assert main(["--config", str(write_config(tmp_path, extra=redis)), command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and "%23" in err and len(err.splitlines()) == 1
    assert "hunter" not in err and "2secret" not in err and "Traceback" not in err


def _picture(path: Path, colour: str) -> Path:
    Image.new("RGB", (90, 60), colour).save(path)
    return path


def test_imagine_remixes_a_picture_and_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    pictures = {colour: _picture(tmp_path / f"{colour}.png", colour) for colour in ("red", "navy")}
    outs = {}
    for colour, picture in pictures.items():
        outs[colour] = tmp_path / f"remix-{colour}.png"
        text = "a hamster godzilla --n 1 --seed 7 --strength 0.5"
        assert (
            main(["--config", config, "imagine", text, "--image", str(picture), "-o", str(outs[colour])]) == 0
        )
    meta = read_metadata(outs["red"].read_bytes())
    digest = hashlib.sha256(pictures["red"].read_bytes()).hexdigest()
    assert meta["source"] == f"sha256:{digest}" and meta["strength"] == "0.5" and meta["seed"] == "7"
    assert "--strength 0.5" in meta["command"]
    red, navy = (Image.open(outs[c]).convert("RGB").tobytes() for c in ("red", "navy"))
    assert red != navy  # the same seed on another picture is another result
    stdout, _ = capsys.readouterr()
    assert f"remix of image sha256:{digest[:12]}… at strength 0.5" in stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text, honest", "not an image this bot can read"),
        (None, "cannot read"),
    ],
)
def test_imagine_refuses_a_bad_picture_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    picture = tmp_path / "in.png"
    if content is not None:
        picture.write_bytes(content)
    code = main(["--config", str(write_config(tmp_path)), "imagine", "a cat", "--image", str(picture)])
    assert code == 2
    _, stderr = capsys.readouterr()
    assert message in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_imagine_refuses_strength_without_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--config", str(write_config(tmp_path)), "imagine", "a cat --strength 0.5"])
    assert code == 2
    assert "--strength needs a picture" in capsys.readouterr().err


def long_job_config(tmp_path: Path) -> Path:
    """A tiny model allowed a thousand steps: a job that is surely still running when a signal comes."""
    config = tmp_path / "long.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: null\n  entries:\n"
        "    tiny: {size: 64, steps: 1000, max_steps: 1000, max_work: 100000}\n"
        "limits:\n  max_steps: 1000\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n"
    )
    return config


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_imagine_s_job_at_its_next_step(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    out = tmp_path / "never.png"
    config = str(long_job_config(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", config, "imagine", "a cat --n 1", "-o", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        lines = []
        while "step 1/1000" not in (line := proc.stderr.readline()):
            assert line, "".join(lines)
            lines.append(line)
        proc.send_signal(sig)
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = rest.strip().splitlines()[-1]
    assert proc.returncode == code, rest
    assert re.fullmatch(rf"cancelled \({sig.name}\): job \S+ stopped; nothing written", last), rest
    assert "step 1000/1000" not in rest and stdout == "" and not out.exists()
    job_id = last.split()[3]

    async def status() -> JobStatus | None:
        async with Store.open(tmp_path / "memebot.db") as store:
            record = await store.get(job_id)
            return None if record is None else record.status

    assert asyncio.run(status()) is JobStatus.CANCELLED


def test_output_names_the_format_it_gets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    jpeg = tmp_path / "x.jpg"
    assert main(["--config", config, "imagine", "a cat --n 1 --seed 3", "-o", str(jpeg), "-q"]) == 0
    with Image.open(jpeg) as picture:
        assert picture.format == "JPEG" and picture.size == (64, 64)
    assert capsys.readouterr().out.startswith(f"{jpeg}  seed 3")
    # A clip cannot be a PNG: what was written is said, under the name it has.
    clip_config = str(write_config(tmp_path, "tiny-video"))
    asked = tmp_path / "clip.png"
    assert main(["--config", clip_config, "imagine", "a cat --video", "-o", str(asked), "-q"]) == 0
    out, err = capsys.readouterr()
    assert not asked.exists() and (tmp_path / "clip.gif").exists()
    assert f"note: wrote {tmp_path / 'clip.gif'} (image/gif), not clip.png" in err
    assert out.startswith(str(tmp_path / "clip.gif"))


def test_imagine_help_lists_the_prompt_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["imagine", "--help"])
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert f"--{flag.name}" in out and flag.help in out


def test_a_typo_in_worker_models_gets_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_models(tmp_path, extra="queue:\n  backend: redis\n")
    assert main(["--config", str(config), "worker", "--models", "tiyn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: --models:") and "did you mean tiny?" in err
    assert len(err.splitlines()) == 1


def test_run_with_a_broken_model_folder_serves_the_rest_and_says_why_in_healthz(tmp_path: Path) -> None:
    folder = tmp_path / "turbo"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")  # a download that never finished
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: null\n  entries:\n    tiny: {size: 64, steps: 1}\n"
        f"    turbo: {{name: sd-turbo, path: {folder}, offline: true}}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\n"
        f"worker:\n  results_dir: {tmp_path / 'results'}\n  load_models: at_start\n"
        f"web:\n  enabled: true\n  port: {port}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        lines = []
        while "WARNING generators.health: model turbo" not in (line := proc.stdout.readline()):
            assert line, "".join(lines)
            lines.append(line)
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30)
        body = json.loads(answer.value.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert answer.value.code == 503 and "_class_name" in body["problems"]["model turbo"]
    assert proc.returncode == 0


def test_run_warns_when_reddit_links_would_point_at_this_machine(tmp_path: Path) -> None:
    port, nowhere = free_port(), f"http://127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path,
        extra=f"reddit:\n  enabled: true\n  oauth_url: {nowhere}\n  reddit_url: {nowhere}\n"
        f"web:\n  enabled: true\n  port: {port}\n",
    )
    secrets = ("CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD")
    env = {**os.environ, **{f"MEMEBOT_REDDIT_{name}": f"value-of-{name.lower()}" for name in secrets}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        lines = []
        while "ready: models" not in (line := proc.stdout.readline()):
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    warnings = [line for line in lines if "only works on this machine" in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0]
    assert f"link to http://127.0.0.1:{port}," in warnings[0]  # the port it serves on, not 8080
