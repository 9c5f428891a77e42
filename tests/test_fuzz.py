"""Hostile text through the Discord and Reddit command paths: a refusal or a valid request, never a crash.

Each path is the pure functions its adapter calls between receiving text and queueing a job (the slash
options joined into a command line, a meme channel's trigger, a Reddit mention; the one grammar; the
catalog's checks; Discord's moderation), so thousands of inputs run in seconds without a client. A
refusal is a UserError whose message fits the platform's reply; anything else that escapes is a crash.
``benchmarks/fuzz.py`` runs the same paths 10,000 times each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.discord._bot import MemeBot
from bot.discord._commands import Generation, command_text
from bot.discord._policy import GuildSettings
from bot.discord._requests import Requests
from bot.jobs import JobService
from bot.reddit._intake import Item, command_of
from bot.reddit._text import message_reply
from bot.settings import DiscordConfig, RedditConfig
from generators.config import LimitsConfig, ModelConfig
from generators.errors import UserError
from generators.intake import MEDIA_HOSTS, BadImage, IntakeLimits, allowed, decode
from generators.models import Catalog, describe_model, work_of
from generators.requests import GenerationRequest, Kind
from generators.sources import SourceStore
from tests import pictures

DISCORD_LIMIT = 2000  # characters in one message
REDDIT_LIMIT = 10_000  # characters in one comment
BOT_ID = 4242
USERNAME = "memebot"
CHANNEL = 77

LIMITS = LimitsConfig()
MODELS = {
    "tiny": ModelConfig(name="tiny"),
    "tiny-video": ModelConfig(name="tiny-video"),
    "sd-turbo": ModelConfig(name="sd-turbo"),
    "big": ModelConfig(name="someone/sdxl", size=1024),  # a cap that --n 9 at its default steps passes
}
CATALOG = Catalog(
    tuple(describe_model(config, name) for name, config in MODELS.items()), image="tiny", video="tiny-video"
)
GUILDS = (
    GuildSettings(),
    GuildSettings(ban_words=("badword",), max_n=4, allow_nsfw=False, models={"image": "sd-turbo"}),
)

# Pieces that mean something to some layer: flags (and phones' dashes), numbers that are not quite
# numbers, model names, mentions, markdown, Reddit's escapes and quotes, invisible characters.
WORDS = (
    "--n", "--seed", "--ar", "--steps", "--model", "--no", "--top", "--bottom", "--video", "--N", "--x",
    "—n", "–steps", "--", "-", "9", "0", "50", "51", "4294967296", "-1", "٣", "²", "４", "1e3", "0x10",
    "16:9", "3:1", "4:1", "0:5", "99999:1", "1:", ":", "tiny", "tiny-video", "sd-turbo", "big", "TINY",
    "a cat", "@everyone", "@here", f"<@{BOT_ID}>", f"<@!{BOT_ID}>", "<@&1>", "<#1>", "[x](https://e.x)",
    "**", "`", "```", "||", "\\", "\\-\\-n", "u/memebot", "/u/MemeBot", "u/memebot_", "imagine",
    "imagine:", "!imagine", "!IMAGINE", "> ", ">", "badword", "bad\u200bword", "nude", "ｎｕｄｅ",
    "\u200b", "\u202e", "\ufeff", "\x00", "\r", "\u2028", "\t", "x" * 700, "9" * 5000, "--n " + "9" * 50,
)  # fmt: skip
_SEPARATORS = st.sampled_from([" ", " ", "\n", "", "  ", "\u00a0"])
_PIECES = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
hostile = st.lists(st.tuples(_PIECES, _SEPARATORS).map("".join), max_size=14).map("".join)
slash_options = st.fixed_dictionaries(
    {},
    optional={
        "negative": hostile,
        "n": st.integers(1, 9),
        "seed": st.integers(0, 2**32 - 1),
        "aspect": st.sampled_from(["1:1", "16:9", "9:16", "3:2", "2:3", "4:3"]),
        "steps": st.integers(1, 100),
        "top": hostile,
        "bottom": hostile,
        "video": st.booleans(),
        "model": st.one_of(st.sampled_from(list(MODELS)), hostile.filter(bool)),
    },
)

meme_triggers = st.sampled_from(
    ["!imagine ", "!IMAGINE", f"<@{BOT_ID}> ", f"<@!{BOT_ID}>", "", "!imagine--n"]
)

reddit_starts = st.sampled_from(
    [
        "u/memebot ",
        "/u/MemeBot imagine: ",
        "hey u/memebot imagine ",
        "thanks u/memebot",
        "> u/memebot ",
        "!imagine ",
        "",
    ]
)


def service() -> JobService:
    """The job service as far as parsing goes: the limits and the catalog, no store or worker."""
    runner = SimpleNamespace(catalog=CATALOG)
    sources = SourceStore(Path("unused"), IntakeLimits())
    return JobService(None, runner, LIMITS, budget_bytes=10 * 1024 * 1024, sources=sources)  # type: ignore[arg-type]


def discord_requests() -> Requests:
    """Discord's checks with its default config (and NSFW words) on the service above."""
    return Requests(service(), DiscordConfig())


