"""/help shows the grammar's flags and the models, from the same sources the parser uses."""

from __future__ import annotations

from pathlib import Path

from generators.pipelines import DiffusersBackend
from tests.bot.discord.test_bot import discord_env
from tests.bot.discord.test_models import reply, three_models
from tests.fakes.discord import FakeDiscord


async def test_help_lists_every_flag_and_model(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    pool = three_models(tiny_backend, tiny_video_backend)
    async with discord_env(pool, tmp_path, fake, start_worker=False):
        shown = await reply(fake, "help", {})
        assert shown.ephemeral and len(shown.content) <= 2000
        flags = ("--no", "--n", "--seed", "--ar", "--steps", "--top", "--bottom", "--video", "--model")
        for flag in (*flags, "--strength"):
            assert f"  {flag} " in shown.content or f"  {flag}:" in shown.content
        assert "Remix with memebot" in shown.content
        for model in ("tiny", "tiny-video", "tiny-b"):
            assert f"`{model}`" in shown.content
        fake.assert_clean()
