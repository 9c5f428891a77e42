"""The image classifier: its decision over given detections, its place in rendering, the real detector."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from generators.config import RenderConfig
from generators.pipelines import DiffusersBackend
from generators.render import make_grid, read_metadata
from generators.requests import BatchSpec, GenerationRequest, Job, Kind, Slot
from generators.results import render_job
from generators.safety.classifier import Classifier, load_classifier
from generators.safety.config import EXPLICIT, SafetyConfig, installed
from generators.safety.verdict import Detection, Verdict, as_one, judge, sample
from tests.helpers import TEST_SIZE

BREAST = Detection("FEMALE_BREAST_EXPOSED", 0.8, (10, 10, 20, 20))
FACE = Detection("FACE_FEMALE", 0.95, (0, 0, 30, 30))
COVERED = Detection("FEMALE_BREAST_COVERED", 0.9, (10, 10, 20, 20))
needs_detector = pytest.mark.skipif(not installed(), reason="the safety extra (nudenet) is not installed")


class Given(Classifier):
    """A real classifier whose detector's output is given: one list of detections per picture, in the
    order it is asked (then nothing), since random-weight models draw no nudity."""

    def __init__(self, *per_image: Sequence[Detection], config: SafetyConfig | None = None) -> None:
        super().__init__(config or SafetyConfig())
        self.given = list(per_image)
        self.seen: list[tuple[int, int]] = []

    def detect(self, image: Image.Image) -> Sequence[Detection]:
        self.seen.append(image.size)
        return self.given.pop(0) if self.given else ()


def flagging(*tiles: int, count: int = 9) -> Given:
    """A stand-in that flags the given tiles of a grid of ``count``."""
    return Given(*([BREAST] if i in tiles else [FACE] for i in range(count)))


def test_only_explicit_labels_at_the_threshold_flag() -> None:
    labels = frozenset(EXPLICIT)
    weak = Detection("FEMALE_BREAST_EXPOSED", 0.49, (0, 0, 1, 1))
    verdict = judge([[FACE, COVERED], [BREAST, FACE], [weak], []], labels=labels, threshold=0.5)
    assert verdict == Verdict((1,), ("FEMALE_BREAST_EXPOSED",))
    assert not judge([[weak]], labels=labels, threshold=0.5)
    assert judge([[weak]], labels=labels, threshold=0.45).flagged == (0,)
    genitals = Detection("MALE_GENITALIA_EXPOSED", 0.6, (0, 0, 5, 5))
    both = judge([[genitals], [], [BREAST, genitals]], labels=labels, threshold=0.5)
    assert both.flagged == (0, 2) and both.labels == ("FEMALE_BREAST_EXPOSED", "MALE_GENITALIA_EXPOSED")
    assert judge([[FACE]], labels={"FACE_FEMALE"}, threshold=0.5).flagged == (0,)  # labels are the config's


def test_a_clip_is_flagged_as_one_by_evenly_spread_frames() -> None:
    assert as_one(Verdict((2, 3), ("BUTTOCKS_EXPOSED",))) == Verdict((0,), ("BUTTOCKS_EXPOSED",))
    assert as_one(Verdict()) == Verdict()
    assert sample(16, 4) == [0, 5, 10, 15] and sample(3, 4) == [0, 1, 2] and sample(9, 1) == [0]
    frames = [Image.new("RGB", (8 + i, 8)) for i in range(16)]
    classifier = Given([], [], [BREAST], config=SafetyConfig(clip_frames=4))
    assert classifier.judge_clip(frames) == Verdict((0,), ("FEMALE_BREAST_EXPOSED",))
    assert classifier.seen == [(8, 8), (13, 8), (18, 8), (23, 8)]  # frames 0, 5, 10 and 15


def test_the_config_refuses_unknown_labels_and_says_whether_it_is_on() -> None:
    with pytest.raises(ValidationError, match="unknown detector labels"):
        SafetyConfig(explicit_labels=("NAKED",))
    with pytest.raises(ValidationError):
        SafetyConfig(threshold=0.1)  # the detector reports nothing under 0.25
    with pytest.raises(ValidationError):
        SafetyConfig(clasifier="on")  # type: ignore[call-arg]  # a typo is an error
    off = SafetyConfig(classifier="off")
    assert not off.enabled and "off (safety.classifier: off)" in off.status()
    assert load_classifier(off) is None
    auto = SafetyConfig()
    assert auto.enabled is installed()
    assert ("on" if installed() else "not installed") in auto.status()


async def tiny_outputs(backend: DiffusersBackend, n: int) -> list[list[Image.Image]]:
    spec = BatchSpec(TEST_SIZE, TEST_SIZE, 2)
    slots = [Slot(f"a cat number {i}", "", 100 + i) for i in range(n)]
    return backend.generate(spec, slots, lambda *_: None)


def job_of(n: int, kind: Kind = Kind.IMAGE) -> Job:
    return Job("job1", "u", GenerationRequest(prompt="a cat", n=n, kind=kind))


def rendered(
    job: Job, outputs: list[list[Image.Image]], folder: Path, classifier: Classifier | None
) -> tuple[Path, dict[str, str], tuple[int, ...], tuple[str, ...]]:
    result = render_job(
        job,
        outputs,
        spec=BatchSpec(TEST_SIZE, TEST_SIZE, 2),
        seeds=list(range(len(outputs))),
        metadata={"prompt": "a cat"},
        folder=folder,
        config=RenderConfig(),
        fps=8,
        elapsed=0.1,
        classifier=classifier,
    )
    path = result.primary.path
    return path, read_metadata(path.read_bytes()), result.nsfw, result.nsfw_labels


async def test_a_flagged_grid_says_so_in_its_result_metadata_and_log(
    tiny_backend: DiffusersBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outputs = await tiny_outputs(tiny_backend, 4)
    classifier = flagging(1, 3, count=4)
    with caplog.at_level(logging.INFO, logger="generators.results"):
        _, meta, nsfw, labels = rendered(job_of(4), outputs, tmp_path, classifier)
    assert nsfw == (1, 3) and labels == ("FEMALE_BREAST_EXPOSED",)
    assert meta["nsfw"] == "1,3" and meta["nsfw_labels"] == "FEMALE_BREAST_EXPOSED"
    assert classifier.seen == [(TEST_SIZE, TEST_SIZE)] * 4  # each image on its own, not the grid
    flagged = [r for r in caplog.records if "flagged" in r.getMessage()]
    assert [r.levelno for r in flagged] == [logging.INFO]
    assert "job1" in flagged[0].getMessage() and "FEMALE_BREAST_EXPOSED" in flagged[0].getMessage()
    _, clean, nsfw, _ = rendered(job_of(4), outputs, tmp_path / "clean", Given())
    assert nsfw == () and clean["nsfw"] == "none"
    _, unjudged, nsfw, _ = rendered(job_of(4), outputs, tmp_path / "unjudged", None)
    assert nsfw == () and "nsfw" not in unjudged


async def test_a_flagged_clip_is_flagged_as_one(tiny_video_backend: DiffusersBackend, tmp_path: Path) -> None:
    spec = BatchSpec(TEST_SIZE, TEST_SIZE, 2)
    outputs = tiny_video_backend.generate(spec, [Slot("a cat", "", 1)], lambda *_: None)
    classifier = Given([], [FACE], [BREAST])
    _, meta, nsfw, labels = rendered(job_of(1, Kind.VIDEO), outputs, tmp_path, classifier)
    assert nsfw == (0,) and labels == ("FEMALE_BREAST_EXPOSED",) and meta["nsfw"] == "0"
    assert len(outputs[0]) > 4 and len(classifier.seen) == 4  # safety.clip_frames of them


@needs_detector
async def test_the_real_detector_finds_nothing_in_safe_pictures(
    tiny_backend: DiffusersBackend, tmp_path: Path
) -> None:
    classifier = load_classifier(SafetyConfig(classifier="on"))
    assert classifier is not None
    outputs = await tiny_outputs(tiny_backend, 9)
    path, meta, nsfw, _ = rendered(job_of(9), outputs, tmp_path, classifier)
    assert nsfw == () and meta["nsfw"] == "none"  # the tiny model's own pictures
    grid = Image.open(path)
    grid.load()
    assert classifier.judge_images([grid, make_grid([grid] * 4)]) == Verdict()  # a rendered grid
    plain = [Image.new("RGB", (300, 200), (214, 170, 140)), Image.new("RGB", (64, 512), "white")]
    for image in plain:  # skin-coloured and odd-shaped pictures too
        assert all(d.label not in EXPLICIT for d in classifier.detect(image))


@needs_detector
def test_the_real_detector_boxes_are_in_the_pictures_pixels() -> None:
    """Whatever it finds (faces, feet…) lies inside the picture, best first."""
    classifier = load_classifier(SafetyConfig(classifier="on"))
    assert classifier is not None
    image = Image.effect_mandelbrot((400, 300), (-2.0, -1.2, 1.0, 1.2), 64).convert("RGB")
    detections = list(classifier.detect(image))
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.25 for s in scores)
    for d in detections:
        x, y, w, h = d.box
        assert 0 <= x and 0 <= y and x + w <= 400 and y + h <= 300


@needs_detector
def test_our_reading_of_the_detectors_output_is_nudenets() -> None:
    """The same raw candidates give NudeNet's own boxes, labels and scores (its code, OpenCV's NMS),
    but for boxes wholly in the square's padding, which we drop: they hold none of the picture."""
    from nudenet.nudenet import _postprocess

    from generators.safety.detector import _detections

    rng = np.random.default_rng(3)
    compared = 0
    for size in [(512, 384), (384, 512), (300, 300)] * 10:
        raw = np.zeros((1, 22, 60), np.float32)
        raw[0, :2] = rng.uniform(0, 320, (2, 60))
        raw[0, 2:4] = rng.uniform(5, 150, (2, 60))
        raw[0, 4:] = rng.uniform(0, 0.3, (18, 60))
        hot = rng.choice(60, 15, replace=False)
        raw[0, 4 + rng.integers(0, 18, 15), hot] = rng.uniform(0.26, 0.99, 15)
        side = max(size)
        pads = (side - size[0], side - size[1], side / size[0], side / size[1])
        theirs = _postprocess([raw], *pads, *size, 320, 320)
        ours = _detections(raw[0].T, side / 320, size)
        expected = [(t["class"], t["score"], tuple(t["box"])) for t in theirs if min(t["box"][2:]) > 0]
        assert [(d.label, d.score, d.box) for d in ours if min(d.box[2:]) > 0] == expected
        compared += len(expected)
    assert compared > 1000


@needs_detector
@pytest.mark.parametrize("size", [(512, 384), (200, 640), (64, 64)])
def test_the_detectors_input_is_nudenets(size: tuple[int, int]) -> None:
    """Padded square, plain bilinear to 320², RGB in 0..1: within a level of NudeNet's own (OpenCV's)."""
    from nudenet.nudenet import _read_image

    from generators.safety.detector import _blob

    small = np.random.default_rng(1).integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    ours, scale = _blob(image)
    theirs = _read_image(np.asarray(image.convert("RGBA")), 320)[0]
    assert ours.shape == theirs.shape == (1, 3, 320, 320) and scale == max(size) / 320
    assert np.abs(ours - theirs).max() <= 1 / 255
