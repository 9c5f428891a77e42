"""Judging a result's pictures: each grid image on its own, a clip by a few of its frames.

A :class:`Classifier` turns pictures into detections (:meth:`Classifier.detect`) and leaves the decision to
:func:`generators.safety.verdict.judge`. The real detector is :class:`generators.safety.detector.NudeNet`;
tests give a subclass its detections instead, since random-weight models draw no nudity.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from generators.safety.config import INSTALL_HINT, SafetyConfig, installed
from generators.safety.verdict import Detection, Verdict, as_one, judge, sample


class SafetyUnavailable(Exception):
    """``safety.classifier: on`` but the safety extra is not installed."""


class Classifier:
    """Judges pictures against the config's explicit labels and threshold; safe to share between threads
    when :meth:`detect` is (the detector's session is)."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self._labels = frozenset(config.explicit_labels)

    def detect(self, image: Image.Image) -> Sequence[Detection]:
        """What the detector finds in one picture."""
        raise NotImplementedError

    def judge_images(self, images: Sequence[Image.Image]) -> Verdict:
        """Which of ``images`` (a grid's tiles, in order) are explicit."""
        detections = [self.detect(image) for image in images]
        return judge(detections, labels=self._labels, threshold=self.config.threshold)

    def judge_clip(self, frames: Sequence[Image.Image]) -> Verdict:
        """Whether a clip is explicit, by ``safety.clip_frames`` of its frames, evenly spread."""
        picked = [frames[i] for i in sample(len(frames), self.config.clip_frames)]
        return as_one(self.judge_images(picked))


def load_classifier(config: SafetyConfig) -> Classifier | None:
    """The detector the config asks for, loaded once (about 0.3 s), or None when it is off."""
    if config.classifier == "on" and not installed():
        raise SafetyUnavailable(f"safety.classifier is on but the detector is not installed: {INSTALL_HINT}")
    if not config.enabled:
        return None
    from generators.safety.detector import NudeNet  # onnxruntime: only where results are rendered

    return NudeNet(config)
