"""Remix on Discord: /imagine's image, the message menu, the 🎨 button and meme-channel replies, and the
pictures each of them refuses. The real discord.py against the fake Discord, the real tiny pipeline.

Each way in must deliver a result whose stored request names its picture, and a different picture with
the same seed must give a different result.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.discord._buttons import result_view
from bot.store import JobRecord
from generators.intake import MEDIA_HOSTS
from generators.pipelines import DiffusersBackend
from generators.requests import Source
from tests import pictures
from tests.bot.discord.test_bot import Env, delivered, discord_env, has_file, imagine, job_id_of
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage

MENU = "Remix with memebot"


def picture(kind: str, width: int = 64) -> bytes:
    """A PNG 64 high: a left-to-right gradient ("ramp") or a checkerboard ("checks")."""
    x, y = np.meshgrid(np.arange(width), np.arange(64))
    if kind == "ramp":
        pixels = np.stack([x * 4 % 256, y * 4, 255 - x * 4 % 256], axis=-1)
    else:
        pixels = np.where(((x // 8 + y // 8) % 2)[..., None] == 1, 230, 20).repeat(3, axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def declared_png(side: int) -> bytes:
    """A PNG that declares ``side``×``side`` pixels but holds one row: what Discord reports of it is all
    that matters, since the bot must never download it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(1 + 3 * side))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def result_of(env: Env, message: FakeMessage) -> tuple[JobRecord, Source, bytes]:
    """The delivered job of a result message, its stored source, and its result file's bytes."""
    record = await delivered(env.service, job_id_of(message))
    source = record.job.request.source
    assert source is not None and record.result is not None
    return record, source, record.result.primary.path.read_bytes()


def metadata_source(record: JobRecord) -> str:
    assert record.result is not None
    with Image.open(record.result.primary.path) as image:
        return str(image.info["source"])


async def refusal(fake: FakeDiscord, ix: FakeInteraction) -> FakeMessage:
    """The member's own refusal: the answer itself, or a follow-up once a "thinking…" was withdrawn."""
    return await fake.wait_for(
        lambda: next((m for m in ix.messages if m.ephemeral), None), timeout=30, what=f"a refusal of {ix}"
    )


