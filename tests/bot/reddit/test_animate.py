"""A mention with --video under a picture post animates the picture (LTX-Video, Wan I2V), or says which
models can. The real asyncpraw against the fake Reddit; the real tiny pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import JobStatus
from generators.config import ModelConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.requests import Kind
from tests.bot.reddit.test_remix import job_of, picture, sha256
from tests.bot.reddit.world import answered, run_bot
from tests.fakes.reddit import FakeReddit
from tests.helpers import TEST_SIZE


@pytest.fixture(scope="module")
def models() -> list[DiffusersBackend]:
    return [
        load_backend(ModelConfig(name=name, size=TEST_SIZE, steps=2, frames=9), name)
        for name in ("tiny", "tiny-ltx", "tiny-wan-i2v", "tiny-video")
    ]


@pytest.mark.parametrize("model", ["tiny-ltx", "tiny-wan-i2v"])
async def test_a_mention_with_video_under_a_picture_animates_it(
    models: list[DiffusersBackend], tmp_path: Path, fake: FakeReddit, model: str
) -> None:
    red, blue = picture((220, 30, 30)), picture((30, 30, 220), 2)
    on_red = fake.mention(f"u/memebot make it dance --video --model {model} --seed 3", author="alice",
                          parent=fake.image_post("pics", red, "My cat"))  # fmt: skip
    on_blue = fake.mention(f"u/memebot make it dance --video --model {model} --seed 3", author="bob",
                           parent=fake.image_post("pics", blue, "My dog"))  # fmt: skip
    async with run_bot(models, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, on_red)
        await answered(world, on_blue)
        clips = []
        for fullname, served in ((on_red, red), (on_blue, blue)):
            record = await job_of(world, fullname)
            request = record.job.request
            assert (
                request.kind is Kind.VIDEO and request.model == model and record.status is JobStatus.DELIVERED
            )
            assert request.source is not None and request.source.digest == sha256(served)
            (reply,) = fake.replies_to(fullname)
            assert f"animation of image sha256:{sha256(served)[:12]}…" in reply.body
            assert record.result is not None
            clips.append(record.result.primary.path.read_bytes())
        assert clips[0] != clips[1]  # the same seed, another picture, another clip


async def test_a_model_without_an_image_to_video_form_is_refused_naming_those_that_can(
    models: list[DiffusersBackend], tmp_path: Path, fake: FakeReddit
) -> None:
    post = fake.image_post("pics", picture((220, 30, 30)), "My cat")
    mention = fake.mention("u/memebot make it dance --video --model tiny-video", author="carol", parent=post)
    async with run_bot(models, tmp_path, fake) as world:
        await world.bot.poll_once()
        await answered(world, mention)
        (reply,) = fake.replies_to(mention)
        assert "tiny-video can't animate a picture" in reply.body
        assert "tiny-ltx" in reply.body and "tiny-wan-i2v" in reply.body
        assert not fake.downloads  # refused before the picture was fetched
