"""Replies stay within Reddit's limit, keep their links whole, and never ping anyone a prompt names."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.reddit._text import MAX_COMMENT, code, escape, message_reply, result_reply
from generators.requests import GenerationRequest, Kind, Source

PAGE = "https://memes.example/abcDEF123_-x"
_LINK = re.compile(r"^\*\*\[(?P<title>.*)\]\((?P<url>[^)\s]+)\)\*\*$", re.MULTILINE)


def reply(prompt: str, command: str | None = None, **request: object) -> str:
    return result_reply(
        GenerationRequest(prompt, seed=42, **request),  # type: ignore[arg-type]
        page_url=PAGE,
        command=prompt if command is None else command,
        username="memebot",
    )


def test_a_short_reply_shows_the_prompt_the_seed_and_the_command() -> None:
    text = reply("a hamster godzilla", "a hamster godzilla --seed 42 --n 4", n=4)
    link = _LINK.search(text)
    assert link is not None and (link["title"], link["url"]) == ("a hamster godzilla", PAGE)
    assert "4 images · seed 42" in text
    assert "Make it again: `u/memebot a hamster godzilla --seed 42 --n 4`" in text
    assert text.endswith("subject=opt%20out)")
    assert "a clip · seed 42" in reply("a cat dancing", kind=Kind.VIDEO)


def test_a_remix_names_its_source_next_to_the_command_even_when_cut() -> None:
    source = Source("0123456789ab" + "f" * 52)
    text = reply("a cat", "a cat --seed 42 --strength 0.5", source=source, strength=0.5)
    assert (
        "Make it again under the same picture: `u/memebot a cat --seed 42 --strength 0.5`"
        " · remix of image sha256:0123456789ab… at strength 0.5\n\n"
    ) in text
    long = reply("a cat " * 2000, "a cat " * 2000, source=source, strength=0.5)
    assert len(long) <= MAX_COMMENT and " · remix of image sha256:0123456789ab… at strength 0.5" in long


def test_markup_in_a_prompt_cannot_break_the_link_or_ping() -> None:
    prompt = "](https://evil.example) *bold* u/spez and r/pics ^up `tick`"
    text = reply(prompt)
    link = _LINK.search(text)
    assert link is not None and link["url"] == PAGE
    assert "u/spez" not in link["title"] and "r/pics" not in link["title"]
    assert link["title"].startswith("\\](https:\u200b//evil.example) \\*bold\\*")
    assert "Make it again: `` u/memebot " + prompt + " ``" in text


def test_a_huge_prompt_is_clipped_within_the_limit_with_the_markup_whole() -> None:
    prompt = "a [very] long *prompt* " * 1000
    text = reply(prompt, prompt + " --seed 42")
    assert len(text) <= MAX_COMMENT
    link = _LINK.search(text)
    assert link is not None and link["url"] == PAGE and link["title"].endswith("…")
    assert len(link["title"]) > 3000  # half the room each: the prompt is not cut to nothing
    assert re.search(r"Make it again: `u/memebot a \[very\].*…`\n", text)
    assert text.endswith("subject=opt%20out)")


def test_a_long_message_is_clipped_before_the_footer() -> None:
    text = message_reply("no. " * 5000, username="memebot")
    assert len(text) <= MAX_COMMENT
    assert text.split("\n\n---\n")[0].endswith("…")
    assert text.endswith("subject=opt%20out)")


def test_escaping() -> None:
    assert escape("unknown flag --sed (did you mean --seed?)") == "unknown flag --sed (did you mean --seed?)"
    assert escape("# 1. *x* [y]") == "\\# 1. \\*x\\* \\[y\\]"
    assert escape("1. first") == "1\\. first"
    assert escape("ask u/spez") == "ask u\u200b/spez"
    assert code("a `b` c") == "`` a `b` c ``"
    assert code("plain") == "`plain`"


@settings(max_examples=60, deadline=None)
@given(prompt=st.text(min_size=1, max_size=12_000), command=st.text(max_size=12_000))
def test_any_reply_fits_and_keeps_its_link_and_footer(prompt: str, command: str) -> None:
    text = reply(prompt.replace("\n", " "), command.replace("\n", " "))
    assert len(text) <= MAX_COMMENT
    assert text.startswith("**[") and f"]({PAGE})**\n\n" in text
    assert text.endswith("subject=opt%20out)")


HOSTILE = "# heading [Free Nitro](https://nitro.example/claim) u/someone /u/other r/sub www.evil.example"


def inert(text: str) -> None:
    """Nothing in ``text`` that Reddit would turn into a link, a mention or a heading."""
    assert "](" not in text.replace("\\](", "")
    assert not re.search(r"(?<![\w/\u200b])/?[ur]/\w", text), text
    assert "://" not in text and "www." not in text
    assert not re.search(r"(?m)^\s*#", text)


def test_a_hostile_prompt_is_echoed_inert_in_the_link_title() -> None:
    text = reply(HOSTILE, "a cat")
    link = _LINK.search(text)
    assert link is not None and link["url"] == PAGE
    inert(link["title"])
    assert link["title"].replace("\\", "").replace("\u200b", "") == HOSTILE  # reads as typed


def test_a_hostile_message_is_echoed_inert() -> None:
    text = message_reply(HOSTILE + "\n# second line\n|a|b|\n|-|-|", username="memebot")
    body = text.split("\n\n---\n")[0]
    inert(body)
    assert "\n" not in body  # one line: no heading or table can start below it
    assert "\\|a\\|b\\|" in body


def test_markup_of_every_kind_is_escaped() -> None:
    assert escape(">!spoiler!<") == "\\>\\!spoiler\\!\\<"
    assert escape("x^(sup) ~~gone~~ a|b &amp;") == "x\\^(sup) \\~\\~gone\\~\\~ a\\|b \\&amp;"
    assert escape("see https://x.example") == "see https:\u200b//x.example"
    assert escape("R/Pics and U/Spez") == "R\u200b/Pics and U\u200b/Spez"


def test_a_reply_with_a_6000_character_caption_fits() -> None:
    caption = "[Free Nitro](https://nitro.example) u/someone " * 131  # over 6000 characters
    request = GenerationRequest("a cat", seed=42, top=caption, bottom=caption)
    command = f'a cat --top "{caption}" --bottom "{caption}"'
    text = result_reply(request, page_url=PAGE, command=command, username="memebot")
    assert len(caption) >= 6000 and len(text) <= MAX_COMMENT
    assert text.startswith(f"**[a cat]({PAGE})**") and text.endswith("subject=opt%20out)")
    assert re.search(r"Make it again: `.*…`\n", text)
