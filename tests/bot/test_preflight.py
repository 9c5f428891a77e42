"""`memebot check-config`: it names what `run` would refuse, and exits 0 only when `run` would start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.preflight import model_problem, public_url_warning
from bot.settings import Settings
from generators.config import ModelConfig

REDDIT_SECRETS = {
    "MEMEBOT_REDDIT_CLIENT_ID": "app",
    "MEMEBOT_REDDIT_CLIENT_SECRET": "shh",
    "MEMEBOT_REDDIT_USERNAME": "memebot",
    "MEMEBOT_REDDIT_PASSWORD": "pw",
}


def config_file(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: tiny-video\n  entries:\n"
        "    tiny: {size: 64, steps: 2}\n    tiny-video: {size: 64, steps: 2, frames: 8}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n{extra}"
    )
    return config


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEMEBOT_DISCORD_TOKEN", *REDDIT_SECRETS):
        monkeypatch.delenv(name, raising=False)


def check(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check-config", "--config", str(config), *args])
    return code, capsys.readouterr().out


def test_it_names_the_file_it_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith("config.yaml: read")
    monkeypatch.chdir(tmp_path / "..")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith("built-in defaults (no ./config.yaml)")


def _folder(tmp_path: Path, index: str | None) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    if index is not None:
        (folder / "model_index.json").write_text(index)
    return folder


@pytest.mark.parametrize(
    ("extra", "index", "problem"),
    [
        ("discord:\n  enabled: true\n", None, "discord: PROBLEM: MEMEBOT_DISCORD_TOKEN is not set"),
        ("reddit:\n  enabled: true\nweb:\n  enabled: true\n", None, "MEMEBOT_REDDIT_PASSWORD is not set"),
        (
            "reddit:\n  enabled: true\nweb:\n  enabled: true\n",
            None,
            "reddit: PROBLEM: MEMEBOT_REDDIT_CLIENT_ID",
        ),
        ("reddit:\n  enabled: true\n", None, "reddit: PROBLEM: needs web.enabled: true"),
        ("MODEL", "", "PROBLEM: no model_index.json in"),
        ("MODEL", "{}", "names no pipeline (_class_name)"),
        ("MODEL", '{"_class_name": "StableDiffusionPipelin"}', "names StableDiffusionPipelin, which is not"),
        ("MODEL", "{not json", "model_index.json cannot be read"),
    ],
)
def test_what_run_would_refuse_is_a_problem_and_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    index: str | None,
    problem: str,
) -> None:
    if "web" not in extra:  # only the missing web server is wrong here
        for name, value in REDDIT_SECRETS.items():
            monkeypatch.setenv(name, value)
    if extra == "MODEL":
        folder = _folder(tmp_path, index or None)
        extra = ""
        config = config_file(tmp_path)
        config.write_text(
            config.read_text().replace("    tiny-video:", f"    mine: {{path: {folder}}}\n    tiny-video:")
        )
    else:
        config = config_file(tmp_path, extra)
    code, out = check(config, capsys)
    assert code == 1, out
    assert problem in out
    assert not re.search(r"\bOK\b", out)  # never OK beside a PROBLEM
    assert out.splitlines()[-1] == "1 problem: `memebot run` would not start or not serve"
    assert sum("PROBLEM" in line for line in out.splitlines()) == 1  # one line for it


def test_a_good_folder_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, json.dumps({"_class_name": "StableDiffusionPipeline"}))
    config = config_file(tmp_path)
    config.write_text(
        config.read_text().replace("    tiny-video:", f"    mine: {{path: {folder}}}\n    tiny-video:")
    )
    code, out = check(config, capsys)
    assert code == 0, out
    assert f"model mine: image, {folder}" in out


def test_a_broken_folder_on_a_redis_bot_is_only_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bot on Redis loads no model: its workers do, maybe on other machines.
    config = config_file(tmp_path, "queue:\n  backend: redis\n")
    config.write_text(
        config.read_text().replace("    tiny-video:", "    mine: {path: /nowhere/weights}\n    tiny-video:")
    )
    code, out = check(config, capsys)
    assert code == 0, out
    assert "model mine: WARNING: folder /nowhere/weights does not exist (a worker here would fail it)" in out


def test_reddit_links_to_this_machine_are_a_warning_that_follows_the_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in REDDIT_SECRETS.items():
        monkeypatch.setenv(name, value)
    config = config_file(tmp_path, "reddit:\n  enabled: true\nweb:\n  enabled: true\n  port: 18081\n")
    code, out = check(config, capsys)
    assert code == 0, out
    assert (
        "reddit: WARNING: reddit replies link to http://127.0.0.1:18081, which only works on this machine"
        in out
    )
    public = config_file(
        tmp_path, "reddit:\n  enabled: true\nweb:\n  enabled: true\n  public_url: https://m.example\n"
    )
    code, out = check(public, capsys)
    assert code == 0 and "WARNING" not in out


def test_the_public_url_warning_is_only_for_reddit() -> None:
    assert public_url_warning(Settings.parse("web:\n  enabled: true\n")) == ""
    warning = public_url_warning(Settings.parse("reddit:\n  enabled: true\nweb:\n  port: 9000\n"))
    assert "http://127.0.0.1:9000" in warning and "web.public_url" in warning


def test_one_step_is_one_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_file(tmp_path)
    config.write_text(config.read_text().replace("tiny: {size: 64, steps: 2}", "tiny: {size: 64, steps: 1}"))
    code, out = check(config, capsys)
    assert code == 0 and ", 1 step (default for image)" in out and "1 steps" not in out


def test_without_diffusers_the_class_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, json.dumps({"_class_name": "NoSuchPipeline"}))
    assert "not a diffusers pipeline" in model_problem(ModelConfig(path=folder))
    monkeypatch.setattr("bot.preflight.diffusers_available", lambda: False)
    assert model_problem(ModelConfig(path=folder)) == ""