async def test_imagine_remixes_an_attached_picture(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    ramp, checks = picture("ramp"), picture("checks")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        first = await imagine(
            env,
            {"prompt": "a cat --strength 0.8", "image": fake.store_attachment("ramp.png", ramp), "seed": 5},
        )
        record, source, made_from_ramp = await result_of(env, first)
        assert source.digest == sha256(ramp) and not source.job
        assert record.job.request.strength == 0.8 and record.job.request.seed == 5
        assert metadata_source(record) == f"sha256:{sha256(ramp)}"
        assert f"remix of image sha256:{sha256(ramp)[:12]}… at strength 0.8" in first.content
        upload = fake.store_attachment("checks.png", checks)
        second = await imagine(env, {"prompt": "a cat", "image": upload, "seed": 5, "strength": 0.8})
        record, source, made_from_checks = await result_of(env, second)
        assert source.digest == sha256(checks) and record.job.request.strength == 0.8
        assert made_from_checks != made_from_ramp  # the same seed and prompt, another picture
        wide = fake.store_attachment("wide.png", picture("ramp", width=114))
        record, _, _ = await result_of(env, await imagine(env, {"prompt": "a cat --n 1", "image": wide}))
        assert record.job.request.aspect == (16, 9)  # the picture's shape, as no --ar was given
        square = fake.store_attachment("wide.png", picture("ramp", width=114))
        record, _, _ = await result_of(
            env, await imagine(env, {"prompt": "a cat --n 1 --ar 1:1", "image": square})
        )
        assert record.job.request.aspect == (1, 1)
        fake.assert_clean()


async def test_the_message_menu_remixes_an_attachment_or_an_embedded_picture(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    ramp, checks = picture("ramp"), picture("checks")
    general = fake.channel("general")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        attached = await fake.post_user_message(
            general, "look", attachments=[fake.store_attachment("ramp.png", ramp)], author=fake.bob
        )
        opened = await fake.message_command(MENU, attached)
        assert (await opened.acknowledgement()).type == 9
        assert opened.modal is not None and opened.modal["title"] == MENU
        assert set(opened.text_inputs()) == {"prompt"}  # one picture: nothing to pick
        submitted = await fake.submit_modal(opened, {"prompt": "a dog --seed 3 --n 1"})
        assert (await submitted.acknowledgement()).type == 5
        record, source, from_ramp = await result_of(env, await submitted.wait_original(has_file, timeout=60))
        assert source.digest == sha256(ramp) and record.job.owner == f"discord:{fake.alice.id}"
        assert metadata_source(record) == f"sha256:{sha256(ramp)}"
        # A picture posted as a link to Discord's own media shows as an embed: that works too.
        hosted = fake.store_attachment("checks.png", checks)
        linked = await fake.post_user_message(
            general, hosted.url, embeds=[{"thumbnail": {"url": hosted.url, "width": 64, "height": 64}}]
        )
        opened = await fake.message_command(MENU, linked)
        submitted = await fake.submit_modal(opened, {"prompt": "a dog --seed 3 --n 1"})
        _, source, from_checks = await result_of(env, await submitted.wait_original(has_file, timeout=60))
        assert source.digest == sha256(checks) and from_checks != from_ramp
        fake.assert_clean()


async def test_the_remix_button_starts_from_the_tile_picked_at_its_seed(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        grid = await imagine(env, {"prompt": "a cat", "n": 4, "seed": 11})
        job_id = job_id_of(grid)
        grid_record = await delivered(env.service, job_id)
        assert grid_record.result is not None
        seeds = grid_record.result.seeds

        async def remix(values: dict[str, str]) -> tuple[JobRecord, Source, bytes]:
            opened = await fake.click(grid, f"mb:remix:{job_id}")
            assert (await opened.acknowledgement()).type == 9
            inputs = opened.text_inputs()
            assert "--seed 11" in str(inputs["prompt"]["value"]) and inputs["index"]["value"] == "1"
            submitted = await fake.submit_modal(opened, values)
            return await result_of(env, await submitted.wait_original(has_file, timeout=60))

        second, source, from_second = await remix(
            {"prompt": "a cat in the snow --n 1 --seed 11", "index": "2"}
        )
        assert source.job == job_id and second.job.request.seed == seeds[1]
        assert metadata_source(second) == f"job {job_id}"
        third, other, from_third = await remix({"prompt": "a cat in the snow --n 1 --seed 11", "index": "3"})
        assert other.job == job_id and other.digest != source.digest and third.job.request.seed == seeds[2]
        assert from_third != from_second
        chosen, _, _ = await remix({"prompt": "a cat in the snow --n 1 --seed 99", "index": "2"})
        assert chosen.job.request.seed == 99  # a seed the member typed is kept
        fake.assert_clean()


async def test_a_meme_channel_reply_remixes_the_picture_replied_to(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    memes = fake.channel("memes")
    ramp, checks = picture("ramp"), picture("checks")

    async def reply_to(data: bytes, name: str, *, sent_along: bool = True) -> tuple[JobRecord, Source, bytes]:
        shared = await fake.post_user_message(
            memes, "", attachments=[fake.store_attachment(name, data)], author=fake.bob, announce=sent_along
        )
        prompt = await fake.post_user_message(
            memes, "!imagine a frog --n 1 --seed 4", reply_to=shared, send_replied=sent_along
        )

        def answer() -> FakeMessage | None:
            return next(
                (
                    m
                    for m in fake.messages_in(memes)
                    if m.attachments
                    and m.author.id == fake.bot.id
                    and (m.message_reference or {}).get("message_id") == str(prompt.id)
                ),
                None,
            )

        message = await fake.wait_for(answer, timeout=60, what="the remix")
        return await result_of(env, message)

    async with discord_env(tiny_backend, tmp_path, fake) as env:
        record, source, from_ramp = await reply_to(ramp, "ramp.png")
        assert source.digest == sha256(ramp) and metadata_source(record) == f"sha256:{sha256(ramp)}"
        _, source, from_checks = await reply_to(checks, "checks.png")
        assert source.digest == sha256(checks) and from_checks != from_ramp
        record, _, _ = await reply_to(picture("checks", width=192), "wide.png")
        assert record.job.request.aspect == (3, 1)  # the picture's shape
        assert len(fake.attachment_downloads) == 3  # each picture once
        assert not fake.requests_to("GET", "/channels/{channel_id}/messages/{message_id}")
        # Discord may leave the replied-to message out of the event: then the bot fetches it.
        _, source, _ = await reply_to(ramp, "again.png", sent_along=False)
        assert source.digest == sha256(ramp)
        assert fake.requests_to("GET", "/channels/{channel_id}/messages/{message_id}")
        fake.assert_clean()


async def test_bad_pictures_get_one_clear_refusal(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    general = fake.channel("general")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        bomb = fake.store_attachment("bomb.png", declared_png(13000))
        ix = await fake.slash_command("imagine", {"prompt": "boom", "image": bomb})
        refused = await refusal(fake, ix)
        assert "13000×13000 pixels; the limit is 4096×4096" in refused.content
        assert (await ix.acknowledgement()).type == 4  # refused at once, before a byte was fetched
        bomb_post = await fake.post_user_message(general, "", attachments=[bomb])
        menu = await fake.message_command(MENU, bomb_post)
        assert "13000×13000" in (await refusal(fake, menu)).content and menu.modal is None
        assert fake.attachment_downloads == []

        text = fake.store_attachment("notes.png", b"this is text, not a picture")
        ix = await fake.slash_command("imagine", {"prompt": "a cat", "image": text})
        assert "not an image" in (await refusal(fake, ix)).content
        assert ix.original is not None and ix.original.deleted  # the "thinking…" was taken back
        assert fake.attachment_downloads == [text.id]

        for message in (
            await fake.post_user_message(general, "just words"),
            await fake.post_user_message(
                general, "elsewhere", embeds=[{"image": {"url": "https://example.com/cat.png"}}]
            ),
        ):
            menu = await fake.message_command(MENU, message)
            refused = await refusal(fake, menu)
            assert refused.content == "❌ that message has no picture I can use" and menu.modal is None

        # In a meme channel, a reply to a picture over the byte cap: refused from its reported size.
        memes = fake.channel("memes")
        big = fake.store_attachment("big.png", bytes(env.service.limits.max_image_bytes + 1))
        shared = await fake.post_user_message(memes, "", attachments=[big], author=fake.bob)
        await fake.post_user_message(memes, "!imagine a frog", reply_to=shared)
        answer = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(memes) if m.author.id == fake.bot.id), None)
        )
        assert answer.content == "❌ the image is over 8 MiB; send a smaller one"
        assert fake.attachment_downloads == [text.id]

        ix = await fake.slash_command("imagine", {"prompt": "a cat --strength 0.5"})
        assert "--strength needs a picture" in (await refusal(fake, ix)).content
        assert await env.service.store.stats() == {}
        fake.assert_clean()


async def test_only_discords_own_media_hosts_are_fetched(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, loopback_pictures=False) as env:
        assert env.bot.remixes.fetcher.hosts == MEDIA_HOSTS["discord"]
        # The fake serves its files on 127.0.0.1, which is not Discord's: refused, never fetched.
        upload = fake.store_attachment("ramp.png", picture("ramp"))
        post = await fake.post_user_message(fake.channel("general"), "", attachments=[upload])
        opened = await fake.message_command(MENU, post)
        submitted = await fake.submit_modal(opened, {"prompt": "a dog"})
        refused = await refusal(fake, submitted)
        assert "only come from this platform's own uploads" in refused.content
        assert fake.attachment_downloads == [] and await env.service.store.stats() == {}
        fake.assert_clean()


def test_only_pictures_get_the_remix_button() -> None:
    def ids(view: Any) -> list[str]:
        return [item.item.custom_id for item in view.children]

    assert "mb:remix:abcdefgh" in ids(result_view("abcdefgh", 4))
    assert "mb:remix:abcdefgh" not in ids(result_view("abcdefgh", 0))  # a clip


async def test_someone_elses_age_restricted_result_is_not_theirs_to_remix(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        made = await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=fake.channel("nsfw").id)
        button = f"mb:remix:{job_id_of(made)}"
        refused = await fake.click(made, button, user=fake.bob)
        assert "age-restricted" in (await refusal(fake, refused)).content and refused.modal is None
        opened = await fake.click(made, button, user=fake.alice)
        assert (await opened.acknowledgement()).type == 9
        assert "index" not in opened.text_inputs()  # one image: nothing to pick
        fake.assert_clean()


async def test_a_picture_that_would_wedge_the_intake_gets_one_line_and_no_thinking_left(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    """A garbage EXIF chunk used to escape the intake's handling (an ERROR, a stranded "thinking…");
    a scan bomb and a TIFF passed every cap Discord reports and reached a decoder."""
    memes = fake.channel("memes")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        for name, data, why in (
            ("exif.png", pictures.garbage_exif_png(), "damaged or cut short"),
            ("bomb.jpg", pictures.scan_bomb(1024, 5000), "drawn in more than 32 passes"),
            (
                "scan.png",  # named a PNG, so Discord reports one: the bytes are a TIFF
                pictures.not_taken()["tiff"],
                "not an image this bot can read",
            ),
        ):
            upload = fake.store_attachment(name, data)
            ix = await fake.slash_command("imagine", {"prompt": "a cat", "image": upload})
            refused = await refusal(fake, ix)
            assert refused.content.startswith("❌ ") and why in refused.content
            assert "\n" not in refused.content
            assert ix.original is not None and ix.original.deleted  # the "thinking…" was taken back

            # The same picture replied to in a meme channel: one reply, no silence.
            shared = await fake.post_user_message(memes, "", attachments=[upload], author=fake.bob)
            prompt = await fake.post_user_message(memes, "!imagine a frog", reply_to=shared)
            answer = await fake.wait_for(
                lambda prompt=prompt: next(
                    (
                        m
                        for m in fake.messages_in(memes)
                        if m.author.id == fake.bot.id
                        and (m.message_reference or {}).get("message_id") == str(prompt.id)
                    ),
                    None,
                ),
                timeout=30,
                what="the meme channel's answer",
            )
            assert answer.content.startswith("❌") and why in answer.content and not answer.attachments
        # A TIFF reported as one is refused from what Discord says, before a byte is fetched.
        honest = fake.store_attachment("scan.tiff", pictures.not_taken()["tiff"])
        ix = await fake.slash_command("imagine", {"prompt": "a cat", "image": honest})
        assert "not an image this bot can read" in (await refusal(fake, ix)).content
        assert (await ix.acknowledgement()).type == 4 and honest.id not in fake.attachment_downloads
        assert await env.service.store.stats() == {}
        fake.assert_clean()


async def test_a_typed_image_number_that_is_no_plain_number_gets_a_clear_answer(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        grid = await imagine(env, {"prompt": "a cat", "n": 4, "seed": 11})
        job_id = job_id_of(grid)
        for typed in ("²", "٣", "x"):  # isdigit() took "²" and int() raised; int("٣") is 3
            opened = await fake.click(grid, f"mb:remix:{job_id}")
            submitted = await fake.submit_modal(opened, {"prompt": "a cat --n 1", "index": typed})
            refused = await refusal(fake, submitted)
            assert refused.content == "❌ give the number of the image to start from, like 1"
            assert (await submitted.acknowledgement()).type == 4  # answered at once: no "thinking…"
        opened = await fake.click(grid, f"mb:remix:{job_id}")
        submitted = await fake.submit_modal(opened, {"prompt": "a cat --n 1", "index": "5"})
        assert "pick an image from 1 to 4" in (await refusal(fake, submitted)).content
        assert len(await env.service.store.recent(10)) == 1  # nothing was queued
        fake.assert_clean()


async def test_a_picture_link_that_cannot_be_parsed_is_no_picture(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    general = fake.channel("general")
    async with discord_env(tiny_backend, tmp_path, fake, loopback_pictures=False):
        for url in ("https://[::1/cat.png", "https://example.com\uff03@cdn.discordapp.com/cat.png"):
            post = await fake.post_user_message(general, url, embeds=[{"thumbnail": {"url": url}}])
            menu = await fake.message_command(MENU, post)
            refused = await refusal(fake, menu)
            assert refused.content == "❌ that message has no picture I can use" and menu.modal is None
        assert fake.attachment_downloads == []
        fake.assert_clean()
