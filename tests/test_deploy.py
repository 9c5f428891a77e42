"""The container files: the Dockerfile lints clean, and compose and its config fit together."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def stages() -> dict[str, str]:
    """Each build target's instructions."""
    parts = re.split(r"^FROM \S+ AS (\w+)$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_image_runs_as_a_user_with_its_data_on_a_volume() -> None:
    targets = stages()
    assert set(targets) == {"bot", "cpu", "cuda"}
    for name in ("bot", "cuda"):
        text = targets[name]
        assert "USER memebot" in text, name
        assert 'ENTRYPOINT ["memebot"]' in text, name
        assert "/app/data" in text, name
    # cpu is the bot image plus the models: it inherits the user and the entry point.
    assert re.search(r"^FROM bot AS cpu$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert targets["cpu"].rstrip().splitlines()[-2:] == ["USER memebot", 'VOLUME ["/app/data", "/models"]']
    for name in ("cpu", "cuda"):  # the images that hold models keep the weights cache on a volume
        assert 'VOLUME ["/app/data", "/models"]' in targets[name], name
        assert "HF_HOME=/models" in targets[name], name
    assert "nvidia/cuda" in (ROOT / "Dockerfile").read_text().split("AS cuda")[0].splitlines()[-1]


def test_the_bot_image_installs_no_model_stack() -> None:
    bot = "\n".join(line for line in stages()["bot"].splitlines() if not line.startswith("#"))
    installs = [line for line in bot.splitlines() if "pip install" in line]
    locked = "RUN pip install --require-hashes -r requirements/bot.lock"
    assert installs == [f"{locked} && pip install --no-deps --no-build-isolation ."]
    assert "torch" not in bot and "models" not in bot.replace("/models", "")
    # ... and the base dependencies it installs hold none of it: that is the models extra.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = {"torch", "diffusers", "transformers", "accelerate", "safetensors"}
    assert not {re.split(r"[<>=\[; ]", dep)[0] for dep in project["dependencies"]} & heavy
    # The models extra holds the stack (and the small helpers some pipelines need besides).
    assert heavy <= {re.split(r"[<>=\[; ]", dep)[0] for dep in project["optional-dependencies"]["models"]}
    own = [d for d in project["optional-dependencies"]["test"] if d.startswith("memebot[")]
    assert any("models" in re.split(r"[\[\],]", d) for d in own)  # the tests run the models
    assert "-r requirements/cpu.lock" in stages()["cpu"]  # the model stack at the locked versions
    assert "'.[models]'" in stages()["cuda"]


def test_compose_runs_a_bot_redis_and_a_gpu_worker_on_one_config() -> None:
    services = compose()["services"]
    assert set(services) == {"bot", "redis", "worker"}
    bot, worker = services["bot"], services["worker"]
    assert bot["build"]["target"] == "bot" and bot["command"] == ["run"]
    assert worker["build"]["target"] == "cuda" and worker["command"] == ["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and "deploy" not in bot
    # One way to add a GPU, the README's: a copy of the service with the next device id. --scale would
    # give every copy the same GPU.
    assert device["device_ids"] == ["0"] and "count" not in device
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    assert "--scale" not in header.replace("--scale would", "") and 'device_ids: ["1"]' in header
    for service in (bot, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert mounted["/app/config.yaml"] == "./deploy/config.yaml"
    assert "models:/models" in worker["volumes"]


def test_the_compose_config_is_valid_and_points_at_the_compose_services() -> None:
    settings = Settings.load(ROOT / "deploy" / "config.yaml")
    assert settings.queue.backend == "redis"
    assert urlsplit(settings.queue.redis_url).hostname in compose()["services"]
    bot = compose()["services"]["bot"]
    # Published on the host's loopback only: a reverse proxy serves the pages, /metrics stays private.
    assert bot["ports"] == [f"127.0.0.1:{settings.web.port}:{settings.web.port}"]
    assert settings.web.enabled and settings.web.host == "0.0.0.0"  # inside the container
    assert f"127.0.0.1:{settings.web.port}/healthz" in " ".join(bot["healthcheck"]["test"])


def test_offline_weights_live_in_the_models_volume_everywhere() -> None:
    """The images, compose and deploy/config.yaml agree: a model's folder is /models/<name>."""
    worker = compose()["services"]["worker"]
    volume = next(v.split(":")[0] for v in worker["volumes"] if v.split(":")[1] == "/models")
    assert volume in compose()["volumes"]  # a named volume, not a path inside the image
    for name in ("cpu", "cuda"):
        assert 'VOLUME ["/app/data", "/models"]' in stages()[name]
    entries = Settings.load(ROOT / "deploy" / "config.yaml").models.entries
    assert entries, "deploy/config.yaml serves no model"
    for name, entry in entries.items():
        # Offline, from its folder in the volume: a worker never needs the hub once it is downloaded.
        assert entry.offline and entry.path == Path("/models") / name, name
    header = (ROOT / "docker-compose.yml").read_text().split("services:")[0]
    for name, entry in entries.items():  # the header says how to fill that folder
        assert f"--local-dir {entry.path}" in header, name


def test_the_cuda_image_can_compile() -> None:
    """torch.compile's Triton launcher is built with a C compiler against Python's headers."""
    installs = " ".join(line for line in stages()["cuda"].splitlines() if "apt-get install" in line)
    assert {"gcc", "python3-dev"} <= set(installs.split())
