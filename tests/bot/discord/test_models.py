"""Several models in one Discord bot: picking one, a server's default, /info, and /animate beside /imagine."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.jobs import JobService
from generators.config import ModelConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.pool import ModelPool
from tests.bot.discord.test_bot import (
    MANAGE_GUILD,
    discord_env,
    has_file,
    imagine,
    job_id_of,
    newest_job,
)
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.discord_models import FakeChannel, FakeUser
from tests.helpers import TEST_SIZE


def three_models(tiny: DiffusersBackend, tiny_video: DiffusersBackend) -> ModelPool:
    """``tiny`` and ``tiny-video`` (the defaults) and a second image model, ``tiny-b``, with 3 steps.

    Each loads on first use, so /info has something not loaded to show.
    """
    ready = {"tiny": tiny, "tiny-video": tiny_video}
    configs = {name: ModelConfig(name=name, size=TEST_SIZE, steps=2) for name in ready}
    configs["tiny-b"] = ModelConfig(name="tiny", size=TEST_SIZE, steps=3, seed=1)

    def loader(config: ModelConfig, name: str) -> DiffusersBackend:
        return ready.get(name) or load_backend(config, name)

    return ModelPool(configs, image="tiny", video="tiny-video", max_loaded=3, loader=loader)


async def reply(fake: FakeDiscord, name: str, options: dict[str, Any], **where: Any) -> FakeMessage:
    """The first message a command's interaction gets (a refusal, a listing, a confirmation)."""
    ix = await fake.slash_command(name, options, **where)
    return await ix.wait_original(lambda m: True)


async def queued_model(
    service: JobService, fake: FakeDiscord, name: str, options: dict[str, Any], **where: Any
) -> str:
    """Run a generating command (no worker runs) and return the model its stored job names."""
    before = {record.id for record in await service.store.recent(100)}
    assert (await (await fake.slash_command(name, options, **where)).acknowledgement()).type == 5
    async with asyncio.timeout(10):
        while not (new := [r for r in await service.store.recent(100) if r.id not in before]):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert new[0].job.request.model is not None
    return new[0].job.request.model


async def test_one_bot_answers_imagine_with_a_grid_and_animate_with_a_clip(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Any, fake: FakeDiscord
) -> None:
    async with discord_env([tiny_backend, tiny_video_backend], tmp_path, fake) as env:
        grid = await imagine(env, {"prompt": "a hamster godzilla", "n": 4, "seed": 7})
        assert grid.attachments[0].image().size == (2 * TEST_SIZE, 2 * TEST_SIZE)
        assert "model `tiny`" in grid.content and "--model tiny`" in grid.content
        ix = await fake.slash_command("animate", {"prompt": "will smith eating spaghetti", "seed": 5})
        clip = await ix.wait_original(has_file, timeout=60)
        frames = clip.attachments[0].image()
        assert frames.format == "GIF" and frames.n_frames == 8
        assert "model `tiny-video`" in clip.content and "--model tiny-video" in clip.content
        shown = await (await fake.slash_command("show", {"job": job_id_of(clip)})).wait_original(
            has_file, timeout=10
        )
        assert "--model tiny-video" in shown.content
        fake.assert_clean()


async def test_the_model_option_suggests_this_bots_models_and_refuses_others(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Any, fake: FakeDiscord
) -> None:
    pool = three_models(tiny_backend, tiny_video_backend)
    async with discord_env(pool, tmp_path, fake, start_worker=False, per_user=10) as env:
        option = next(o for o in fake.command("imagine")["options"] if o["name"] == "model")
        assert option.get("autocomplete") and not option.get("choices")

        async def suggested(command: str, typed: str, **others: Any) -> list[str]:
            ix = await fake.autocomplete(command, {**others, "model": typed}, "model")
            assert (await ix.acknowledgement()).type == 8
            return [c["value"] for c in ix.choices]

        assert await suggested("imagine", "") == ["tiny", "tiny-b"]
        assert await suggested("imagine", "B") == ["tiny-b"]
        assert await suggested("imagine", "", video=True) == ["tiny-video"]
        assert await suggested("animate", "") == ["tiny-video"]
        assert (
            await queued_model(env.service, fake, "imagine", {"prompt": "a cat", "model": "tiny-b"})
            == "tiny-b"
        )
        before = await env.service.store.stats()
        unknown = await reply(fake, "imagine", {"prompt": "a cat", "model": "tiny-c"})
        assert unknown.ephemeral and "there is no model 'tiny-c'" in unknown.content
        assert "tiny, tiny-video, tiny-b" in unknown.content
        wrong_kind = await reply(fake, "animate", {"prompt": "a cat", "model": "tiny"})
        assert wrong_kind.ephemeral and "tiny is not a clip model" in wrong_kind.content
        assert "tiny-video" in wrong_kind.content
        assert await env.service.store.stats() == before  # the refusals queued nothing
        fake.assert_clean()


