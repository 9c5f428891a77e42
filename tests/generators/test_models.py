"""The catalog of served models: defaults by kind, --model checks, per-model step and work limits."""

from __future__ import annotations

import dataclasses

import pytest

from generators.config import LimitsConfig, ModelConfig
from generators.errors import BadRequest
from generators.models import DEFAULT_MAX_WORK, Catalog, ModelInfo, describe_model
from generators.requests import GenerationRequest, Kind

IMAGE = ModelInfo("turbo", "stabilityai/sd-turbo", Kind.IMAGE, 1, 4, 0.0, 512, 16, 8, "cpu", "float32")
OTHER = dataclasses.replace(IMAGE, name="tiny", max_steps=50)
CLIP = ModelInfo("tiny-video", "builtin:tiny-video", Kind.VIDEO, 4, 50, 5.0, 128, 16, 8, "cpu", "float32")
BOTH = Catalog((IMAGE, OTHER, CLIP), image="turbo", video="tiny-video")


def test_a_request_without_a_model_gets_the_default_for_its_kind() -> None:
    assert BOTH.resolve(GenerationRequest("a cat", n=4)).model == "turbo"
    clip = BOTH.resolve(GenerationRequest("a cat", kind=Kind.VIDEO))
    assert (clip.model, clip.kind) == ("tiny-video", Kind.VIDEO)


def test_naming_a_clip_model_makes_a_clip_of_one() -> None:
    request = BOTH.resolve(GenerationRequest("a cat", n=9, model="tiny-video"))
    assert (request.kind, request.n, request.model) == (Kind.VIDEO, 1, "tiny-video")


def test_an_unknown_model_lists_the_models_and_suggests_the_closest() -> None:
    with pytest.raises(
        BadRequest, match=r"no model 'turob' here: did you mean turbo\? the models are turbo, tiny"
    ):
        BOTH.resolve(GenerationRequest("a cat", model="turob"))
    with pytest.raises(BadRequest) as caught:
        BOTH.resolve(GenerationRequest("a cat", model="x" * 500))
    assert len(str(caught.value)) < 200  # what the user typed is clipped in the reply


def test_video_with_an_image_model_is_refused_naming_the_clip_models() -> None:
    with pytest.raises(BadRequest, match=r"turbo is an image model.*clip models are tiny-video"):
        BOTH.resolve(GenerationRequest("a cat", kind=Kind.VIDEO, model="turbo"))


def test_steps_are_capped_per_model() -> None:
    with pytest.raises(BadRequest, match="at most 4 for turbo"):
        BOTH.resolve(GenerationRequest("a cat", steps=5))
    assert BOTH.resolve(GenerationRequest("a cat", steps=5, model="tiny")).steps == 5


def test_a_bot_without_a_clip_model_says_so_and_a_clip_only_bot_makes_clips() -> None:
    images = Catalog((IMAGE,), image="turbo")
    with pytest.raises(BadRequest, match="no clip model"):
        images.resolve(GenerationRequest("a cat", kind=Kind.VIDEO))
    clips = Catalog((CLIP,), video="tiny-video")
    assert clips.resolve(GenerationRequest("a cat", n=4)).kind is Kind.VIDEO


def test_defaults_must_exist_and_match_their_kind() -> None:
    with pytest.raises(KeyError):
        Catalog((IMAGE,), image="nope")
    with pytest.raises(ValueError, match="not a video model"):
        Catalog((IMAGE,), video="turbo")
    with pytest.raises(ValueError, match="unique"):
        Catalog((IMAGE, IMAGE))


SDXL = dataclasses.replace(IMAGE, name="sdxl", steps=25, max_steps=50, size=1024, max_work=64)
BIG = Catalog((SDXL, CLIP), image="sdxl", video="tiny-video")


def test_a_request_over_the_work_cap_is_refused_saying_what_to_lower() -> None:
    with pytest.raises(BadRequest) as caught:
        BIG.resolve(GenerationRequest("a cat", n=9, steps=50))
    assert str(caught.value) == (
        "this asks for 9 images × 50 steps at 1024×1024 (450 megapixel-steps); the limit for sdxl is 64:"
        " use fewer --n or --steps"
    )
    assert BIG.resolve(GenerationRequest("a cat", n=2)).model == "sdxl"  # 2 × 25 × 1 = 50


def test_the_work_cap_counts_the_size_the_worker_will_run() -> None:
    turbo = Catalog((dataclasses.replace(IMAGE, max_work=9),), image="turbo")
    assert turbo.resolve(GenerationRequest("a cat", n=9, steps=4)).n == 9  # 9 × 4 × 512²
    stretched = GenerationRequest("a cat", n=9, steps=4, aspect=(17, 15))  # rounds up to 576×512
    with pytest.raises(BadRequest, match=r"at 576×512 \(10.1 megapixel-steps\).*steps, or --ar 1:1$"):
        turbo.resolve(stretched)
    assert turbo.resolve(stretched, max_side=512).n == 9  # a smaller max_side shrinks it to 512×448


def test_a_clip_counts_its_frames_and_is_told_to_lower_steps() -> None:
    clips = Catalog((dataclasses.replace(CLIP, max_work=1.0),), video="tiny-video")
    assert clips.resolve(GenerationRequest("a cat", kind=Kind.VIDEO)).steps is None  # 16 × 4 × 128²
    with pytest.raises(BadRequest, match=r"a clip of 16 frames × 5 steps at 128×128 .* fewer --steps$"):
        clips.resolve(GenerationRequest("a cat", kind=Kind.VIDEO, steps=5))


@pytest.mark.parametrize("name", ["tiny", "tiny-video", "sd-turbo", "modelscope-t2v"])
def test_each_preset_allows_its_full_default_grid_at_every_allowed_size(name: str) -> None:
    model = describe_model(ModelConfig(name=name))
    limits = LimitsConfig()
    catalog = Catalog((model,), **{model.kind.value: model.name})  # type: ignore[arg-type]
    steps = model.steps if name == "modelscope-t2v" else model.max_steps  # the tiny ones allow it all
    for ratio in [(1, 1), (9, 8), (5, 4), (4, 3), (3, 2), (16, 9), (2, 1), (3, 1)]:
        for aspect in (ratio, ratio[::-1]):
            request = GenerationRequest("a cat", n=limits.max_n, steps=steps, aspect=aspect, kind=model.kind)
            assert catalog.resolve(request).model == name


def test_a_model_that_is_not_a_preset_gets_the_documented_cap_unless_it_sets_one() -> None:
    assert describe_model(ModelConfig(name="someone/sd15")).max_work == DEFAULT_MAX_WORK == 64
    assert describe_model(ModelConfig(name="someone/sdxl", max_work=300)).max_work == 300
    assert describe_model(ModelConfig(name="sd-turbo", max_work=5)).max_work == 5
