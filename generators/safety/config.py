"""The ``safety`` section of config.yaml: whether the image classifier runs and what it counts as explicit.

No onnxruntime here: the bot process reads this section and says whether the classifier is on, and only
the process that renders results loads the detector.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator

from generators.config import Section

#: The NudeNet 320n detector's classes, in the order of its output channels (after the 4 box values).
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)

#: What counts as explicit unless the config says otherwise: exposed genitals, breasts, buttocks.
EXPLICIT = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)

#: What to install for the classifier (the ``safety`` extra).
INSTALL_HINT = "pip install 'memebot[safety]'"


class SafetyConfig(Section):
    """The image classifier run on every result (the ``safety`` extra: nudenet on onnxruntime)."""

    classifier: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: on when the safety extra is installed; on: refuse to start without it; off.",
    )
    explicit_labels: tuple[str, ...] = Field(
        EXPLICIT, min_length=1, description="Detector labels that flag an image."
    )
    threshold: float = Field(
        0.5, ge=0.25, le=1.0, description="Least detector score (0.25 to 1) of an explicit label that flags."
    )
    clip_frames: int = Field(
        4, ge=1, le=64, description="Frames of a clip judged, evenly spread, first and last included."
    )
    threads: int = Field(
        1, ge=1, description="CPU threads of the detector (1 leaves the other cores to the rest)."
    )
    flagged_in_safe_channel: Literal["block", "spoiler"] = Field(
        "block",
        description="A flagged result in a safe channel, unless a server's /settings says otherwise:"
        " block (a notice only the requester sees) or spoiler.",
    )

    @field_validator("explicit_labels")
    @classmethod
    def _known_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [label for label in labels if label not in LABELS]
        if unknown:
            raise ValueError(f"unknown detector labels {unknown}; known: {', '.join(LABELS)}")
        return labels

    @property
    def enabled(self) -> bool:
        """Whether results are judged: switched on, or left on auto with the extra installed."""
        return self.classifier == "on" or (self.classifier == "auto" and installed())

    def status(self) -> str:
        """One line for check-config and /info: whether the classifier is on, and why not."""
        if self.classifier == "off":
            return "image classifier: off (safety.classifier: off)"
        if not installed():
            return f"image classifier: off (not installed: {INSTALL_HINT})"
        return f"image classifier: on (NudeNet 320n, score ≥ {self.threshold:g})"


def installed() -> bool:
    """Whether the safety extra's packages are there (found, not imported: importing costs ~1 s)."""
    return all(importlib.util.find_spec(name) is not None for name in ("nudenet", "onnxruntime"))
