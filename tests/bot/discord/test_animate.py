"""Animate on Discord: a picture given to /imagine with video on or to /animate, right-clicked (Apps →
Animate with memebot), picked under a result with 🎬, or replied to with --video in a meme channel,
comes back as a clip from a family's image-to-video form (LTX-Video and Wan I2V here). The real
discord.py against the fake Discord, the real tiny pipelines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from discord.utils import escape_markdown

from bot.discord._buttons import result_view
from bot.discord._text import error_text, models_lines
from bot.store import JobRecord
from generators.config import ModelConfig
from generators.models import Catalog
from generators.pipelines import DiffusersBackend, load_backend
from generators.render import read_metadata
from generators.requests import Kind, Source
from tests.bot.discord.test_bot import Env, delivered, discord_env, has_file, imagine, job_id_of
from tests.bot.discord.test_remix import picture, refusal, result_of, sha256
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage
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


# -- /animate with an image, the message menu and the 🎬 button --------------------------------------

MENU = "Animate with memebot"
CLIP_FILES = (".gif", ".mp4", ".webp")
CAN = "(the clip models that can: tiny-ltx, tiny-wan-i2v)"


async def animate(env: Env, options: dict[str, Any]) -> FakeMessage:
    ix = await env.fake.slash_command("animate", options)
    assert (await ix.acknowledgement()).type == 5
    return await ix.wait_original(has_file, timeout=60)


async def animated(env: Env, submitted: FakeInteraction) -> tuple[JobRecord, Source, bytes]:
    """The clip a submitted form made: delivered, a clip file, and what it started from."""
    assert (await submitted.acknowledgement()).type == 5
    message = await submitted.wait_original(has_file, timeout=60)
    assert message.attachments[0].filename.endswith(CLIP_FILES)
    record, source, clip = await result_of(env, message)
    assert record.job.request.kind is Kind.VIDEO
    start = f"job {source.job}" if source.job else f"image sha256:{source.digest[:12]}…"
    assert escape_markdown(f"animation of {start}") in message.content  # a job id may hold an "_"
    return record, source, clip


@pytest.mark.parametrize("model", ["tiny-ltx", "tiny-wan-i2v"])
async def test_animate_with_an_image_makes_the_picture_move(
    animators: list[DiffusersBackend], tmp_path: Path, fake: FakeDiscord, model: str
) -> None:
    ramp, checks = picture("ramp"), picture("checks")
    async with discord_env(animators, tmp_path, fake) as env:
        options = {"prompt": "make it dance", "model": model, "seed": 3}
        first = await animate(env, {**options, "image": fake.store_attachment("r.png", ramp)})
        assert first.attachments[0].filename.endswith(CLIP_FILES)
        record, source, from_ramp = await result_of(env, first)
        assert record.job.request.kind is Kind.VIDEO and record.job.request.model == model
        assert source.digest == sha256(ramp) and not source.job
        assert read_metadata(from_ramp)["source"] == f"sha256:{sha256(ramp)}"
        assert f"animation of image sha256:{sha256(ramp)[:12]}…" in first.content
        second = await animate(env, {**options, "image": fake.store_attachment("c.png", checks)})
        _, source, from_checks = await result_of(env, second)
        assert source.digest == sha256(checks) and from_checks != from_ramp  # same seed, another clip
        fake.assert_clean()


async def test_animate_refuses_a_clip_model_that_cannot_animate_and_a_file_that_is_no_picture(
    animators: list[DiffusersBackend], tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    tiny, *clip_models = animators
    # tiny-video first: the default clip model, which has no image-to-video form.
    async with discord_env([tiny, tiny_video_backend, *clip_models], tmp_path, fake) as env:
        for options in ({}, {"model": "tiny-video"}):
            upload = fake.store_attachment("r.png", picture("ramp"))
            ix = await fake.slash_command("animate", {"prompt": "make it dance", "image": upload, **options})
            answer = await refusal(fake, ix)
            assert answer.content == error_text(f"tiny-video can't animate a picture {CAN}")
            assert (await ix.acknowledgement()).type == 4  # up front: nothing fetched, nothing queued
        text = fake.store_attachment("notes.txt", b"this is text, not a picture")
        ix = await fake.slash_command("animate", {"prompt": "make it dance", "image": text})
        answer = await refusal(fake, ix)
        assert answer.content == "❌ that file is not a picture; use a PNG, JPEG, GIF or WebP"
        assert fake.attachment_downloads == [] and await env.service.store.stats() == {}
        fake.assert_clean()


@pytest.mark.parametrize("model", ["tiny-ltx", "tiny-wan-i2v"])
async def test_the_message_menu_animates_an_attachment_or_an_embedded_picture(
    animators: list[DiffusersBackend], tmp_path: Path, fake: FakeDiscord, model: str
) -> None:
    ramp, checks = picture("ramp"), picture("checks")
    general = fake.channel("general")
    async with discord_env(animators, tmp_path, fake) as env:
        attached = await fake.post_user_message(
            general, "look", attachments=[fake.store_attachment("ramp.png", ramp)], author=fake.bob
        )
        opened = await fake.message_command(MENU, attached)
        assert (await opened.acknowledgement()).type == 9
        assert opened.modal is not None and opened.modal["title"] == MENU
        inputs = opened.text_inputs()
        assert set(inputs) == {"prompt", "model"} and "tiny-wan-i2v" in inputs["model"]["placeholder"]
        form = {"prompt": "make it dance --seed 3", "model": model}
        record, source, from_ramp = await animated(env, await fake.submit_modal(opened, form))
        assert source.digest == sha256(ramp) and record.job.request.model == model
        assert record.job.owner == f"discord:{fake.alice.id}"
        assert read_metadata(from_ramp)["source"] == f"sha256:{sha256(ramp)}"
        hosted = fake.store_attachment("checks.png", checks)
        linked = await fake.post_user_message(
            general, hosted.url, embeds=[{"thumbnail": {"url": hosted.url, "width": 64, "height": 64}}]
        )
        opened = await fake.message_command(MENU, linked)
        _, source, from_checks = await animated(env, await fake.submit_modal(opened, form))
        assert source.digest == sha256(checks) and from_checks != from_ramp
        fake.assert_clean()


async def test_the_message_menu_refuses_what_it_cannot_animate_in_one_line(
    animators: list[DiffusersBackend], tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    general = fake.channel("general")
    async with discord_env([*animators, tiny_video_backend], tmp_path, fake) as env:
        for message in (
            await fake.post_user_message(general, "just words"),
            await fake.post_user_message(
                general, "", attachments=[fake.store_attachment("notes.txt", b"plain text")]
            ),
        ):
            menu = await fake.message_command(MENU, message)
            refused = await refusal(fake, menu)
            assert refused.content == "❌ that message has no picture I can use" and menu.modal is None
        post = await fake.post_user_message(
            general, "", attachments=[fake.store_attachment("ramp.png", picture("ramp"))]
        )
        for model, answer in (
            (
                "tiny-video",
                "tiny-video can't animate a picture (the clip models that can: tiny-ltx, tiny-wan-i2v)",
            ),
            ("tiny-video --n 4", "give one model name in the model field, like the ones /info lists"),
        ):
            opened = await fake.message_command(MENU, post)
            submitted = await fake.submit_modal(opened, {"prompt": "make it dance", "model": model})
            assert (await refusal(fake, submitted)).content == error_text(answer)
            assert (await submitted.acknowledgement()).type == 4  # answered at once: no "thinking…"
        assert fake.attachment_downloads == [] and await env.service.store.stats() == {}
        fake.assert_clean()


@pytest.mark.parametrize("model", ["tiny-ltx", "tiny-wan-i2v"])
async def test_the_animate_button_starts_from_the_tile_picked(
    animators: list[DiffusersBackend], tmp_path: Path, fake: FakeDiscord, model: str
) -> None:
    async with discord_env(animators, tmp_path, fake) as env:
        grid = await imagine(env, {"prompt": "a cat --model tiny", "n": 4, "seed": 11})
        job_id = job_id_of(grid)
        assert f"mb:anim:{job_id}" in grid.custom_ids
        grid_record = await delivered(env.service, job_id)
        assert grid_record.result is not None
        seeds = grid_record.result.seeds

        async def animate_tile(values: dict[str, str]) -> tuple[JobRecord, Source, bytes]:
            opened = await fake.click(grid, f"mb:anim:{job_id}")
            assert (await opened.acknowledgement()).type == 9
            inputs = opened.text_inputs()
            # The grid's command line as a clip's: its seed kept, --n and the image model gone.
            assert inputs["prompt"]["value"] == "a cat --seed 11 --video" and inputs["index"]["value"] == "1"
            return await animated(env, await fake.submit_modal(opened, values))

        second, source, from_second = await animate_tile(
            {"prompt": f"a cat walks --seed 11 --video --model {model}", "index": "2"}
        )
        assert source.job == job_id and second.job.request.seed == seeds[1]
        assert second.job.request.model == model
        assert read_metadata(from_second)["source"] == f"job {job_id}"
        third, other, from_third = await animate_tile(
            {"prompt": f"a cat walks --seed 11 --model {model}", "index": "3"}  # --video added
        )
        assert other.job == job_id and other.digest != source.digest
        assert third.job.request.seed == seeds[2] and from_third != from_second
        # The same typed seed on another tile: another picture, another clip.
        typed = {"prompt": f"a cat walks --seed 99 --model {model}"}
        a, _, from_a = await animate_tile({**typed, "index": "2"})
        b, _, from_b = await animate_tile({**typed, "index": "3"})
        assert a.job.request.seed == b.job.request.seed == 99 and from_a != from_b
        fake.assert_clean()


async def test_the_animate_button_keeps_the_rules_of_the_remix_button(
    animators: list[DiffusersBackend], tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    tiny, *clip_models = animators
    async with discord_env([tiny, tiny_video_backend, *clip_models], tmp_path, fake) as env:
        made = await imagine(env, {"prompt": "a cat --no dogs", "n": 1}, channel_id=fake.channel("nsfw").id)
        button = f"mb:anim:{job_id_of(made)}"
        refused = await fake.click(made, button, user=fake.bob)
        assert "age-restricted" in (await refusal(fake, refused)).content and refused.modal is None
        opened = await fake.click(made, button, user=fake.alice)
        assert (await opened.acknowledgement()).type == 9
        inputs = opened.text_inputs()
        assert "index" not in inputs  # one image: nothing to pick
        # The default clip model (tiny-video) can't animate: the form names one that can.
        assert inputs["prompt"]["value"].endswith("--model tiny-ltx --video")
        clip = await animate(env, {"prompt": "a clip", "model": "tiny-video", "seed": 1})
        assert not any(cid.startswith("mb:anim:") for cid in clip.custom_ids)  # a clip is no picture
        fake.assert_clean()


async def test_no_animate_button_where_no_clip_model_can_animate(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env([tiny_backend, tiny_video_backend], tmp_path, fake) as env:
        grid = await imagine(env, {"prompt": "a cat", "n": 2})
        assert f"mb:remix:{job_id_of(grid)}" in grid.custom_ids
        assert not any(cid.startswith("mb:anim:") for cid in grid.custom_ids)
        post = await fake.post_user_message(
            fake.channel("general"), "", attachments=[fake.store_attachment("r.png", picture("ramp"))]
        )
        menu = await fake.message_command(MENU, post)
        assert (await refusal(fake, menu)).content == "❌ no clip model here can animate a picture"
        assert menu.modal is None and await env.service.store.stats() == {"delivered": 1}
        fake.assert_clean()


def test_the_animate_button_shows_under_pictures_only() -> None:
    def ids(view: Any) -> list[str]:
        return [item.item.custom_id for item in view.children]

    assert "mb:anim:abcdefgh" in ids(result_view("abcdefgh", 4, animate=True))
    assert "mb:anim:abcdefgh" not in ids(result_view("abcdefgh", 4))  # no clip model animates
    assert "mb:anim:abcdefgh" not in ids(result_view("abcdefgh", 0, animate=True))  # a clip


def test_info_says_what_each_model_does_with_a_picture(animators: list[DiffusersBackend]) -> None:
    one_step = dataclasses.replace(animators[0].info, name="one", steps=1)
    catalog = Catalog((*(b.info for b in animators), one_step), image="tiny", video="tiny-ltx")
    lines = models_lines(catalog, [])
    assert lines[0].endswith("(image, 64 px, 2 steps): default for images; not loaded; remixes pictures")
    assert lines[1].endswith("default for clips; not loaded; animates pictures too")
    assert lines[2].endswith("; only animates pictures")
    assert "Model **one** (image, 64 px, 1 step): " in lines[3]
