"""How a job runs, decided once when it is accepted: its size, its steps, its strength and its frames.

The worker runs the plan as it is; it never goes back to the grammar or the model list to work out what
a request meant. Light: the bot side makes plans without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Plan:
    """What one job asks of its model's pipeline.

    ``steps`` are scheduled; ``denoising_steps`` are what the pipeline really runs (a remix runs only
    part of them, and some schedulers add one): progress and ETAs count those. ``true_cfg``: a negative
    prompt on a model that takes one only through true classifier-free guidance (twice the work).
    ``frames``: a clip's frame count, 0 for images. ``picture``: the job starts from a picture (a remix
    for an image model, an animation for a clip model).
    """

    width: int
    height: int
    steps: int
    denoising_steps: int
    strength: float | None = None
    frames: int = 0
    true_cfg: bool = False
    picture: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "denoising_steps": self.denoising_steps,
            "strength": self.strength,
            "frames": self.frames,
            "true_cfg": self.true_cfg,
            "picture": self.picture,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan written by :meth:`to_dict`."""
        strength = data.get("strength")
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            steps=int(data["steps"]),
            denoising_steps=int(data["denoising_steps"]),
            strength=None if strength is None else float(strength),
            frames=int(data.get("frames", 0)),
            true_cfg=bool(data.get("true_cfg", False)),
            picture=bool(data.get("picture", False)),
        )


def size_for(aspect: tuple[int, int], native: int, max_side: int, multiple: int = 64) -> tuple[int, int]:
    """Width and height near ``native``² pixels in the ratio ``aspect``, multiples of ``multiple``.

    Each side is rounded to the nearest multiple (at least one multiple); when a side would pass
    ``max_side``, both shrink by the same factor and round down. ``multiple`` is the floor of each side,
    so it wins over a ``max_side`` below it, and very stretched ratios come out less stretched.
    """
    ratio = aspect[0] / aspect[1]
    width, height = native * math.sqrt(ratio), native / math.sqrt(ratio)
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        return _down(width * scale, multiple), _down(height * scale, multiple)
    cap = _down(max_side, multiple)
    return min(cap, _nearest(width, multiple)), min(cap, _nearest(height, multiple))


def _nearest(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _down(value: float, multiple: int) -> int:
    return max(multiple, math.floor(value / multiple) * multiple)
