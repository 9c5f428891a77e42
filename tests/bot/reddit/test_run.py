"""``memebot run`` with Reddit and the web server enabled: it answers a mention, and refuses to start
without what it needs."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bot.__main__ import main, run
from bot.settings import Secrets, StoreConfig
from generators.config import ModelConfig
from tests.bot.reddit.world import make_settings, until
from tests.fakes.loopback import free_port
from tests.fakes.reddit import FakeReddit


async def test_memebot_run_answers_a_mention_and_stops_on_sigterm(tmp_path: Path, fake: FakeReddit) -> None:
    mention = fake.mention("u/memebot a quokka --n 1", author="alice")
    settings = make_settings(fake, tmp_path, free_port(), poll_interval_s=0.05).model_copy(
        update={
            "model": ModelConfig(name="tiny", size=64, steps=2),
            "store": StoreConfig(path=tmp_path / "m.db"),
        }
    )
    bot = asyncio.create_task(run(settings))
    try:
        await until(lambda: bool(fake.replies_to(mention)) or bot.done(), limit_s=60)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # what a service manager sends
        assert await asyncio.wait_for(bot, 30) == 0
    (reply,) = fake.replies_to(mention)
    assert f"http://127.0.0.1:{settings.web.port}/" in reply.body
    assert not fake.is_unread(mention)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "reddit:\n  enabled: true\nweb:\n  enabled: true\n",
            "MEMEBOT_REDDIT_CLIENT_ID, MEMEBOT_REDDIT_CLIENT",
        ),
        ("reddit:\n  enabled: true\n", "reddit.enabled needs web.enabled"),
    ],
)
def test_reddit_without_credentials_or_web_is_a_config_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    message: str,
) -> None:
    for name in Secrets.model_fields:
        monkeypatch.delenv(f"MEMEBOT_{name.upper()}", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model:\n  size: 64\n  steps: 2\nstore:\n  path: {tmp_path / 'm.db'}\n"
        f"worker:\n  results_dir: {tmp_path / 'results'}\nweb:\n  port: 0\n{extra}"
    )
    assert main(["--config", str(config), "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and message in err and "Traceback" not in err
