"""The bot's replies in Reddit Markdown, always within Reddit's comment limit (pure functions).

User text is escaped so it cannot break the reply's links or ping anyone; when a reply would be too
long, the user's text is shortened before it is marked up, so markup is never cut in half.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from generators.grammar import provenance
from generators.requests import GenerationRequest, Kind
from generators.text import ELLIPSIS

#: Reddit refuses longer comments.
MAX_COMMENT = 10_000
# What can start markup inside a line (emphasis, links, code, superscript, entities, tables, spoilers),
# and what can at the start of one (headings, lists, quotes): only these are escaped, so the text stays
# readable as typed.
_SPECIAL = re.compile(r"([\\`*_\[\]<>~^&|!])")
_LEADING = re.compile(r"^(\s*)([#+\-=])")
_NUMBERED = re.compile(r"^(\s*\d+)([.)])")
_TICKS = re.compile(r"`+")
# Echoed text is one line: a line break could start a heading, a table or a quote below it.
_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# u/name and r/name become links, and u/name notifies that user: a prompt must do neither. A zero-width
# space splits them (a backslash before "/" shows on old Reddit).
_PING = re.compile(r"(?<![\w/])(/?[ur])/", re.IGNORECASE)
# Bare URLs become links on their own: split the scheme and "www." so a prompt cannot post a link.
_AUTOLINK = re.compile(r"(?i)(://|\bwww(?=\.))")
_SPLIT = "\u200b"


def escape(text: str) -> str:
    """``text`` shown as typed on one line: Markdown escaped, no links, no user or subreddit mentions."""
    escaped = _SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", text))
    escaped = _NUMBERED.sub(r"\1\\\2", _LEADING.sub(r"\1\\\2", escaped))
    escaped = _AUTOLINK.sub(lambda found: found[1][0] + _SPLIT + found[1][1:], escaped)
    return _PING.sub(rf"\1{_SPLIT}/", escaped)


def clip(text: str, limit: int, markup: bool = True) -> str:
    """``text`` escaped (if ``markup``), shortened with an ellipsis to at most ``limit`` characters."""
    shown = escape if markup else _unchanged
    if len(shown(text)) <= limit:
        return shown(text)
    low, high = 0, len(text)  # the longest prefix whose escaped form still fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(shown(text[:middle])) + len(ELLIPSIS) <= limit:
            low = middle
        else:
            high = middle - 1
    return shown(text[:low]) + ELLIPSIS if limit >= len(ELLIPSIS) else ""


def code(text: str) -> str:
    """An inline code span that holds ``text`` whatever backticks it has."""
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in _TICKS.findall(text)) + 1)
    return f"{fence} {text} {fence}"


def footer(username: str) -> str:
    """How to use the bot, and how a subreddit keeps it out."""
    opt_out = f"https://www.reddit.com/message/compose?to={quote(username)}&subject={quote('opt out')}"
    return (
        f"^(I'm a bot. Ask me:) `u/{username} a hamster godzilla --n 4` "
        f"^(· Mods: to keep me out of your subreddit,) [^(message me)]({opt_out})"
    )


def result_reply(
    request: GenerationRequest,
    *,
    page_url: str,
    command: str,
    username: str,
    post_url: str | None = None,
) -> str:
    """The reply with a finished result: the link to its page, the prompt, and how to get it again.

    A remix says what it started from next to the command, which remakes it only under the same picture.
    """
    what = (
        "a clip" if request.kind is Kind.VIDEO else ("1 image" if request.n == 1 else f"{request.n} images")
    )
    also = f" · also [posted here]({post_url})" if post_url else ""
    origin = provenance(request)
    again = "Make it again under the same picture" if origin else "Make it again"
    origin = f" · {escape(origin)}" if origin else ""

    def render(prompt: str, line: str) -> str:
        return (
            f"**[{prompt}]({page_url})**\n\n"
            f"{what} · seed {request.seed}{also}\n\n"
            f"{again}: {line}{origin}\n\n"
            f"---\n{footer(username)}"
        )

    return _fit(render, request.prompt, f"u/{username} {command}")


def message_reply(message: str, *, username: str) -> str:
    """A reply that only says something: a refusal, or why a job failed."""
    text = f"\n\n---\n{footer(username)}"
    return clip(message, MAX_COMMENT - len(text)) + text


def _fit(render: Callable[[str, str], str], prompt: str, line: str) -> str:
    """``render(prompt, code span of line)`` within the limit; a long prompt keeps half the room."""
    full = render(escape(prompt), code(line))
    if len(full) <= MAX_COMMENT:
        return full
    room = MAX_COMMENT - len(render("", ""))
    longest_fence = 2 * (max((len(run) for run in _TICKS.findall(line)), default=0) + 2)
    prompt_room = max(room // 2, room - len(line) - longest_fence)
    shown = clip(prompt, prompt_room)
    return render(shown, code(clip(line, room - len(shown) - longest_fence, markup=False)))


def _unchanged(text: str) -> str:
    return text
