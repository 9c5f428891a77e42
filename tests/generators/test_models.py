"""The catalog of served models: defaults by kind, --model checks, per-model step limits."""

from __future__ import annotations

import dataclasses

import pytest

from generators.errors import BadRequest
from generators.models import Catalog, ModelInfo
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
