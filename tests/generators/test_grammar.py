"""The command grammar: every flag, every refusal, the round trip, and fuzzing."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generators.config import LimitsConfig
from generators.errors import BadRequest
from generators.families import min_steps
from generators.grammar import format_request, help_text, parse, provenance
from generators.models import Catalog, ModelInfo
from generators.plan import size_for
from generators.requests import GenerationRequest, Kind, Source

LIMITS = LimitsConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat", GenerationRequest("a cat", n=9)),
        ("a cat --no dogs, blurry", GenerationRequest("a cat", negative="dogs, blurry", n=9)),
        ("a cat --seed 42", GenerationRequest("a cat", seed=42, n=9)),
        ("a cat --ar 16:8", GenerationRequest("a cat", aspect=(2, 1), n=9)),
        ("a cat --n 4", GenerationRequest("a cat", n=4)),
        ("a cat --steps 20", GenerationRequest("a cat", steps=20, n=9)),
        (
            "a cat --top WHEN YOU --bottom SEE IT",
            GenerationRequest("a cat", n=9, top="WHEN YOU", bottom="SEE IT"),
        ),
        ("a cat --video", GenerationRequest("a cat", kind=Kind.VIDEO, n=1)),
        ("a cat —seed 3 –n 2", GenerationRequest("a cat", seed=3, n=2)),
        ("a cat --SEED 3 --No Dogs", GenerationRequest("a cat", seed=3, negative="Dogs", n=9)),
        ("  a\tcat \n\x00 --n 1 ", GenerationRequest("a cat", n=1)),
        ("a--b -- c --> d", GenerationRequest("a--b -- c --> d", n=9)),
        ("rock—paper – x ---n 2 --n=2 -n 3", GenerationRequest("rock—paper – x ---n 2 --n=2 -n 3", n=9)),
        ("a cat --seed 007", GenerationRequest("a cat", seed=7, n=9)),
        ("spaghetti 🍝 吃 --top 🍝", GenerationRequest("spaghetti 🍝 吃", n=9, top="🍝")),
        ("x --seed 4294967295", GenerationRequest("x", seed=4294967295, n=9)),
    ],
)
def test_parse(text: str, expected: GenerationRequest) -> None:
    assert parse(text, LIMITS) == expected


@pytest.mark.parametrize(
    ("text", "flag", "phrase"),
    [
        ("a cat --n ten", "--n", "whole number from 1 to 9 (got 'ten')"),
        ("a cat --n 0", "--n", "from 1 to 9"),
        ("a cat --n 10", "--n", "from 1 to 9"),
        ("a cat --steps 51", "--steps", "from 1 to 50"),
        ("a cat --steps 0", "--steps", "from 1 to 50 (got '0')"),
        ("a cat --steps 2.5", "--steps", "whole number"),
        ("a cat --seed -1", "--seed", "whole number"),
        ("a cat --seed 4294967296", "--seed", "from 0 to 4294967295"),
        ("a cat --seed 1 2", "--seed", "'2' after it is not understood"),
        ("a cat --seed", "--seed", "whole number"),
        ("a cat --ar wide", "--ar", "must look like 16:9"),
        ("a cat --ar 0:1", "--ar", "must look like 16:9"),
        ("a cat --ar 4:1", "--ar", "too stretched"),
        ("a cat --ar 16:9:1", "--ar", "must look like 16:9"),
        ("a cat --ar ١٦:٩", "--ar", "must look like 16:9"),
        ("a cat --sed 4", "--sed", "did you mean --seed?"),
        ("a cat --zzz", "--zzz", "the flags are --no, --seed"),
        ("a cat --n 1 --n 2", "--n", "given twice"),
        ("a cat --no", "--no", "needs some text"),
        ("a cat --top " + "x" * 121, "--top", "the limit is 120"),
        ("a cat --bottom " + "x" * 121, "--bottom", "--bottom is 121 characters; the limit is 120"),
        ("a cat --no " + "x" * 601, "--no", "the limit is 600"),
        ("a cat --video --n 2", "--n", "can't be used with --video"),
        ("a cat --video now", "--video", "takes no value"),
        ("a cat --n ４", "--n", "whole number"),
    ],
)
def test_refusals_name_the_flag_and_why(text: str, flag: str, phrase: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(text, LIMITS)
    assert caught.value.flag == flag
    assert phrase in str(caught.value)


def test_prompt_refusals() -> None:
    with pytest.raises(BadRequest, match="prompt is empty") as empty:
        parse("   --seed 4", LIMITS)
    assert empty.value.flag is None
    with pytest.raises(BadRequest, match="the prompt is 601 characters; the limit is 600"):
        parse("x" * 601, LIMITS)


def test_video_can_be_switched_off() -> None:
    with pytest.raises(BadRequest, match="--video is not available") as caught:
        parse("a cat --video", LIMITS.model_copy(update={"allow_video": False}))
    assert caught.value.flag == "--video"


@pytest.mark.parametrize(
    "text",
    [
        "a cat --seed " + "9" * 5000,
        "a cat --n " + "1" * 5000,
        "a cat --steps 1 " + "x" * 5000,
        "a cat --ar " + "x" * 5000,
        "a cat --" + "x" * 5000,
    ],
)
def test_huge_values_are_refused_briefly(text: str) -> None:
    # int() raises ValueError past 4300 digits, and a reply quoting 5000 characters would not post.
    with pytest.raises(BadRequest) as caught:
        parse(text, LIMITS)
    assert len(str(caught.value)) < 200


def test_leading_zeros_do_not_hide_a_small_number() -> None:
    assert parse("a cat --seed " + "0" * 40 + "5", LIMITS).seed == 5


def test_defaults_come_from_the_limits() -> None:
    limits = LimitsConfig(default_n=4, max_n=4)
    assert parse("a cat", limits).n == 4
    assert format_request(parse("a cat --n 4", limits), limits) == "a cat"


@pytest.mark.parametrize(
    ("aspect", "native", "max_side", "expected"),
    [
        ((1, 1), 512, 1024, (512, 512)),
        ((16, 9), 512, 1024, (704, 384)),
        ((9, 16), 512, 1024, (384, 704)),
        ((3, 1), 1024, 1024, (1024, 320)),
        ((1, 1), 64, 1024, (64, 64)),
        ((3, 1), 64, 1024, (128, 64)),
    ],
)
def test_size_for(aspect: tuple[int, int], native: int, max_side: int, expected: tuple[int, int]) -> None:
    width, height = size_for(aspect, native, max_side)
    assert (width, height) == expected
    assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= max_side


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.sampled_from([256, 512, 768, 1024]),
    st.sampled_from([512, 768, 1024, 2048]),
)
def test_size_for_keeps_its_promises(width: int, height: int, native: int, max_side: int) -> None:
    out_w, out_h = size_for((width, height), native, max_side)
    assert out_w % 64 == 0 and out_h % 64 == 0
    assert 64 <= out_w <= max_side and 64 <= out_h <= max_side
    # Orientation survives the rounding: a landscape ratio never comes out portrait.
    assert (out_w >= out_h) == (width >= height) or out_w == out_h
    stretch = max(width, height) / min(width, height)
    if stretch <= 3 and native * stretch**0.5 <= max_side:  # not clamped: the area stays near native²
        assert 0.6 * native**2 <= out_w * out_h <= 1.4 * native**2


def test_help_lists_every_flag() -> None:
    text = help_text(LIMITS)
    for flag in (
        "--no TEXT",
        "--seed N",
        "--ar W:H",
        "--n N",
        "--steps N",
        "--top TEXT",
        "--bottom TEXT",
        "--video",
    ):
        assert flag in text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_input_crashes_the_parser(text: str) -> None:
    try:
        parse(text, LIMITS)
    except BadRequest:
        pass


_FLAGS = ["--no", "--seed", "--ar", "--n", "--steps", "--top", "--bottom", "--video", "--nope", "—n", "–seed"]
_MODELS = ["--model", "tiny", "Tiny-Video"]
_pieces = st.sampled_from(
    [*_FLAGS, *_MODELS, "cat", "🍝", "a--b", "--", "—", "7", "16:9", "2", "0", "x", "\t", "\n", "-", ":"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=12).map(" ".join))
def test_whatever_parses_formats_back_to_itself(text: str) -> None:
    try:
        request = parse(text, LIMITS)
    except BadRequest:
        return
    assert parse(format_request(request, LIMITS), LIMITS) == request


_words = st.text(
    st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp", "Zs"]), min_size=1, max_size=8
).filter(lambda w: not w.startswith(("--", "—", "–")))
_text = st.lists(_words, min_size=1, max_size=5).map(" ".join)


@st.composite
def requests(draw: st.DrawFn) -> GenerationRequest:
    video = draw(st.booleans())
    ratio = draw(st.sampled_from([(1, 1), (16, 9), (2, 3), (3, 1)]))
    return GenerationRequest(
        prompt=draw(_text),
        negative=draw(st.one_of(st.just(""), _text)),
        seed=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        aspect=ratio,
        n=1 if video else draw(st.integers(1, 9)),
        steps=draw(st.one_of(st.none(), st.integers(1, 50))),
        top=draw(st.one_of(st.just(""), _text)),
        bottom=draw(st.one_of(st.just(""), _text)),
        kind=Kind.VIDEO if video else Kind.IMAGE,
        model=draw(st.sampled_from([None, "tiny", "sd-turbo", "my.model_2"])),
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_any_valid_request_round_trips(request: GenerationRequest) -> None:
    assert parse(format_request(request, LIMITS), LIMITS) == request


CATALOG = Catalog(
    (
        ModelInfo("tiny", "builtin:tiny", Kind.IMAGE, 4, 50, 5.0, 256, 16, 8, "cpu", "float32"),
        ModelInfo("tiny-video", "builtin:tiny-video", Kind.VIDEO, 4, 50, 5.0, 128, 16, 8, "cpu", "float32"),
    ),
    image="tiny",
    video="tiny-video",
)


def test_model_names_a_model_and_formats_back() -> None:
    request = parse("a cat --model Tiny --n 4", LIMITS, CATALOG)
    assert request.model == "tiny" and request.n == 4
    assert format_request(request, LIMITS) == "a cat --n 4 --model tiny"
    assert parse("a cat", LIMITS, CATALOG).model is None  # the default is the job service's to fill


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a cat --model tiyn", "no model 'tiyn' here: did you mean tiny? the models are tiny, tiny-video"),
        ("a cat --model", "--model takes one model name"),
        ("a cat --model two words", "--model takes one model name (got 'two words')"),
        ("a cat --model tiny --video", "tiny is an image model, so --video can't be used with it"),
        ("a cat --model tiny --model tiny", "--model is given twice"),
    ],
)
def test_model_refusals_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(message)) as caught:
        parse(text, LIMITS, CATALOG)
    assert caught.value.flag == "--model" or "--video" in message


# -- remix -----------------------------------------------------------------------------------------

PICTURE = Source("ab" * 32)


@pytest.mark.parametrize(
    ("text", "strength"),
    [
        ("a cat", 0.6),
        ("a cat --strength 0.25", 0.25),
        ("a cat --strength .5", 0.5),
        ("a cat --strength 1", 1.0),
        ("a cat --strength 1.0", 1.0),
    ],
)
def test_a_picture_makes_a_remix_at_the_given_or_default_strength(text: str, strength: float) -> None:
    request = parse(text, LIMITS, source=PICTURE)
    assert request.source == PICTURE and request.remix
    assert request.strength == strength


@pytest.mark.parametrize(
    "raw", ["0", "0.0", "1.5", "2", "-0.5", "abc", ".", "0.6.1", "0,6", "٠.5", "0.12345"]
)
def test_strength_must_be_above_0_and_at_most_1(raw: str) -> None:
    with pytest.raises(BadRequest, match="--strength must be a number above 0 and at most 1") as caught:
        parse(f"a cat --strength {raw}", LIMITS, source=PICTURE)
    assert caught.value.flag == "--strength"


def test_strength_without_a_picture_says_how_to_give_one() -> None:
    with pytest.raises(BadRequest, match="needs a picture to start from"):
        parse("a cat --strength 0.5", LIMITS)


def test_explicit_steps_must_leave_a_step_at_the_strength() -> None:
    sd = ModelInfo("sd", "x", Kind.IMAGE, 4, 50, 5.0, 512, 16, 8, "cpu", "float32")
    catalog = Catalog((sd,), image="sd")
    assert catalog.resolve(parse("a cat --steps 2 --strength 0.5", LIMITS, source=PICTURE)).steps == 2
    with pytest.raises(BadRequest, match=r"--steps 1 at --strength 0\.5 leaves no step to run.*--steps 2"):
        catalog.resolve(parse("a cat --steps 1 --strength 0.5", LIMITS, source=PICTURE))
    with pytest.raises(BadRequest, match="use --steps 10 or more"):
        catalog.resolve(parse("a cat --steps 9 --strength 0.1", LIMITS, source=PICTURE))
    # A flow-matching model's remix runs what is left after skipping int(steps - steps × strength).
    flux = dataclasses.replace(sd, name="flux", step_rule="flow")
    assert Catalog((flux,), image="flux").resolve(
        parse("a cat --steps 1 --strength 0.5", LIMITS, source=PICTURE)
    )


@pytest.mark.parametrize("strength", [0.05, 0.1, 0.29, 0.3, 0.333, 0.5, 0.6, 0.7, 0.999, 1.0])
def test_min_steps_is_the_fewest_that_run_a_step(strength: float) -> None:
    least = min_steps(strength)
    assert int(least * strength) >= 1
    assert least == 1 or int((least - 1) * strength) < 1


def test_a_few_step_model_schedules_enough_steps_for_a_remix() -> None:
    turbo = ModelInfo("turbo", "x", Kind.IMAGE, 1, 4, 0.0, 512, 16, 8, "cpu", "float32")
    catalog = Catalog((turbo,), image="turbo")
    remix = parse("a cat --strength 0.5", LIMITS, catalog, source=PICTURE)
    assert turbo.steps_for(remix) == 2  # 2 × 0.5 = 1 step actually runs
    assert turbo.steps_for(parse("a cat", LIMITS)) == 1
    with pytest.raises(BadRequest, match=r"--strength 0\.2 needs 5 steps on turbo, which allows 4"):
        catalog.resolve(parse("a cat --strength 0.2", LIMITS, catalog, source=PICTURE))


def test_a_remix_formats_back_and_names_its_source() -> None:
    request = parse("a cat --seed 3 --strength 0.45", LIMITS, source=PICTURE)
    assert parse(format_request(request, LIMITS), LIMITS, source=PICTURE) == request
    assert provenance(request) == f"remix of image sha256:{'ab' * 6}… at strength 0.45"
    from_job = parse("a cat", LIMITS, source=Source("cd" * 32, job="AbC123xyz"))
    assert provenance(from_job) == "remix of job AbC123xyz at strength 0.6"
    assert provenance(parse("a cat", LIMITS)) == ""
    assert GenerationRequest.from_dict(request.to_dict()) == request


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1920, 1080), (16, 9)),
        ((1080, 1920), (9, 16)),
        ((640, 640), (1, 1)),
        ((1000, 667), (3, 2)),
        ((5000, 500), (3, 1)),
        ((97, 101), (1, 1)),
        ((1024, 768), (4, 3)),
    ],
)
def test_a_remix_keeps_its_pictures_shape_unless_ar_says_otherwise(
    size: tuple[int, int], ratio: tuple[int, int]
) -> None:
    picture = Source("ab" * 32, width=size[0], height=size[1])
    assert parse("a cat", LIMITS, source=picture).aspect == ratio
    assert parse("a cat --ar 2:3", LIMITS, source=picture).aspect == (2, 3)
    request = parse("a cat", LIMITS, source=picture)
    assert parse(format_request(request, LIMITS), LIMITS, source=picture) == request
