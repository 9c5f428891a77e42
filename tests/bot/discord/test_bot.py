"""memebot's Discord adapter: the real discord.py against the fake Discord, the real tiny pipeline.

Every test ends with ``fake.assert_clean()``: no request the spec refuses, no dead gateway, no late
heartbeat (inference and encoding stayed off the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from bot.discord import MemeBot, build_bot, point_at
from bot.jobs import JobService
from bot.settings import DiscordConfig
from bot.store import JobRecord, JobStatus
from generators.intake import Fetcher, IntakeLimits
from generators.pipelines import DiffusersBackend
from tests.fakes.discord import FakeDiscord, FakeMessage, run_client
from tests.helpers import open_service

MANAGE_GUILD = 1 << 5


@dataclass
class Env:
    fake: FakeDiscord
    bot: MemeBot
    service: JobService


@contextlib.asynccontextmanager
async def discord_env(
    backend: DiffusersBackend | Sequence[DiffusersBackend],
    tmp_path: Path,
    fake: FakeDiscord,
    *,
    start_worker: bool = True,
    per_user: int = 3,
    worker: dict[str, Any] | None = None,
    loopback_pictures: bool = True,
    **config: Any,
) -> AsyncIterator[Env]:
    """A bot on ``fake`` with a service on ``backend``; members' pictures are fetched from the fake
    (plain HTTP on the loopback) unless ``loopback_pictures`` is False: then from Discord's hosts only."""
    settings = DiscordConfig(
        enabled=True,
        api_base_url=fake.api_base,
        gateway_url=fake.gateway_url,
        meme_channels=(fake.channel("memes").id,),
        **({"edit_interval_s": 0.05} | config),
    )
    async with (
        open_service(
            backend,
            tmp_path / "jobs.db",
            tmp_path,
            start_worker=start_worker,
            per_user=per_user,
            **(worker or {}),
        ) as service,
        aiohttp.ClientSession() as session,
    ):
        options: dict[str, Any] = {"guild_ready_timeout": 0.05}
        if loopback_pictures:
            limits = IntakeLimits.of(service.limits)
            options["fetcher"] = Fetcher(session, ("127.0.0.1",), limits, schemes=("http",))
        bot = build_bot(service, settings, **options)
        async with run_client(bot, fake):
            try:
                yield Env(fake, bot, service)
            finally:
                await bot.delivery.close()


async def newest_job(service: JobService) -> JobRecord:
    """The newest stored job, once there is one (acknowledging comes before storing)."""
    async with asyncio.timeout(10):
        while not (records := await service.store.recent(1)):  # noqa: ASYNC110 - the store has no events
            await asyncio.sleep(0.01)
    return records[0]


async def delivered(service: JobService, job_id: str) -> JobRecord:
    """The job once the store marks it delivered (that comes just after the post)."""
    async with asyncio.timeout(10):
        while (record := await service.store.get(job_id)) is None or record.status is not JobStatus.DELIVERED:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return record


def has_file(message: FakeMessage) -> bool:
    return bool(message.attachments)


def job_id_of(message: FakeMessage) -> str:
    return next(cid.split(":")[2] for cid in message.custom_ids if cid.startswith("mb:reroll:"))


async def imagine(env: Env, options: dict[str, Any], **where: Any) -> FakeMessage:
    ix = await env.fake.slash_command("imagine", options, **where)
    assert (await ix.acknowledgement()).type == 5
    return await ix.wait_original(has_file, timeout=60)


