"""One grammar for every platform: a command line in, a frozen GenerationRequest out.

``a hamster godzilla --no blurry --seed 7 --ar 16:9 --n 4 --model tiny --top WHEN YOU --bottom SEE IT``

A remix adds ``--strength 0.6``; the picture itself comes with the command (an attachment, a reply, an
image post), never in its text.

The prompt comes first; a flag is ``--name`` at the start of the text or after whitespace, followed by
whitespace or the end (phones turn ``--`` into an em or en dash, which count too). Text-valued flags take
everything up to the next flag; numeric ones take exactly one word. Anything wrong raises BadRequest with a
message that names the flag and says why, written for the person who typed it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from generators.config import LimitsConfig
from generators.errors import BadRequest
from generators.requests import GenerationRequest, Kind, Source
from generators.text import clip

if TYPE_CHECKING:
    from generators.models import Catalog

_FLAG = re.compile(r"(?:(?<=\s)|^)(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
# ASCII digits only, as for the numeric flags; five digits bound int() and the ratio check.
_RATIO = re.compile(r"^([0-9]{1,5}):([0-9]{1,5})$")
_STRENGTH = re.compile(r"^[0-9]?(?:\.[0-9]{1,3})?$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SEED_LIMIT = 2**32
_SHOWN = 24  # echo at most this much of what the user typed: a reply must stay short


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One flag: its name, what it takes, and a line of help."""

    name: str
    takes: Literal["text", "number", "fraction", "ratio", "name", "nothing"]
    help: str


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("no", "text", "what to keep out of the picture (negative prompt)"),
    FlagSpec("seed", "number", "the random seed, to get the same picture again"),
    FlagSpec("ar", "ratio", "aspect ratio, e.g. 16:9"),
    FlagSpec("n", "number", "how many images in the grid"),
    FlagSpec("steps", "number", "denoising steps (more: slower, sometimes better)"),
    FlagSpec("model", "name", "which model draws it (see /info for the list)"),
    FlagSpec("strength", "fraction", "with a picture: how much of it to redraw, from 0.05 to 1"),
    FlagSpec("top", "text", "meme caption at the top"),
    FlagSpec("bottom", "text", "meme caption at the bottom"),
    FlagSpec("video", "nothing", "a short clip instead of a grid"),
)
_SPECS = {spec.name: spec for spec in FLAGS}