async def test_a_server_and_a_channel_choose_their_default_model(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Any, fake: FakeDiscord
) -> None:
    admin = fake.add_user("boss", roles=[fake.add_role("admins", permissions=MANAGE_GUILD)])
    general, memes = fake.channel("general"), fake.channel("memes")
    pool = three_models(tiny_backend, tiny_video_backend)
    limits = {"per_user": 20, "user_rate": 20, "server_rate": 20}
    async with discord_env(pool, tmp_path, fake, start_worker=False, **limits) as env:

        async def model_of(command: str, channel: FakeChannel) -> str:
            options = {"prompt": f"a cat in {channel.name}"}
            return await queued_model(env.service, fake, command, options, channel_id=channel.id)

        async def setting(options: dict[str, Any], user: FakeUser = admin) -> str:
            return (await reply(fake, "settings set", options, user=user)).content

        assert "Manage Server" in await setting({"model": "tiny-b"}, user=fake.alice)
        assert "Default models: image tiny-b" in await setting({"model": "tiny-b"})
        assert await model_of("imagine", general) == "tiny-b"
        assert await model_of("animate", general) == "tiny-video"  # an image default leaves clips alone
        assert f"<#{general.id}>: image tiny" in await setting({"model": "tiny", "channel": general})
        assert await model_of("imagine", general) == "tiny"  # the channel's default wins
        assert await model_of("imagine", memes) == "tiny-b"
        await setting({"model": "tiny-video"})  # a clip default keeps the image one
        assert await model_of("imagine", memes) == "tiny-b"
        await setting({"model": "default", "channel": general})
        assert await model_of("imagine", general) == "tiny-b"
        refused = await reply(fake, "settings set", {"model": "sdxl"}, user=admin)
        assert refused.ephemeral and "there is no model 'sdxl'" in refused.content
        fake.assert_clean()


async def test_a_meme_channel_prompt_names_its_model_or_takes_the_servers(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Any, fake: FakeDiscord
) -> None:
    admin = fake.add_user("boss", roles=[fake.add_role("admins", permissions=MANAGE_GUILD)])
    memes = fake.channel("memes")
    pool = three_models(tiny_backend, tiny_video_backend)
    async with discord_env(pool, tmp_path, fake, start_worker=False, per_user=5) as env:
        await (await fake.slash_command("settings set", {"model": "tiny-b"}, user=admin)).acknowledgement()
        await fake.post_user_message(memes, "!imagine a dancing frog --model tiny --n 1", author=fake.alice)
        assert (await newest_job(env.service)).job.request.model == "tiny"
        await fake.post_user_message(memes, "!imagine a dancing toad --n 1", author=fake.bob)
        async with asyncio.timeout(10):
            while len(records := await env.service.store.recent(10)) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        jobs = {r.job.request.prompt: r.job.request.model for r in records}
        assert jobs == {"a dancing frog": "tiny", "a dancing toad": "tiny-b"}
        fake.assert_clean()


async def test_info_lists_each_model_with_kind_size_steps_and_whether_it_is_loaded(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Any, fake: FakeDiscord
) -> None:
    pool = three_models(tiny_backend, tiny_video_backend)
    async with discord_env(pool, tmp_path, fake, start_worker=False) as env:
        before = (await reply(fake, "info", {})).content
        assert "Model **tiny** (image, 64 px, 2 steps): default for images; not loaded" in before
        assert "Model **tiny-video** (video, 64 px, 2 steps): default for clips; not loaded" in before
        assert "Model **tiny-b** (image, 64 px, 3 steps): not loaded" in before
        assert before.splitlines()[-1].startswith("Image classifier: o")  # on or off, and why
        env.service.runner.worker.start()
        await imagine(env, {"prompt": "a cat", "n": 1, "model": "tiny-b"})
        after = (await reply(fake, "info", {})).content
        assert "Model **tiny-b** (image, 64 px, 3 steps): loaded" in after
        assert "Model **tiny** (image, 64 px, 2 steps): default for images; not loaded" in after
        fake.assert_clean()
