"""Word lists that hold against disguises, and the near-misses they must let through."""

from __future__ import annotations

import unicodedata
from functools import cache

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.discord._policy import GuildSettings, Moderation
from bot.moderation import LEET, WordList, confusables, fold, normalise
from bot.settings import DiscordConfig
from generators.errors import Banned, Forbidden
from generators.requests import GenerationRequest

NSFW = WordList.of(DiscordConfig().nsfw_words, inside=True)  # the shipped defaults, as the bot lists them
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
        "\u0455\u0435\u0445",  # Cyrillic ѕ е х
        "\u0440orn",  # Cyrillic р
        "g\u03bfre",  # Greek ο
        "NAKE\u13a0",  # Cherokee Ꭰ for D
        "s3x",
        "p0rn",
        "$ex",
        "n4k3d",
        "9ore",
        "S3XY",
        "nsf\u0461",  # Cyrillic omega for w
        "softporn",
        "freenudes",
        "hardcoresex",
        "nu de",
        "p orn",
        "s ex",
        "na ked",
        "a nu des pic",
        "s3 x",  # a split and leet at once
        "$ e x",
        "n!u!d!e",
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
        "3ssex",  # leet for Essex: read as "essex", which holds "sex" innocently
        "5u55ex",
        "s3xtant",
        "middlesex and wessex",
        "a unisex jacket",
        "Tagore's poems",  # "gore" inside a name
        "the Pythagorean theorem",
        "denuded hills",
        "the boss's ex-wife",  # an apostrophe is no split: "bosss ex", not "s ex"
        "go read a book",  # a split is joined only when the pieces spell the word exactly
        "nu descending a staircase",
        "1080p video, mp4",  # digits alone are numbers, not letters
        "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",  # Russian text
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
        "grapes",
        "assass1n",  # "1" read as "i" is innocent, even where the other reading ("l") is not
        "c0cktail",
        "an4lysis",
        "h3ll0 world",
        "5cunth0rpe",
        "a SS officer",  # "a ss": a split never starts with the word "a"
        "Scunthorpe",  # ban lists never match inside a word
        "classic bass",
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
        ("he11", "hell"),  # "1" read as "l"
        ("4nal", "anal"),
        ("c\u043e\u0441k", "cock"),  # Cyrillic о and с
        ("co ck", "co ck"),
    ],
)
def test_a_ban_list_matches_stems_and_phrases(text: str, found: str) -> None:
    assert BANNED.find(text) == found


def test_an_innocent_word_listed_in_full_is_still_matched() -> None:
    assert WordList.of(["cocktail*"]).find("two cocktails") == "cocktails"


def test_normalising_keeps_ordinary_text_readable_as_words() -> None:
    assert normalise("A  Cat's  hat, 4K!") == "a cats hat 4k"  # an apostrophe joins, never splits
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


def test_ban_lists_do_not_match_inside_words_and_nsfw_lists_do() -> None:
    assert WordList.of(["porn"]).find("softporn") is None
    assert WordList.of(["porn"], inside=True).find("softporn") == "softporn"
    assert WordList.of(["cunt"], inside=True).find("Scunthorpe") is None  # innocent wherever it stands


def test_look_alikes_come_from_unicodes_table() -> None:
    assert fold("\u0430\u0435\u043e\u0440\u0441\u0445\u0443") == "aeopcxy"  # Cyrillic а е о р с х у
    assert fold("\u0391\u0392\u0395\u0397\u039a\u039c") == "abehkm"  # Greek capitals
    assert fold("日本語のテキスト") == "日本語のテキスト"  # other scripts' own letters stay


# Property tests: any mix of the disguises hides no listed word, and none turns a near-miss into one.