def discord_slash(
    requests: Requests, prompt: str, options: dict[str, Any], guild: GuildSettings
) -> GenerationRequest:
    """/imagine: the model option checked, the options joined into one command line, then checked."""
    options = dict(options)
    cog = SimpleNamespace(service=requests.service)
    options["model"] = Generation.checked_model(cog, options.get("model"), None)  # type: ignore[arg-type]
    request = requests.parse(command_text(prompt, **options), guild, CHANNEL)
    return _moderated(requests, request, guild)


def discord_meme_channel(requests: Requests, content: str, guild: GuildSettings) -> GenerationRequest | None:
    """A message in a meme channel: the trigger or a mention of the bot, then the same checks."""
    bot = SimpleNamespace(config=requests.config, user=SimpleNamespace(id=BOT_ID))
    text = MemeBot._prompt_in(bot, content)  # type: ignore[arg-type]
    if text is None:
        return None
    return _moderated(requests, requests.parse(text, guild, CHANNEL), guild)


def _moderated(requests: Requests, request: GenerationRequest, guild: GuildSettings) -> GenerationRequest:
    requests.moderation.check_banned(request, guild)
    requests.moderation.check_size(request, guild)
    requests.moderation.check_nsfw(request, guild, age_restricted=False)
    return requests.moderation.with_negative_prefix(request)


def reddit_comment(jobs: JobService, body: str, from_inbox: bool) -> GenerationRequest | None:
    """A comment in the inbox or a watched subreddit: its command, if any, parsed."""
    item = Item("t1_fuzz", "someone", "memes", body, 0.0, from_inbox)
    command = command_of(item, USERNAME, RedditConfig().trigger)
    return None if command is None else jobs.parse(command)


def outcome(
    path: Callable[[], GenerationRequest | None], limit: int, reply: Callable[[str], str] = str
) -> str:
    """Which of "request", "refused" or "ignored" came out; raises (a crash) for anything else."""
    try:
        request = path()
    except UserError as error:
        message = str(error)
        assert message, f"{type(error).__name__} without a message"
        assert len(reply(message)) <= limit, f"a {len(reply(message))}-character reply"
        return "refused"
    if request is None:
        return "ignored"
    check_request(request)
    return "request"


def check_request(request: GenerationRequest) -> None:
    """What every queued request may rely on."""
    assert request.model is not None and request.model in CATALOG
    model = CATALOG.get(request.model)
    assert request.kind is model.kind
    assert request.prompt and len(request.prompt) <= LIMITS.max_prompt_chars
    assert 1 <= request.n <= LIMITS.max_n and (request.kind is Kind.IMAGE or request.n == 1)
    assert request.steps is None or 1 <= request.steps <= min(model.max_steps, LIMITS.max_steps)
    assert max(request.aspect) / min(request.aspect) <= LIMITS.max_aspect
    assert work_of(request, model) <= model.max_work
    assert len(request.top) <= LIMITS.max_caption_chars and len(request.bottom) <= LIMITS.max_caption_chars


