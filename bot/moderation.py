"""Matching text against word lists (ban lists, NSFW words) so that disguises do not slip through.

Pure functions, no platform: Discord and Reddit both call :func:`find`.

The rules, in order:

1. **Normalise** the text and every listed word the same way:
   - Unicode NFKC, so fullwidth ``ｎｕｄｅ``, ligatures and styled letters (𝐧𝐮𝐝𝐞) become plain letters;
   - accents and other combining marks are dropped (``nüdé``, "zalgo" text), after an NFKD split;
   - format characters (category Cf: zero-width space and joiners, soft hyphen, bidi marks, BOM) and the
     invisible Hangul fillers are removed, so ``n\\u200bude`` is ``nude``;
   - case-folded (``NUDE``, ``Nude``, German ``ß`` as ``ss``);
   - every character that is not a letter or digit separates words (``porn-star`` is ``porn star``);
   - a run of three or more single letters or digits, one separator apart, is joined into one word:
     ``n u d e`` and ``n.u.d.e`` are ``nude``. A lone initial or two (``J. R. Tolkien``'s "j r") is
     left alone; three or more initials (``U S A``) become one word, which no list is likely to hold.
2. **Match word stems at a word start.** A listed word matches a word that *starts* with it, whatever
   follows: ``nude`` matches ``nudes`` and ``nudity`` is not matched (it starts ``nudi``), ``porn``
   matches ``pornographic``. A word is never matched in the middle of another word, so ``Scunthorpe``,
   ``therapist``, ``Essex`` and ``grapes`` pass. A listed phrase (``bad word``) matches those words in
   a row, its last word as a stem. A trailing ``*`` in a list (``nude*``) says the same thing and is
   accepted.
3. **Known innocent words** that begin with a commonly listed word pass (``cocktail``, ``assassin``,
   ``analysis``, ``sextant``, ``title``...): :data:`INNOCENT`. An entry listed in full is still matched
   (a list holding ``cocktail`` refuses ``cocktails``).

Accepted trade-offs: a stem inside a compound (``softporn``) or split unevenly (``nu de``, ``n-ude``)
passes, and so do look-alike letters from other scripts (Cyrillic ``о`` for ``o``) and digits for
letters (``s3x``); a word listed in a list matches its innocent continuations that are not in
:data:`INNOCENT` (``sex`` refuses ``sexagenarian``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Words that start with a commonly banned word but are not about it. Each is itself a stem:
#: ``cocktail`` also lets ``cocktails`` through.
INNOCENT = frozenset(
    {
        # ass
        "assassin", "assault", "assemb", "assert", "assess", "asset", "assign", "assist", "associat",
        "assort", "assum", "assur", "assam",
        # anal
        "analog", "analy",
        # cock
        "cockatiel", "cockatoo", "cockerel", "cockle", "cockney", "cockpit", "cockroach", "cocktail",
        # cum
        "cumber", "cumin", "cumul",
        # sex
        "sextant", "sextet", "sexton", "sextup",
        # tit
        "titan", "title", "titch", "titr",
        # rape, hell, dick, gore, nip
        "rapeseed", "hello", "hellen", "dickens", "gorey", "nipper",
    }
)  # fmt: skip

_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters that draw nothing
_SINGLES = re.compile(r"(?<!\S)(?:\w )(?:\w )+\w(?!\S)")


def normalise(text: str) -> str:
    """``text`` as the matcher sees it: plain lower-case words separated by single spaces."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = (c for c in text if unicodedata.category(c) not in ("Mn", "Me", "Cf") and c not in _INVISIBLE)
    text = unicodedata.normalize("NFKC", "".join(kept)).casefold()
    words = " ".join("".join(c if c.isalnum() else " " for c in text).split())
    return _SINGLES.sub(lambda match: match.group(0).replace(" ", ""), words)


@dataclass(frozen=True, slots=True)
class WordList:
    """Listed words and phrases, normalised once."""

    entries: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, words: Iterable[str]) -> WordList:
        """The list for ``words`` (blank entries and trailing ``*`` dropped)."""
        entries = (tuple(normalise(word.strip().rstrip("*")).split()) for word in words)
        return cls(tuple(dict.fromkeys(e for e in entries if e)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def find(self, text: str) -> str | None:
        """The first words of ``text`` that match an entry (normalised), or None."""
        return find(normalise(text).split(), self.entries)


def find(words: Sequence[str], entries: Iterable[tuple[str, ...]]) -> str | None:
    """The first run of ``words`` matching an entry: all but its last word exactly, the last as a stem."""
    for entry in entries:
        size = len(entry)
        for start in range(len(words) - size + 1):
            window = words[start : start + size]
            if tuple(window[:-1]) == entry[:-1] and stem_matches(entry[-1], window[-1]):
                return " ".join(window)
    return None


def stem_matches(stem: str, word: str) -> bool:
    """Whether ``word`` starts with ``stem`` and is not a known innocent continuation of it."""
    if not word.startswith(stem):
        return False
    if word == stem:
        return True
    return not any(
        word.startswith(safe) for safe in INNOCENT if len(safe) > len(stem) and safe.startswith(stem)
    )
