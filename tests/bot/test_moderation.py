"""Word lists that hold against disguises, and the near-misses they must let through."""

from __future__ import annotations

import pytest

from bot.discord._policy import GuildSettings, Moderation
from bot.moderation import WordList, normalise
from bot.settings import DiscordConfig
from generators.errors import Banned, Forbidden
from generators.requests import GenerationRequest

NSFW = WordList.of(DiscordConfig().nsfw_words)  # the shipped defaults
#: Words a server might ban, chosen for their innocent relatives.
BANNED = WordList.of(["badword", "cunt", "cock", "ass", "anal", "rape", "tit", "cum", "hell", "bad word"])


@pytest.mark.parametrize(
    "text",
    [
        "nudes",
        "pornographic",
        "n\u200bude",  # zero-width space
        "ｎｕｄｅ",  # fullwidth
        "NUDE statue",
        "n.u.d.e",
        "n u d e s",
        "nüdé",  # accents
        "n\u0336u\u0336d\u0336e\u0336",  # strike-through marks
        "𝐧𝐮𝐝𝐞",  # mathematical bold
        "n\u202eude",  # a bidi override
        "n\u00adude",  # a soft hyphen
        "a porn-star",
        "a sexy cat",
        "nsfw",
    ],
)
def test_disguised_nsfw_words_are_caught(text: str) -> None:
    assert NSFW.find(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe",  # the classic: "cunt" inside a word
        "therapist",  # "rapist" inside
        "Essex",
        "sussex",
        "grapes",
        "gorgeous sunset",  # does not start with "gore"
        "sextant on a ship",  # an innocent continuation of "sex"
        "nudibranch",  # starts "nudi", not "nude"
        "J. R. R. Tolkien reading",  # initials are joined ("jrr") without making a listed word
        "a hamster godzilla --n 4 --ar 16:9",
        "un homme nu",  # French "nu" is not "nude"
    ],
)
def test_near_misses_of_the_nsfw_words_pass(text: str) -> None:
    assert NSFW.find(text) is None


def test_a_zero_width_space_does_not_hide_a_banned_word() -> None:
    assert WordList.of(["badword"]).find("bad\u200bword") == "badword"


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United",
        "cocktail party",
        "cockpit of a plane",
        "assassin's creed",
        "an assessment",
        "data analysis",
        "an analog synth",
        "rapeseed fields",
        "a title card",
        "titanic",
        "cumulus clouds",
        "hello world",
        "therapist",
        "a badly worded note",  # "bad" alone is not the phrase "bad word"
    ],
)
def test_near_misses_of_a_ban_list_pass(text: str) -> None:
    assert BANNED.find(text) is None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("cocks", "cocks"),
        ("a bad words list", "bad words"),
        ("a bad, word", "bad word"),  # separators between the words of a phrase do not matter
        ("hellfire", "hellfire"),  # continuations not known to be innocent are matched
        ("ANAL", "anal"),
    ],
)
def test_a_ban_list_matches_stems_and_phrases(text: str, found: str) -> None:
    assert BANNED.find(text) == found


def test_an_innocent_word_listed_in_full_is_still_matched() -> None:
    assert WordList.of(["cocktail*"]).find("two cocktails") == "cocktails"


def test_normalising_keeps_ordinary_text_readable_as_words() -> None:
    assert normalise("A  Cat's  hat, 4K!") == "a cat s hat 4k"
    assert normalise("U S A") == "usa" and normalise("a b") == "a b"
    assert not WordList.of(["", "  ", "*"])


def test_moderation_uses_the_rules_for_prompts_captions_and_patterns() -> None:
    config = DiscordConfig(ban_words=("badword",), ban_patterns=(r"free\s*nitro",))
    moderation = Moderation(config)
    with pytest.raises(Banned):
        moderation.check_banned(GenerationRequest(prompt="a cat", top="bad\u200bword"), GuildSettings())
    with pytest.raises(Banned):  # a pattern is tried on the normalised text too
        moderation.check_text("fr\u200bee nitro", GuildSettings())
    with pytest.raises(Banned):
        moderation.check_text("cheeses", GuildSettings(ban_words=("cheese",)))
    with pytest.raises(Forbidden, match="age-restricted"):
        moderation.check_nsfw_text("ｎｕｄｅｓ", GuildSettings(), age_restricted=False)
    moderation.check_nsfw_text("nudes", GuildSettings(), age_restricted=True)
    moderation.check_text("Scunthorpe", GuildSettings(ban_words=("cunt",)))