NSFW_WORDS = DiscordConfig().nsfw_words
BAN_WORDS = ("badword", "cunt", "cock", "hell", "tit", "anal")
INVISIBLES = ("\u200b", "\u200d", "\u00ad", "\u2060", "\ufeff")
MARKS = ("\u0301", "\u0308", "\u0336", "\u0323")
PREFIXES = ("soft", "hard", "free", "hot", "real", "my", "teen")
NEAR_MISSES = (
    "scunthorpe", "therapist", "essex", "sussex", "cocktail", "assassin", "analysis", "sextant",
    "title", "titanic", "hello", "grapes", "gorgeous", "nudibranch", "tagore", "middlesex", "cumulus",
)  # fmt: skip


@cache
def look_alikes() -> dict[str, tuple[str, ...]]:
    """For each Latin letter, the characters of other scripts that fold to it."""
    found: dict[str, list[str]] = {}
    for char, letter in confusables().items():
        if fold(char) == letter and unicodedata.category(char).startswith("L"):
            found.setdefault(letter, []).append(char)
    return {letter: tuple(sorted(chars)) for letter, chars in found.items()}


def leet_for(letter: str) -> tuple[str, ...]:
    """Digits and symbols read as ``letter`` in every leet reading (so one word never needs two)."""
    return tuple(sorted(c for c, read in LEET[0].items() if read == letter and LEET[1][c] == letter))


@st.composite
def disguised_letter(draw: st.DrawFn, letter: str, *, leet: bool) -> str:
    """One letter in a disguise that reads the same: case, a look-alike, leet, marks, invisibles."""
    choices = ["plain", "upper", "look-alike"] + (["leet"] if leet and leet_for(letter) else [])
    how = draw(st.sampled_from(choices))
    char = letter
    if how == "upper":
        char = letter.upper()
    elif how == "look-alike" and letter in look_alikes():
        char = draw(st.sampled_from(look_alikes()[letter]))
    elif how == "leet":
        char = draw(st.sampled_from(leet_for(letter)))
    if char.isalpha() and draw(st.booleans()):
        char += draw(st.sampled_from(MARKS))
    if draw(st.booleans()):
        char += draw(st.sampled_from(INVISIBLES))
    return char


@st.composite
def disguised(draw: st.DrawFn, word: str, *, leet: bool = True) -> list[str]:
    return [draw(disguised_letter(letter, leet=leet)) for letter in word]


def readable(piece: str) -> bool:
    """A piece keeps a letter: one of digits and symbols alone reads as a number (README)."""
    return any(c.isalpha() for c in piece)


@given(st.data(), st.sampled_from(NSFW_WORDS), st.sampled_from(["none", "split", "compound"]))
def test_no_disguise_lets_a_listed_nsfw_word_through(data: st.DataObject, word: str, shape: str) -> None:
    letters = data.draw(disguised(word))
    if shape == "split":
        at = data.draw(st.integers(1, len(word) - 1))
        first, second = "".join(letters[:at]), "".join(letters[at:])
        assume(readable(first) and readable(second))
        text = f"{first}{data.draw(st.sampled_from([' ', '  ', ' . ', '-', ' _ ']))}{second}"
    else:
        assume(readable("".join(letters)))
        text = "".join(letters)
        if shape == "compound":
            text = data.draw(st.sampled_from(PREFIXES)) + text
    sentence = data.draw(st.sampled_from(["{}", "a {} picture", "{}!", "Show me {} now"])).format(text)
    assert NSFW.find(sentence) is not None, sentence


@given(st.data(), st.sampled_from(BAN_WORDS))
def test_no_disguise_lets_a_banned_word_through(data: st.DataObject, word: str) -> None:
    text = "".join(data.draw(disguised(word)))
    assume(readable(text))
    assert BANNED.find(f"well {text} then") is not None, text


@given(st.data(), st.sampled_from(NEAR_MISSES))
def test_no_disguise_turns_a_near_miss_into_a_listed_word(data: st.DataObject, word: str) -> None:
    text = "".join(data.draw(disguised(word)))
    assume(readable(text))
    sentence = data.draw(st.sampled_from(["{}", "a {} picture", "{}!"])).format(text)
    assert NSFW.find(sentence) is None, sentence
    assert BANNED.find(sentence) is None, sentence
