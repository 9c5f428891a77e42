"""The container files: the Dockerfile lints clean, and compose and its config fit together."""

from __future__ import annotations

import re
import subprocess
import sys
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


def test_both_images_run_as_a_user_with_the_model_cache_on_a_volume() -> None:
    targets = stages()
    assert set(targets) == {"cpu", "cuda"}
    for name, text in targets.items():
        assert "USER memebot" in text, name
        assert 'VOLUME ["/app/data", "/models"]' in text, name
        assert "HF_HOME=/models" in text, name
        assert 'ENTRYPOINT ["memebot"]' in text, name
    assert "nvidia/cuda" in (ROOT / "Dockerfile").read_text().split("AS cuda")[0].splitlines()[-1]


def test_compose_runs_a_bot_redis_and_a_gpu_worker_on_one_config() -> None:
    services = compose()["services"]
    assert set(services) == {"bot", "redis", "worker"}
    bot, worker = services["bot"], services["worker"]
    assert bot["build"]["target"] == "cpu" and bot["command"] == ["run"]
    assert worker["build"]["target"] == "cuda" and worker["command"] == ["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and "deploy" not in bot
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
