"""Matching text against word lists (ban lists, NSFW words) so that disguises do not slip through.

Pure functions, no platform: Discord and Reddit both call :meth:`WordList.find`.

The rules, in order:

1. **Fold** the text and every listed word the same way:
   - Unicode NFKC, so fullwidth ``ｎｕｄｅ``, ligatures and styled letters (𝐧𝐮𝐝𝐞) become plain letters;
   - look-alike letters of other scripts become the Latin letter they imitate (Cyrillic ``о``, Greek
     ``ο``, Cherokee ``Ꭰ``...), from Unicode's confusables table as the ``confusable_homoglyphs``
     package ships it: a maintained table, not a list of our own;
   - accents and other combining marks are dropped (``nüdé``, "zalgo" text), after an NFKD split;
   - format characters (category Cf: zero-width space and joiners, soft hyphen, bidi marks, BOM) and the
     invisible Hangul fillers are removed, so ``n\\u200bude`` is ``nude``; apostrophes too (``cat's``);
   - case-folded (``NUDE``, ``Nude``, German ``ß`` as ``ss``).
2. **Read the words** in up to three ways (*views*), and match in each:
   - *plain*: every character that is not a letter or digit separates words (``porn-star`` is
     ``porn star``);
   - *leet* (twice, for the two readings of ``1``, ``!`` and ``|``: ``i`` or ``l``): a word mixing
     letters with digits or ``$ @ ! | + €`` has them read as letters (``s3x``, ``p0rn``, ``$ex`` are
     ``sex``, ``porn``, ``sex``; a closing ``!`` stays punctuation); a word of digits alone stays a
     number.
   In every view, a run of three or more single characters one separator apart is joined into one word:
   ``n u d e`` and ``n.u.d.e`` are ``nude``. A lone initial or two (``J. R. Tolkien``'s "j r") is left
   alone; three or more initials (``U S A``) become one word, which no list is likely to hold.
3. **Match word stems at a word start.** A listed word matches a word that *starts* with it, whatever
   follows: ``nude`` matches ``nudes`` and ``nudity`` is not matched (it starts ``nudi``), ``porn``
   matches ``pornographic``. A listed phrase (``bad word``) matches those words in a row, its last word as
   a stem. A trailing ``*`` in a list (``nude*``) says the same thing and is accepted.
4. **Lists built with ``inside=True`` (the NSFW words) also match inside a word** of letters alone:
   ``softporn``, ``freenudes``. Ban lists do not, so ``Scunthorpe``, ``therapist`` and ``grapes`` pass
   a ban list.
5. **Uneven splits are joined**: two or more consecutive words, each shorter than a listed word, that
   together spell it (or it and an ``s``) match: ``nu de``, ``p orn``, ``s ex``. A run may not start
   with the one-letter words ``a``, ``i`` or ``o`` (``a ss`` is "a SS officer", not a ban word).
6. **Known innocent words** hide a listed word inside them (``cocktail``, ``assassin``, ``analysis``,
   ``sextant``, ``Essex``, ``Tagore``...): :data:`INNOCENT`. Each is a stem (``cocktail`` also lets
   ``cocktails`` through) and is read in every view (``3ssex`` is ``essex``). An entry listed in full is
   still matched (a list holding ``cocktail`` refuses ``cocktails``).

What remains (accepted trade-offs) is listed in the README: a split *and* a compound at once
(``softp orn``), a piece of digits alone (``5 ex``), a word listed in a list matching its innocent
continuations that are not in :data:`INNOCENT` (``sex`` refuses ``sexagenarian``), and misspellings.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

#: Words that hold a commonly listed word but are not about it. Each is itself a stem: ``cocktail`` also
#: lets ``cocktails`` through, wherever it stands in a word.
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
        # sex: at the start, and inside place names and words
        "sextant", "sextet", "sexton", "sextup", "essex", "sussex", "wessex", "middlesex", "unisex",
        # tit
        "titan", "title", "titch", "titr",
        # rape, rapist, hell, dick, gore, nip, nude, naked, cunt
        "rapeseed", "grape", "therapist", "hello", "hellen", "dickens", "gorey", "tagore", "pythagore",
        "nipper", "denude", "snaked", "scunthorp",
    }
)  # fmt: skip

_LEET_COMMON = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "$": "s", "@": "a"}
_LEET_COMMON |= {"+": "t", "€": "e"}
#: Digits and symbols read as letters, one table per leet view: ``1``, ``!`` and ``|`` read two ways.
LEET: tuple[Mapping[str, str], ...] = (
    _LEET_COMMON | {"1": "i", "!": "i", "|": "l"},
    _LEET_COMMON | {"1": "l", "!": "l", "|": "i"},
)
_LEET_CHARS = frozenset(LEET[0])
_ONE_LETTER_WORDS = frozenset("aio")
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters that draw nothing
_APOSTROPHES = frozenset("'\u2019\u02bc")


@functools.cache
def confusables() -> Mapping[str, str]:
    """Each non-ASCII character that Unicode lists as confusable with a Latin letter, to that letter."""
    data = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    table: dict[str, str] = {}
    for char, homoglyphs in json.loads(data).items():
        latin = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()]
        if len(char) == 1 and not char.isascii() and latin:
            table[char] = latin[0].lower()
    return table


def fold(text: str) -> str:
    """``text`` with look-alikes, accents, invisible characters, apostrophes and case folded away."""
    table = confusables()
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = (c for c in text if unicodedata.category(c) not in ("Mn", "Me", "Cf") and c not in _INVISIBLE)
    text = unicodedata.normalize("NFKC", "".join(c for c in kept if c not in _APOSTROPHES))
    # Before and after case folding: the table lists Greek capital Ε as "E", not its small ε.
    text = "".join(table.get(c, c) for c in text).casefold()
    return "".join(table.get(c, c) for c in text)


def normalise(text: str) -> str:
    """``text`` as the plain view sees it: lower-case words of letters and digits, one space apart."""
    return " ".join(views(text)[0].words)


@dataclass(frozen=True, slots=True)
class View:
    """One reading of a text: its words, and for each the leet readings of what was written there and
    which written word (between separators) it comes from."""

    words: tuple[str, ...]
    readings: tuple[tuple[str, ...], ...]
    origins: tuple[int, ...]


def views(text: str) -> list[View]:
    """``text`` in each view: plain, then the leet readings that differ from it."""
    tokens = [token for token, _ in _join_singles([(t, 0) for t in _symbols_apart(fold(text)).split()])]
    readings = [tuple(dict.fromkeys(_leet(token, table) for table in LEET)) for token in tokens]
    found: list[View] = []
    for table in (None, *LEET):
        pairs = [(word, i) for i, token in enumerate(tokens) for word in _leet(token, table).split()]
        joined = _join_singles(pairs)
        view = View(
            tuple(w for w, _ in joined), tuple(readings[i] for _, i in joined), tuple(i for _, i in joined)
        )
        if all(view.words != seen.words for seen in found):
            found.append(view)
    return found


def _symbols_apart(folded: str) -> str:
    """Letters, digits and leet symbols kept; anything else a space."""
    return "".join(c if c.isalnum() or c in _LEET_CHARS else " " for c in folded)


def _join_singles(pairs: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Runs of three or more one-character words joined into one (``n u d e``); the ints ride along."""
    joined: list[tuple[str, int]] = []
    run: list[tuple[str, int]] = []
    for pair in [*pairs, ("", -1)]:  # the sentinel ends the last run
        if len(pair[0]) == 1:
            run.append(pair)
            continue
        if len(run) >= 3:
            joined.append(("".join(w for w, _ in run), run[0][1]))
        else:
            joined.extend(run)
        run = []
        if pair[0]:
            joined.append(pair)
    return joined


