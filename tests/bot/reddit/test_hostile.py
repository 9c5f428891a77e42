"""A hostile Redditor's mentions: whatever they type is echoed inert, and every reply fits."""

from __future__ import annotations

from pathlib import Path

from bot.reddit._text import MAX_COMMENT
from generators.pipelines import DiffusersBackend
from tests.bot.reddit.test_text import HOSTILE, inert
from tests.bot.reddit.world import answered, run_bot
from tests.fakes.reddit import FakeReddit


async def test_a_hostile_prompt_is_echoed_inert_on_reddit(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention(f"u/memebot imagine {HOSTILE} --seed 3", author="mallory")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 1
        await answered(world, mention)
    (reply,) = fake.replies_to(mention)
    page = f"({world.settings.web.public_url}/"
    title, rest = reply.body.split(page, 1)
    inert(title)
    command = rest.split("Make it again: ", 1)[1].split("\n", 1)[0]
    assert command.startswith("`u/memebot # heading [Free Nitro]")  # a code span: shown, never a link


async def test_a_refused_6000_character_caption_is_answered_within_the_limit(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    caption = ("[Free Nitro](https://nitro.example) u/someone " * 140)[:6000]
    mention = fake.mention(f'u/memebot a cat --top "{caption}"', author="mallory")
    model = fake.mention("u/memebot a cat --model [Free](https://x.example) r/sub", author="eve")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, mention)
        await answered(world, model)
    for fullname in (mention, model):
        (reply,) = fake.replies_to(fullname)
        assert len(reply.body) <= MAX_COMMENT
        inert(reply.body.split("\n\n---\n")[0])