async def test_imagine_end_to_end_with_progress_and_buttons(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": "a hamster godzilla", "n": 4, "seed": 7})
        grid = message.attachments[0].image()
        assert grid.size == (128, 128)  # 2x2 tiles of 64 px
        job_id = job_id_of(message)
        assert "seed `7`" in message.content and job_id in message.content
        expected = {f"mb:{a}:{job_id}:{i}" for a in ("var", "up") for i in range(1, 5)}
        assert expected <= set(message.custom_ids) and f"mb:del:{job_id}" in message.custom_ids
        earlier = " ".join(str(version.get("content")) for version in message.history)
        assert "Queued" in earlier or "step" in earlier  # the same message showed progress first
        record = await delivered(env.service, job_id)
        assert record.delivery_ref == str(message.id)
        fake.assert_clean()


async def test_flags_typed_in_the_prompt_and_bad_flags(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": "a frog --n 2 --ar 3:1"})
        assert message.attachments[0].image().size == (2 * 128, 64)  # two 128x64 tiles side by side
        ix = await fake.slash_command("imagine", {"prompt": "a frog --sed 3"})
        answer = await ix.acknowledgement()
        assert answer.type == 4
        reply = ix.original or (await ix.wait_original(lambda m: True))
        assert reply.ephemeral and "did you mean --seed" in reply.content
        assert await env.service.store.stats() == {"delivered": 1}  # the refusal wrote nothing
        fake.assert_clean()


async def test_upscale_gives_that_tile_alone_and_variation_a_new_grid(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        grid_message = await imagine(env, {"prompt": "a cat", "n": 4, "seed": 11})
        job_id = job_id_of(grid_message)
        grid = np.asarray(grid_message.attachments[0].image().convert("RGB"), dtype=np.int16)
        click = await fake.click(grid_message, f"mb:up:{job_id}:2")
        single = await click.wait_original(has_file, timeout=60)
        tile = np.asarray(single.attachments[0].image().convert("RGB"), dtype=np.int16)
        assert tile.shape == (64, 64, 3)
        assert np.abs(tile - grid[0:64, 64:128]).max() <= 2  # image 2 is the top-right tile
        variation = await (await fake.click(grid_message, f"mb:var:{job_id}:1")).wait_original(
            has_file, timeout=60
        )
        assert variation.attachments[0].image().size == (128, 128)
        assert job_id_of(variation) != job_id
        fake.assert_clean()


async def test_buttons_work_after_a_restart(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_env(tiny_backend, tmp_path, fake) as env:
            message = await imagine(env, {"prompt": "a cat", "n": 1, "seed": 3})
            job_id = job_id_of(message)
        # A new process: new bot, new service, the same store file.
        async with discord_env(tiny_backend, tmp_path, fake) as env:
            reroll = await fake.click(message, f"mb:reroll:{job_id}")
            rerolled = await reroll.wait_original(has_file, timeout=60)
            new_id = job_id_of(rerolled)
            record = await env.service.store.get(new_id)
            assert record is not None and record.job.request.prompt == "a cat" and new_id != job_id
            fake.assert_clean()


async def test_delete_is_for_the_requester_or_a_moderator(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": "a cat", "n": 1}, user=fake.alice)
        job_id = job_id_of(message)
        refused = await fake.click(message, f"mb:del:{job_id}", user=fake.bob)
        assert "only the person who asked" in (await refused.wait_original(lambda m: True)).content
        assert not message.deleted
        record = await env.service.store.get(job_id)
        assert record is not None and record.result is not None and record.result.primary.path.exists()
        await fake.click(message, f"mb:del:{job_id}", user=fake.alice)
        await fake.wait_for(lambda: message.deleted, timeout=10)
        assert await env.service.store.get(job_id) is None  # its page answers 410 from now on
        assert await env.service.store.was_deleted(job_id)
        assert not record.result.primary.path.exists()
        fake.assert_clean()


async def test_cancel_a_queued_job_with_its_button(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False) as env:
        ix = await fake.slash_command("imagine", {"prompt": "never mind"})
        queued = await ix.wait_original(
            lambda m: any(c.startswith("mb:cancel:") for c in m.custom_ids), timeout=10
        )
        cancel_id = next(c for c in queued.custom_ids if c.startswith("mb:cancel:"))
        await fake.click(queued, cancel_id)
        final = await ix.wait_original(lambda m: "Cancelled" in m.content, timeout=10)
        assert not final.custom_ids
        record = await env.service.store.get(cancel_id.split(":")[2])
        assert record is not None and record.status is JobStatus.DELIVERED  # told, so delivered
        fake.assert_clean()


async def test_settings_need_manage_server_and_the_ban_list_refuses(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    admin_role = fake.add_role("admins", permissions=MANAGE_GUILD)
    admin = fake.add_user("boss", roles=[admin_role])
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        denied = await fake.slash_command("settings ban add", {"word": "cheese"}, user=fake.alice)
        assert "Manage Server" in (await denied.wait_original(lambda m: True)).content
        allowed = await fake.slash_command("settings ban add", {"word": "cheese"}, user=admin)
        shown = await allowed.wait_original(lambda m: True)
        assert shown.ephemeral and "cheese" in shown.content
        banned = await fake.slash_command("imagine", {"prompt": "a Cheese pizza"})
        refusal = await banned.wait_original(lambda m: True)
        assert refusal.ephemeral and "not allowed here" in refusal.content
        assert await env.service.store.stats() == {}
        fake.assert_clean()


async def test_nsfw_prompts_only_in_age_restricted_channels_and_dms(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        refused = await fake.slash_command("imagine", {"prompt": "nude statue", "n": 1})
        assert "age-restricted" in (await refused.wait_original(lambda m: True)).content
        allowed = await imagine(env, {"prompt": "nude statue", "n": 1}, channel_id=fake.channel("nsfw").id)
        assert allowed.attachments
        dm = await imagine(
            env, {"prompt": "a cat in a DM", "n": 1}, channel_id=fake.dm_channel(fake.alice).id
        )
        assert dm.attachments
        fake.assert_clean()


async def test_dms_can_be_switched_off(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, allow_dms=False):
        ix = await fake.slash_command(
            "imagine", {"prompt": "a cat"}, channel_id=fake.dm_channel(fake.alice).id
        )
        assert "does not work in DMs" in (await ix.wait_original(lambda m: True)).content
        fake.assert_clean()


async def test_meme_channel_trigger_and_hall_of_fame_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    memes, hall = fake.channel("memes"), fake.channel("general")
    async with discord_env(tiny_backend, tmp_path, fake, hall_of_fame_channel=hall.id, hall_of_fame_stars=2):
        await fake.post_user_message(memes, "!imagine a dancing frog --n 1", author=fake.alice)
        result = await fake.wait_for(
            lambda: next(
                (m for m in fake.messages_in(memes) if m.author.id == fake.bot.id and m.attachments), None
            ),
            timeout=60,
        )
        assert result.message_reference is not None  # a reply to the prompt
        assert any(
            "Queued" in str(v.get("content")) or "step" in str(v.get("content")) for v in result.history
        )
        await fake.post_user_message(memes, "just chatting", author=fake.bob)
        for user in (fake.alice, fake.bob, fake.add_user("carol")):
            await fake.add_reaction(memes, result, "⭐", user)
        await fake.wait_for(lambda: any(m.attachments for m in fake.messages_in(hall)), timeout=10)
        await asyncio.sleep(0.3)  # a third star must not re-post
        assert len([m for m in fake.messages_in(hall) if m.attachments]) == 1
        replies = [m for m in fake.messages_in(memes) if m.author.id == fake.bot.id]
        assert len(replies) == 1  # "just chatting" was not a prompt
        fake.assert_clean()


async def test_a_429_is_retried_and_the_result_still_arrives(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake):
        fake.rate_limit("PATCH", "/webhooks/*/*/messages/*", times=2, retry_after=0.2)
        ix = await fake.slash_command("imagine", {"prompt": "a cat", "n": 1})
        assert (await ix.wait_original(has_file, timeout=60)).attachments
        fake.assert_clean()


async def test_results_fit_a_small_attachment_limit(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake):
        ix = await fake.slash_command("imagine", {"prompt": "noise", "n": 9}, attachment_size_limit=40_000)
        message = await ix.wait_original(has_file, timeout=60)
        attachment = message.attachments[0]
        assert len(attachment.data) <= 40_000
        assert Image.open(io.BytesIO(attachment.data)).size[0] > 0
        fake.assert_clean()


async def test_a_burst_of_50_is_all_acknowledged_in_time(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, per_user=100, user_rate=100, server_rate=100) as env:
        interactions = await asyncio.gather(
            *(fake.slash_command("imagine", {"prompt": f"cat {i}", "n": 1}) for i in range(50))
        )
        answers = await asyncio.gather(*(ix.acknowledgement() for ix in interactions))
        assert [a.type for a in answers] == [5] * 50
        assert max(a.latency for a in answers) < 3.0
        for ix in interactions:  # every one ends with its grid
            await ix.wait_original(has_file, timeout=120)
        assert (await env.service.store.stats()) == {"delivered": 50}
        # Heartbeat regularity under this load is a measurement: benchmarks/bench_discord.py.
        fake.assert_clean(heartbeats=False)


def test_the_configured_urls_point_discord_py(fake_config: None = None) -> None:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    old = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    try:
        point_at(DiscordConfig(api_base_url="http://proxy.local/api/v10/", gateway_url="ws://gw.local/"))
        assert Route.BASE == "http://proxy.local/api/v10"
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "ws://gw.local/"
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old


async def test_animate_posts_a_clip(
    tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_video_backend, tmp_path, fake):
        ix = await fake.slash_command("animate", {"prompt": "will smith eating spaghetti", "seed": 5})
        message = await ix.wait_original(has_file, timeout=60)
        clip = message.attachments[0].image()
        assert clip.format == "GIF" and clip.n_frames == 8
        assert not any(c.startswith("mb:up:") for c in message.custom_ids)  # no tiles to pick in a clip
        fake.assert_clean()


async def test_progress_edits_stay_within_discords_rate(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        env.bot.config = env.bot.delivery.config = env.bot.config.model_copy(update={"edit_interval_s": 1.0})
        message = await imagine(env, {"prompt": "a cat", "n": 1, "steps": 40})
        assert message.max_edits_within(5.0) <= 6  # progress at most every second, plus the final edit
        fake.assert_clean()


async def test_meme_captions_an_attachment_and_a_previous_result(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (200, 150), (30, 90, 200)).save(picture, "PNG")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        upload = fake.store_attachment("photo.png", picture.getvalue())
        ix = await fake.slash_command("meme", {"image": upload, "top": "one does not", "bottom": "simply"})
        captioned = (await ix.wait_original(has_file, timeout=30)).attachments[0].image().convert("RGB")
        assert captioned.size == (200, 150)
        pixels = np.asarray(captioned)
        assert (pixels[:50] > 240).all(axis=2).any() and (pixels[:50] < 20).all(
            axis=2
        ).any()  # white + outline
        result = await imagine(env, {"prompt": "a cat", "n": 1})
        again = await fake.slash_command("meme", {"job": job_id_of(result), "bottom": "nice"})
        assert (await again.wait_original(has_file, timeout=30)).attachments
        fake.assert_clean()


async def test_queue_cancel_show_and_info(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False) as env:
        await (await fake.slash_command("imagine", {"prompt": "first"})).acknowledgement()
        first = await newest_job(env.service)
        queue = await fake.slash_command("queue")
        listing = await queue.wait_original(lambda m: True)
        assert listing.ephemeral and first.id in listing.content and "In the queue: 1" in listing.content
        choices = await fake.autocomplete("cancel", {"job": "fir"}, "job")
        assert (await choices.acknowledgement()).type == 8
        assert [c["value"] for c in choices.choices] == [first.id]
        refused = await fake.slash_command("cancel", {"job": first.id}, user=fake.bob)
        assert "only the person who asked" in (await refused.wait_original(lambda m: True)).content
        await (await fake.slash_command("cancel")).acknowledgement()  # alice's latest
        progress = fake.messages[int(first.reply_to["message_id"])]
        await fake.wait_for(lambda: "Cancelled" in progress.content, timeout=10)
        env.service.runner.worker.start()
        done = await imagine(env, {"prompt": "second", "n": 1})
        shown = await (await fake.slash_command("show", {"job": job_id_of(done)})).wait_original(
            has_file, timeout=10
        )
        assert job_id_of(done) in shown.content
        info = await (await fake.slash_command("info")).wait_original(lambda m: True)
        assert "tiny" in info.content and info.ephemeral
        assert "Last hour: 1 jobs finished" in info.content
        assert "Workers: 1: local (0 running)" in info.content
        fake.assert_clean()


async def test_buttons_can_be_kept_for_the_requester(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    admin = fake.add_user("boss", roles=[fake.add_role("admins", permissions=MANAGE_GUILD)])
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        await (
            await fake.slash_command("settings set", {"requester_only_buttons": True}, user=admin)
        ).acknowledgement()
        message = await imagine(env, {"prompt": "mine", "n": 1}, user=fake.alice)
        job_id = job_id_of(message)
        other = await fake.click(message, f"mb:reroll:{job_id}", user=fake.bob)
        assert "only the person who asked" in (await other.wait_original(lambda m: True)).content
        own = await fake.click(message, f"mb:reroll:{job_id}", user=fake.alice)
        assert (await own.wait_original(has_file, timeout=60)).attachments
        fake.assert_clean()


async def test_a_sharded_bot_connects(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, sharded=True) as env:
        assert type(env.bot).__name__ == "ShardedMemeBot"
        assert fake.requests_to("GET", "/gateway/bot")
        assert (await imagine(env, {"prompt": "a cat", "n": 1})).attachments
        fake.assert_clean()


async def test_running_needs_a_token(tiny_backend: DiffusersBackend, tmp_path: Path) -> None:
    from bot.discord import running
    from bot.settings import ConfigError, Secrets, Settings

    settings = Settings(discord=DiscordConfig(enabled=True), secrets=Secrets())
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        with pytest.raises(ConfigError, match="MEMEBOT_DISCORD_TOKEN"):
            async with running(settings, service):
                pass


async def test_running_serves_with_the_configured_urls(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route
    from pydantic import SecretStr

    from bot.discord import running
    from bot.settings import Secrets, Settings

    config = DiscordConfig(enabled=True, api_base_url=fake.api_base, gateway_url=fake.gateway_url)
    settings = Settings(discord=config, secrets=Secrets(discord_token=SecretStr(fake.token)))
    old = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path) as service:
            async with running(settings, service):
                await fake.wait_for_connection("identify")  # logged in, commands synced, gateway ready
                ix = await fake.slash_command("imagine", {"prompt": "a cat", "n": 1})
                assert (await ix.wait_original(has_file, timeout=60)).attachments
                fake.assert_clean()  # before the planned close below
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old


async def test_refusals_for_full_queues_rate_limits_and_server_limits(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    admin = fake.add_user("boss", roles=[fake.add_role("admins", permissions=MANAGE_GUILD)])

    async def refusal(options: dict[str, Any], user: Any) -> str:
        ix = await fake.slash_command("imagine", options, user=user)
        message = await ix.wait_original(lambda m: True)
        assert message.ephemeral
        return message.content

    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False, per_user=1, user_rate=1) as env:
        await (await fake.slash_command("imagine", {"prompt": "one"}, user=fake.alice)).acknowledgement()
        await newest_job(env.service)
        assert "already have 1 jobs waiting" in await refusal({"prompt": "two"}, fake.alice)
        await (await fake.slash_command("imagine", {"prompt": "b1"}, user=fake.bob)).acknowledgement()
        await fake.wait_for(
            lambda: len(fake.requests_to("GET", "/webhooks/*/*/messages/@original")) >= 2, timeout=5
        )
        await env.service.cancel((await newest_job(env.service)).id)
        assert "asking too fast" in await refusal({"prompt": "b2"}, fake.bob)
        await (
            await fake.slash_command("settings set", {"max_n": 4, "allow_nsfw": False}, user=admin)
        ).acknowledgement()
        assert "at most 4 on this server" in await refusal({"prompt": "x", "n": 9}, admin)
        nsfw = fake.channel("nsfw").id
        ix = await fake.slash_command("imagine", {"prompt": "nude statue"}, user=admin, channel_id=nsfw)
        assert "does not allow" in (await ix.wait_original(lambda m: True)).content
        fake.assert_clean()


async def test_spoilers_outside_age_restricted_channels(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, spoiler_outside_nsfw=True) as env:
        general = await imagine(env, {"prompt": "a cat", "n": 1})
        assert general.attachments[0].filename.startswith("SPOILER_")
        nsfw = await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=fake.channel("nsfw").id)
        assert not nsfw.attachments[0].filename.startswith("SPOILER_")
        fake.assert_clean()


async def test_meme_refuses_a_pixel_bomb_and_a_text_file_with_one_clear_line(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    from tests.generators.test_intake import png_bomb

    data = png_bomb(13000)  # seconds of compression: before the bot runs, so no heartbeat waits on it
    async with discord_env(tiny_backend, tmp_path, fake):
        bomb = fake.store_attachment("bomb.png", data)
        ix = await fake.slash_command("meme", {"image": bomb, "top": "boom"})
        # Refused from the size Discord reports, before a byte is downloaded.
        refusal = await ix.wait_original(lambda m: "pixels" in m.content, timeout=30)
        assert "13000×13000 pixels; the limit is 4096×4096" in refusal.content and not refusal.attachments
        assert fake.attachment_downloads == []
        text = fake.store_attachment("notes.png", b"this is text, not a picture")
        ix = await fake.slash_command("meme", {"image": text, "top": "hm"})
        assert "not an image" in (await ix.followup(timeout=30)).content
        assert fake.attachment_downloads == [text.id]  # this one was fetched, to be read
        fake.assert_clean()