def _leet(token: str, table: Mapping[str, str] | None) -> str:
    """``token`` as words: read through a leet ``table`` when it mixes letters with digits or symbols
    (or is symbols alone); other symbols, and all of them without a table, separate words."""
    mixed = any(c.isalpha() for c in token) and any(not c.isalpha() for c in token)
    symbols = all(c in _LEET_CHARS and not c.isdigit() for c in token)
    if table is not None and (mixed or symbols):
        # A word's closing "!" is punctuation far more often than an "i": "s3x!" is "sex".
        token = "".join(table.get(c, c) for c in token.rstrip("!") or token)
    return "".join(c if c.isalnum() else " " for c in token)


@dataclass(frozen=True, slots=True)
class WordList:
    """Listed words and phrases, folded once; ``inside``: words also match inside other words."""

    entries: tuple[tuple[str, ...], ...]
    inside: bool = False

    @classmethod
    def of(cls, words: Iterable[str], *, inside: bool = False) -> WordList:
        """The list for ``words`` (blank entries and trailing ``*`` dropped)."""
        entries = (tuple(normalise(word.strip().rstrip("*")).split()) for word in words)
        return cls(tuple(dict.fromkeys(e for e in entries if e)), inside)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def find(self, text: str) -> str | None:
        """The first words of ``text`` that match an entry in any view, or None."""
        for view in views(text):
            found = find(view.words, self.entries, inside=self.inside, readings=view.readings)
            if (found or (found := find_split(view.words, self.entries, view.origins))) is not None:
                return found
        return None


