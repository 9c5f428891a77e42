"""The decision over detections: which images of a result are explicit, and why. Pure functions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Detection:
    """One thing the detector found in an image: its label, score and box (x, y, width, height)."""

    label: str
    score: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The images a result's classifier flagged (grid tiles; 0 for a clip) and the labels it saw."""

    flagged: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.flagged)


def explicit_labels(
    detections: Sequence[Detection], *, labels: Collection[str], threshold: float
) -> tuple[str, ...]:
    """The explicit labels among ``detections`` scoring at least ``threshold``, sorted, each once."""
    return tuple(sorted({d.label for d in detections if d.label in labels and d.score >= threshold}))


def judge(per_image: Sequence[Sequence[Detection]], *, labels: Collection[str], threshold: float) -> Verdict:
    """Which images are explicit: their indices, and every explicit label seen in them."""
    found = [explicit_labels(d, labels=labels, threshold=threshold) for d in per_image]
    flagged = tuple(i for i, seen in enumerate(found) if seen)
    return Verdict(flagged, tuple(sorted({label for seen in found for label in seen})))


def as_one(verdict: Verdict) -> Verdict:
    """A clip's verdict from its frames': the clip (index 0) is flagged when any frame is."""
    return Verdict((0,), verdict.labels) if verdict else Verdict()


def sample(count: int, wanted: int) -> list[int]:
    """``wanted`` frame indices of ``count``, evenly spread, the first and the last included."""
    if count <= wanted:
        return list(range(count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})
