"""Animate on Discord: a picture given to /imagine with video on, or replied to with --video in a meme
channel, comes back as a clip from a family's image-to-video form (LTX-Video and Wan I2V here). The
real discord.py against the fake Discord, the real tiny pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest

from generators.config import ModelConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.render import read_metadata
from tests.bot.discord.test_bot import discord_env, imagine
from tests.bot.discord.test_remix import picture, refusal, result_of, sha256
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.helpers import TEST_SIZE


@pytest.fixture(scope="module")
def animators() -> list[DiffusersBackend]:
    """An image model, then LTX-Video (animates on its own weights) and Wan I2V (a checkpoint of its own)."""
    return [
        load_backend(ModelConfig(name=name, size=TEST_SIZE, steps=2, frames=9), name)
        for name in ("tiny", "tiny-ltx", "tiny-wan-i2v")
    ]


@pytest.mark.parametrize("model", ["tiny-ltx", "tiny-wan-i2v"])
async def test_imagine_with_a_picture_and_video_animates_it(
    animators: list[DiffusersBackend], tmp_path: Path, fake: FakeDiscord, model: str
) -> None:
    ramp, checks = picture("ramp"), picture("checks")
    async with discord_env(animators, tmp_path, fake) as env:
        options = {"prompt": f"make it dance --model {model}", "image": fake.store_attachment("r.png", ramp)}
        first = await imagine(env, {**options, "video": True, "seed": 3})
        record, source, from_ramp = await result_of(env, first)
        assert record.job.request.kind.value == "video" and record.job.request.model == model
        assert source.digest == sha256(ramp)
        assert read_metadata(from_ramp)["source"] == f"sha256:{sha256(ramp)}"
        assert f"animation of image sha256:{sha256(ramp)[:12]}…" in first.content
        assert first.attachments[0].filename.endswith((".gif", ".mp4", ".webp"))
        options["image"] = fake.store_attachment("c.png", checks)
        _, _, from_checks = await result_of(env, await imagine(env, {**options, "video": True, "seed": 3}))
        assert from_checks != from_ramp  # the same seed, another picture, another clip
        fake.assert_clean()


async def test_a_model_without_an_image_to_video_form_refuses_naming_those_that_can(
    animators: list[DiffusersBackend], tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env([*animators, tiny_video_backend], tmp_path, fake) as env:
        upload = fake.store_attachment("r.png", picture("ramp"))
        ix = await env.fake.slash_command(
            "imagine", {"prompt": "make it dance --model tiny-video", "image": upload, "video": True}
        )
        answer = await refusal(fake, ix)
        assert "tiny-video can't animate a picture" in answer.content
        assert "tiny-ltx" in answer.content and "tiny-wan-i2v" in answer.content
        fake.assert_clean()


async def test_a_meme_channel_reply_with_video_animates_the_picture(
    animators: list[DiffusersBackend], tmp_path: Path, fake: FakeDiscord
) -> None:
    memes = fake.channel("memes")
    ramp = picture("ramp")
    async with discord_env(animators, tmp_path, fake) as env:
        shared = await fake.post_user_message(
            memes, "", attachments=[fake.store_attachment("ramp.png", ramp)], author=fake.bob
        )
        prompt = await fake.post_user_message(
            memes, "!imagine make it dance --video --model tiny-ltx --seed 2", reply_to=shared
        )

        def answer() -> FakeMessage | None:
            return next(
                (
                    m
                    for m in fake.messages_in(memes)
                    if m.attachments and (m.message_reference or {}).get("message_id") == str(prompt.id)
                ),
                None,
            )

        message = await fake.wait_for(answer, timeout=60, what="the animation")
        record, source, _ = await result_of(env, message)
        assert source.digest == sha256(ramp) and record.job.request.kind.value == "video"
        fake.assert_clean()