def find(
    words: Sequence[str],
    entries: Iterable[tuple[str, ...]],
    *,
    inside: bool = False,
    readings: Sequence[Sequence[str]] = (),
) -> str | None:
    """The first run of ``words`` matching an entry: all but its last word exactly, the last as a stem
    (see :func:`stem_matches`; ``readings[i]``: the leet readings of what was written as word ``i``)."""
    for entry in entries:
        size = len(entry)
        for start in range(len(words) - size + 1):
            window = words[start : start + size]
            last = start + size - 1
            others = readings[last] if last < len(readings) else ()
            if tuple(window[:-1]) == entry[:-1] and stem_matches(
                entry[-1], window[-1], inside=inside, readings=others
            ):
                return " ".join(window)
    return None


def find_split(
    words: Sequence[str], entries: Iterable[tuple[str, ...]], origins: Sequence[int] = ()
) -> str | None:
    """Two or more consecutive ``words``, each shorter than a one-word entry, that spell it (or it with
    an ``s``): ``nu de``, ``p orn``. A run never starts with ``a``, ``i`` or ``o``, and joins only words
    written apart (``origins``): pieces of one written word (``s$ex``) are the leet views' to read."""
    origins = origins or range(len(words))
    stems = {entry[0] for entry in entries if len(entry) == 1}
    for stem in stems:
        for start, first in enumerate(words):
            if first in _ONE_LETTER_WORDS or not stem.startswith(first) or len(first) >= len(stem):
                continue
            joined = first
            for end in range(start + 1, len(words)):
                if len(words[end]) >= len(stem) or origins[end] == origins[end - 1]:
                    break
                joined += words[end]
                if joined in (stem, stem + "s"):
                    return " ".join(words[start : end + 1])
                if not stem.startswith(joined):
                    break
    return None


def stem_matches(stem: str, word: str, *, inside: bool = False, readings: Sequence[str] = ()) -> bool:
    """Whether ``word`` holds ``stem`` at its start (anywhere when ``inside`` and the word is all letters:
    ``3ssex`` is judged by its leet reading ``essex``) outside every longer innocent word, and no other
    reading of what was written shows the stem only inside innocent words (``assass1n`` read as
    ``assassin``, ``$cunthorpe`` as ``scunthorpe``)."""
    if not _bare(stem, word, anywhere=inside and word.isalpha()):
        return False
    return not any(stem in other and not _bare(stem, other, anywhere=True) for other in readings)


def _bare(stem: str, word: str, *, anywhere: bool) -> bool:
    """Whether ``stem`` occurs in ``word`` (at its start unless ``anywhere``) outside innocent words."""
    covered = _covered(word, [safe for safe in INNOCENT if len(safe) > len(stem) and stem in safe])
    at = word.find(stem)
    while at != -1 and (anywhere or at == 0):
        if not all(covered[at : at + len(stem)]):
            return True
        at = word.find(stem, at + 1)
    return False


def _covered(word: str, innocent: Iterable[str]) -> list[bool]:
    """For each character of ``word``, whether an innocent word in it covers it."""
    bits = [False] * len(word)
    for safe in innocent:
        at = word.find(safe)
        while at != -1:
            bits[at : at + len(safe)] = [True] * len(safe)
            at = word.find(safe, at + 1)
    return bits
