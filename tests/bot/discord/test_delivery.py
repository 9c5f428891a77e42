"""Delivery: events after close() start nothing; flagged results never reach a safe channel plain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from bot.discord._delivery import WITHHELD, Delivery
from bot.settings import DiscordConfig
from generators.pipelines import DiffusersBackend
from generators.requests import Cancelled, GenerationResult, Started
from generators.results import render_job
from generators.safety.classifier import Classifier
from tests.bot.discord.test_bot import MANAGE_GUILD, delivered, discord_env, imagine, job_id_of, newest_job
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage
from tests.generators.test_safety import flagging


async def test_events_after_close_are_left_for_the_next_start() -> None:
    delivery = Delivery(cast(Any, None), cast(Any, None), DiscordConfig())
    await delivery.close()
    delivery.on_event("job1", Started(1))  # the service still reports while it drains
    delivery.on_event("job1", Cancelled())
    assert delivery._tracked == {}  # no task that would read the store after it closed


# Flagged results. The worker's renders are judged by a stand-in classifier that flags the tiles it is
# told to (random-weight models draw no nudity); everything else is the real path: the tiny model, the
# render, the store, discord.py, the fake Discord.


def judging_with(classifier: Classifier) -> Callable[..., GenerationResult]:
    """render_job, judging with ``classifier`` whatever the worker passes (its own is off here)."""

    def judged(*args: Any, **kwargs: Any) -> GenerationResult:
        return render_job(*args, **{**kwargs, "classifier": classifier})

    return judged


@pytest.fixture
def flag(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make the worker judge its renders with a classifier that flags ``tiles`` of a grid of ``count``."""

    def flagging_tiles(*tiles: int, count: int = 1) -> None:
        monkeypatch.setattr("generators.worker.render_job", judging_with(flagging(*tiles, count=count)))

    return flagging_tiles


async def withheld(ix: FakeInteraction) -> FakeMessage:
    """The ephemeral notice that replaces a withheld result; the public message is gone."""
    notice = await ix.followup(0, timeout=60)
    await ix.wait_original(lambda m: m.deleted)
    return notice


async def test_a_flagged_picture_in_a_safe_channel_is_blocked_by_default(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(0)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        ix = await fake.slash_command("imagine", {"prompt": "a person on a beach", "n": 1})
        notice = await withheld(ix)
        assert notice.ephemeral and not notice.attachments and "flagged" in notice.content
        assert not any(m.attachments for m in fake.messages_in(fake.channel("general")) if not m.deleted)
        record = await delivered(env.service, (await newest_job(env.service)).id)
        assert record.result is not None and record.result.flagged and record.result.nsfw == (0,)
        fake.assert_clean()


async def test_a_server_can_choose_a_spoiler_for_flagged_pictures(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    admin = fake.add_user("boss", roles=[fake.add_role("admins", permissions=MANAGE_GUILD)])
    flag(0)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        chosen = await fake.slash_command("settings set", {"flagged": "spoiler"}, user=admin)
        assert (
            "image check flags, outside age-restricted channels: spoiler"
            in (await chosen.wait_original(lambda m: True)).content
        )
        message = await imagine(env, {"prompt": "a person on a beach", "n": 1})
        assert message.attachments[0].filename.startswith("SPOILER_")
        fake.assert_clean()


async def test_the_bots_default_can_be_a_spoiler(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(0)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        env.bot.delivery.flagged_default = "spoiler"
        message = await imagine(env, {"prompt": "a person on a beach", "n": 1})
        assert message.attachments[0].filename.startswith("SPOILER_")
        fake.assert_clean()


async def test_only_the_flagged_tiles_of_a_grid_are_hidden(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(1, 2, count=4)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": "people on a beach", "n": 4})
        record = await delivered(env.service, job_id_of(message))
        assert record.result is not None and record.result.nsfw == (1, 2)
        stored = Image.open(record.result.primary.path).convert("RGB")
        posted = message.attachments[0].image().convert("RGB")
        assert posted.size == stored.size == (128, 128)
        for index, box in enumerate([(0, 0, 64, 64), (64, 0, 128, 64), (0, 64, 64, 128), (64, 64, 128, 128)]):
            same = np.array_equal(np.asarray(posted.crop(box)), np.asarray(stored.crop(box)))
            assert same is (index not in (1, 2)), index
        assert f"mb:up:{record.id}:2" in message.custom_ids  # the buttons stay
        fake.assert_clean()


async def test_flagged_results_are_shown_as_they_are_where_age_restricted_prompts_are(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(0)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        nsfw = await imagine(env, {"prompt": "a person", "n": 1}, channel_id=fake.channel("nsfw").id)
        flag(0)
        dm = await imagine(env, {"prompt": "a person", "n": 1}, channel_id=fake.dm_channel(fake.alice).id)
        for message in (nsfw, dm):
            record = await delivered(env.service, job_id_of(message))
            assert record.result is not None and record.result.flagged
            attachment = message.attachments[0]
            assert not attachment.filename.startswith("SPOILER_")
            assert attachment.data == record.result.primary.path.read_bytes()  # the very file
        fake.assert_clean()


async def test_a_flagged_meme_channel_result_becomes_a_notice(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(0)
    memes = fake.channel("memes")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        await fake.post_user_message(memes, "!imagine a person on a beach --n 1", author=fake.alice)
        record = await delivered(env.service, (await newest_job(env.service)).id)
        replies = [m for m in fake.messages_in(memes) if m.author.id == fake.bot.id]
        assert [m.content for m in replies] == [WITHHELD] and not replies[0].attachments
        assert record.result is not None and record.result.flagged
        fake.assert_clean()


async def test_a_flagged_clip_is_withheld_or_spoilered_whole(
    tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord, flag: Callable[..., None]
) -> None:
    flag(2, count=4)  # the third of the four frames judged
    async with discord_env(tiny_video_backend, tmp_path, fake) as env:
        blocked = await fake.slash_command("animate", {"prompt": "a dancer", "seed": 5})
        assert "flagged" in (await withheld(blocked)).content
        flag(0)
        env.bot.delivery.flagged_default = "spoiler"
        ix = await fake.slash_command("animate", {"prompt": "a dancer", "seed": 6})
        clip = await ix.wait_original(lambda m: bool(m.attachments), timeout=60)
        assert clip.attachments[0].filename.startswith("SPOILER_") and clip.attachments[0].filename.endswith(
            ".gif"
        )
        record = await delivered(env.service, (await newest_job(env.service)).id)
        assert record.result is not None and record.result.nsfw == (0,)
        fake.assert_clean()