REQUESTS = discord_requests()


@settings(max_examples=100, deadline=None)
@given(hostile, slash_options, st.sampled_from(GUILDS))
def test_discord_slash_commands_refuse_or_queue(
    prompt: str, options: dict[str, Any], guild: GuildSettings
) -> None:
    outcome(lambda: discord_slash(REQUESTS, prompt, options, guild), DISCORD_LIMIT)


@settings(max_examples=80, deadline=None)
@given(meme_triggers, hostile)
def test_discord_meme_channel_messages_refuse_queue_or_are_ignored(trigger: str, rest: str) -> None:
    outcome(lambda: discord_meme_channel(REQUESTS, trigger + rest, GUILDS[0]), DISCORD_LIMIT)


@settings(max_examples=120, deadline=None)
@given(reddit_starts, hostile, st.booleans())
def test_reddit_comments_refuse_queue_or_are_ignored(start: str, rest: str, from_inbox: bool) -> None:
    jobs = REQUESTS.service

    def reply(message: str) -> str:
        return message_reply(message, username=USERNAME)

    outcome(lambda: reddit_comment(jobs, start + rest, from_inbox), REDDIT_LIMIT, reply)


def test_the_hostile_pieces_reach_every_outcome() -> None:
    """The fuzz means something only if its inputs get past the triggers and the grammar."""
    assert (
        outcome(lambda: discord_slash(REQUESTS, "a cat", {"model": "big", "n": 2}, GUILDS[0]), 1) == "request"
    )
    assert (
        outcome(lambda: discord_meme_channel(REQUESTS, "!imagine a cat --n 99", GUILDS[0]), 2000) == "refused"
    )
    assert outcome(lambda: reddit_comment(REQUESTS.service, "thanks u/memebot", True), 1) == "ignored"
    assert outcome(lambda: reddit_comment(REQUESTS.service, "u/memebot a cat --video", True), 1) == "request"


#: Addresses as a post or an embed may carry them: schemes, hosts, brackets, look-alikes, anything.
URL_PIECES = "https:// http:// [ ] ::1 @ # \uff03 : / % ? \u3002 \x00 user:pw 99999 xn-- ."
URL_PIECES += " cdn.discordapp.com i.redd.it"
urls = st.one_of(
    st.text(max_size=80),
    st.builds("".join, st.lists(st.sampled_from(URL_PIECES.split(" ")), max_size=12)),
)


@settings(max_examples=300, deadline=None)
@given(urls)
def test_a_picture_address_is_allowed_or_not_and_never_raises(url: str) -> None:
    for hosts in (MEDIA_HOSTS["discord"], MEDIA_HOSTS["reddit"]):
        assert allowed(url, hosts) in (True, False)


SEEDS = [
    pictures.encoded(Image.new("RGB", (12, 8), (1, 2, 3)), fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP")
]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=4)), max_size=6),
)
def test_a_damaged_picture_decodes_or_is_one_line_refused(
    seed: bytes, edits: list[tuple[int, bytes]]
) -> None:
    """Bytes of each format taken, overwritten here and there: a picture or a BadImage, nothing else."""
    data = bytearray(seed)
    for at, patch in edits:
        data[at % len(data) : at % len(data) + len(patch)] = patch
    try:
        picture = decode(bytes(data), limits=IntakeLimits(max_bytes=64 * 1024, max_pixels=512 * 512))
    except BadImage as refusal:
        assert str(refusal) and "\n" not in str(refusal) and len(str(refusal)) < 200
    else:
        assert picture.mode == "RGB" and picture.width * picture.height <= 512 * 512