def normalise(text: str) -> str:
    """Control characters become spaces, runs of whitespace one space, ends stripped."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def parse(
    text: str, limits: LimitsConfig, catalog: Catalog | None = None, *, source: Source | None = None
) -> GenerationRequest:
    """Turn a command line into a request, or raise BadRequest saying what to change.

    With ``catalog``, a ``--model`` must name one of its models, and ``--video`` one of its clip models.
    With ``source`` (the picture that came with the command) the request is a remix, at ``--strength``
    or the limits' default strength.
    """
    text = normalise(text)
    matches = list(_FLAG.finditer(text))
    prompt = text[: matches[0].start()].strip() if matches else text
    values: dict[str, str] = {}
    for index, match in enumerate(matches):
        name = match.group(1).lower()
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        if name not in _SPECS:
            raise BadRequest(_unknown(name), flag=f"--{name}")
        if name in values:
            raise BadRequest(f"--{name} is given twice; keep one", flag=f"--{name}")
        values[name] = text[match.end() : end].strip()
    _check_prompt(prompt, limits)
    request = _build(prompt, values, limits, source)
    if catalog is not None and request.model is not None:
        catalog.resolve(request)  # raises for an unknown model or --video with an image model
    return request


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_SPECS), n=1, cutoff=0.6)
    hint = (
        f" (did you mean --{close[0]}?)"
        if close
        else f"; the flags are {', '.join('--' + n for n in _SPECS)}"
    )
    return f"unknown flag --{clip(name, _SHOWN)}{hint}"


def _check_prompt(prompt: str, limits: LimitsConfig) -> None:
    if not prompt:
        raise BadRequest("the prompt is empty: write what to draw before any --flags")
    if len(prompt) > limits.max_prompt_chars:
        raise BadRequest(f"the prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars}")


def _build(
    prompt: str, values: dict[str, str], limits: LimitsConfig, source: Source | None
) -> GenerationRequest:
    video = "video" in values
    if video and values["video"]:
        raise BadRequest("--video takes no value: put the prompt before the flags", flag="--video")
    if video and not limits.allow_video:
        raise BadRequest("--video is not available here: clips are turned off on this bot", flag="--video")
    if video and "n" in values:
        raise BadRequest("--n can't be used with --video: a clip is one video", flag="--n")
    fields: dict[str, Any] = {"prompt": prompt, "kind": Kind.VIDEO if video else Kind.IMAGE}
    fields["n"] = 1 if video else limits.default_n
    for name, raw in values.items():
        if name != "video":
            fields.update(_READERS[name](raw, limits))
    if source is None and "strength" in fields:
        raise BadRequest(
            "--strength needs a picture to start from: send one with the command (on the command line"
            " --image FILE, in Discord an attachment or a reply to a picture, on Reddit a mention under"
            " a picture post)",
            flag="--strength",
        )
    if source is not None:
        fields["source"] = source
        if not video:  # a clip starts from the picture as its first frame: there is nothing to redraw
            fields.setdefault("strength", limits.default_strength)
        elif "strength" in fields:
            raise BadRequest("--strength is for remixes; an animation keeps its picture", flag="--strength")
        if "ar" not in values and source.width and source.height:
            fields["aspect"] = nearest_ratio(source.width, source.height, limits.max_aspect)
    return GenerationRequest(**fields)


#: The shapes a remix snaps a picture's own to when no --ar is given (a tidy reproduce line).
COMMON_RATIOS = ((1, 1), (5, 4), (4, 3), (3, 2), (16, 9), (2, 1), (21, 9), (3, 1))


def nearest_ratio(width: int, height: int, max_aspect: float) -> tuple[int, int]:
    """The common ratio closest to ``width``:``height`` (in log terms), within ``max_aspect``."""
    shapes = [*COMMON_RATIOS, *((h, w) for w, h in COMMON_RATIOS[1:])]
    allowed = [(w, h) for w, h in shapes if max(w, h) / min(w, h) <= max_aspect]
    target = math.log(width / height)
    return min(allowed, key=lambda shape: abs(math.log(shape[0] / shape[1]) - target))


def _strength(raw: str, limits: LimitsConfig) -> dict[str, Any]:
    value = float(raw) if raw and raw != "." and _STRENGTH.match(raw) else None
    if value is None or not 0 < value <= 1:
        got = f" (got '{clip(raw, _SHOWN)}')" if raw else ""
        raise BadRequest(
            f"--strength must be a number above 0 and at most 1, like 0.6{got}", flag="--strength"
        )
    return {"strength": value}


def _text(
    field: str, flag: str, limit: Callable[[LimitsConfig], int]
) -> Callable[[str, LimitsConfig], dict[str, Any]]:
    def read(raw: str, limits: LimitsConfig) -> dict[str, Any]:
        if not raw:
            raise BadRequest(f"--{flag} needs some text after it", flag=f"--{flag}")
        if len(raw) > limit(limits):
            raise BadRequest(
                f"--{flag} is {len(raw)} characters; the limit is {limit(limits)}", flag=f"--{flag}"
            )
        return {field: raw}

    return read


def _number(
    field: str, flag: str, low: int, high: Callable[[LimitsConfig], int]
) -> Callable[[str, LimitsConfig], dict[str, Any]]:
    def read(raw: str, limits: LimitsConfig) -> dict[str, Any]:
        top = high(limits)
        word, _, rest = raw.partition(" ")
        if rest:
            raise BadRequest(
                f"--{flag} takes one number; '{clip(rest, _SHOWN)}' after it is not understood",
                flag=f"--{flag}",
            )
        value = _whole(word, len(str(top)))
        if value is None or not low <= value <= top:
            got = f" (got '{clip(word, _SHOWN)}')" if word else ""
            raise BadRequest(f"--{flag} must be a whole number from {low} to {top}{got}", flag=f"--{flag}")
        return {field: value}

    return read


def _whole(word: str, digits: int) -> int | None:
    # ASCII only (str.isdigit also takes '４' and '²'); the length check keeps int() off huge strings,
    # which it refuses past 4300 digits with a ValueError.
    if not word.isascii() or not word.isdigit():
        return None
    significant = word.lstrip("0") or "0"
    return int(significant) if len(significant) <= digits else None


def _ratio(raw: str, limits: LimitsConfig) -> dict[str, Any]:
    match = _RATIO.match(raw)
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise BadRequest(f"--ar must look like 16:9 (got '{clip(raw, _SHOWN)}')", flag="--ar")
    width, height = int(match.group(1)), int(match.group(2))
    if max(width, height) / min(width, height) > limits.max_aspect:
        most = f"{limits.max_aspect:g}"
        raise BadRequest(
            f"--ar {raw} is too stretched: the long side may be at most {most}× the short one", flag="--ar"
        )
    divisor = math.gcd(width, height)
    return {"aspect": (width // divisor, height // divisor)}


def _model(raw: str, limits: LimitsConfig) -> dict[str, Any]:
    if not _MODEL.match(raw):
        raise BadRequest(f"--model takes one model name (got '{clip(raw, _SHOWN)}')", flag="--model")
    return {"model": raw.lower()}


_READERS: dict[str, Callable[[str, LimitsConfig], dict[str, Any]]] = {
    "no": _text("negative", "no", lambda limits: limits.max_prompt_chars),
    "seed": _number("seed", "seed", 0, lambda limits: SEED_LIMIT - 1),
    "ar": _ratio,
    "model": _model,
    "strength": _strength,
    "n": _number("n", "n", 1, lambda limits: limits.max_n),
    "steps": _number("steps", "steps", 1, lambda limits: limits.max_steps),
    "top": _text("top", "top", lambda limits: limits.max_caption_chars),
    "bottom": _text("bottom", "bottom", lambda limits: limits.max_caption_chars),
}


def format_request(request: GenerationRequest, limits: LimitsConfig) -> str:
    """The canonical command line: parsing it gives the same request back."""
    parts = [request.prompt]
    if request.negative:
        parts.append(f"--no {request.negative}")
    if request.seed is not None:
        parts.append(f"--seed {request.seed}")
    if request.aspect != (1, 1):
        parts.append(f"--ar {request.aspect[0]}:{request.aspect[1]}")
    if request.kind is Kind.IMAGE and request.n != limits.default_n:
        parts.append(f"--n {request.n}")
    if request.steps is not None:
        parts.append(f"--steps {request.steps}")
    if request.model is not None:
        parts.append(f"--model {request.model}")
    if request.strength is not None:
        parts.append(f"--strength {request.strength:g}")
    if request.top:
        parts.append(f"--top {request.top}")
    if request.bottom:
        parts.append(f"--bottom {request.bottom}")
    if request.kind is Kind.VIDEO:
        parts.append("--video")
    return " ".join(parts)


def provenance(request: GenerationRequest) -> str:
    """Where a remix started, for its page and reply ("" for a request drawn from noise).

    It names the job or the picture's SHA-256, never the picture: a result shared elsewhere does not
    carry its source along.
    """
    source = request.source
    if source is None:
        return ""
    start = f"job {source.job}" if source.job else f"image sha256:{source.digest[:12]}…"
    if request.kind is Kind.VIDEO:
        return f"animation of {start}"
    return f"remix of {start} at strength {request.strength or 0:g}"


def help_text(limits: LimitsConfig) -> str:
    """A short usage text for help commands."""
    lines = ["Write what to draw, then any flags:"]
    for spec in FLAGS:
        arg = {
            "text": " TEXT",
            "number": " N",
            "fraction": " S",
            "ratio": " W:H",
            "name": " NAME",
            "nothing": "",
        }[spec.takes]
        lines.append(f"  --{spec.name}{arg}: {spec.help}")
    lines.append(f"Up to {limits.max_n} images (default {limits.default_n}), up to {limits.max_steps} steps.")
    return "\n".join(lines)
