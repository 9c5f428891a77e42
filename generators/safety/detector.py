"""NudeNet's 320n detector (a YOLOv8n in ONNX, shipped inside the ``nudenet`` wheel) on onnxruntime.

We run the model file ourselves rather than through ``nudenet.NudeDetector``: its post-processing loops
over the 2100 candidate boxes in Python, it takes no thread setting, and importing it pulls in OpenCV.
Pre-processing is NudeNet's: pad to a square at the bottom and right with black, resize to 320² by plain
bilinear sampling (OpenCV's, within one level of 255), RGB scaled to 0..1. Candidates under 0.25 are
dropped and overlapping boxes suppressed (IoU 0.45). On the same raw output our boxes, labels and scores
are NudeNet's (tests compare input and output), except boxes wholly in the padding, which hold none of
the picture and which we drop.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]
from PIL import Image

from generators.safety.classifier import Classifier, SafetyUnavailable
from generators.safety.config import INSTALL_HINT, LABELS, SafetyConfig
from generators.safety.verdict import Detection

SIDE = 320
MIN_SCORE = 0.25  # NudeNet keeps candidates over 0.2, then its NMS drops those under 0.25
IOU = 0.45


def model_path() -> Path:
    """The 320n model file inside the installed ``nudenet`` package (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(f) / "320n.onnx" for f in folders if (Path(f) / "320n.onnx").is_file()), None)
    if path is None:
        raise SafetyUnavailable(f"nudenet's 320n.onnx is not installed: {INSTALL_HINT}")
    return path


class NudeNet(Classifier):
    """The real detector; its onnxruntime session is thread-safe, so one instance serves every thread."""

    def __init__(self, config: SafetyConfig, path: Path | None = None) -> None:
        super().__init__(config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path or model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        channels = self._session.get_outputs()[0].shape[1]
        if channels != 4 + len(LABELS):
            raise SafetyUnavailable(f"the detector gives {channels} channels, not {4 + len(LABELS)}")

    def detect(self, image: Image.Image) -> Sequence[Detection]:
        """Labelled boxes in ``image``'s own pixels, best first."""
        blob, scale = _blob(image)
        (output,) = self._session.run(None, {self._input: blob})[:1]
        return _detections(np.asarray(output)[0].T, scale, image.size)


def _blob(image: Image.Image) -> tuple[npt.NDArray[np.float32], float]:
    """The model's input (1, 3, 320, 320) and the factor from its pixels back to the image's."""
    side = max(image.size)
    square = np.zeros((side, side, 3), np.uint8)
    square[: image.height, : image.width] = np.asarray(image.convert("RGB"))
    pixels = _linear(_linear(square, axis=0), axis=1) / 255
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None]), side / SIDE


def _linear(pixels: npt.NDArray[np.uint8] | npt.NDArray[np.float32], *, axis: int) -> npt.NDArray[np.float32]:
    """``pixels`` resized to 320 along ``axis`` by plain bilinear sampling (pixel centres aligned, no
    anti-aliasing), as OpenCV's INTER_LINEAR in NudeNet's ``blobFromImage``: the model was trained on
    that; Pillow's resize would smooth a large picture first."""
    size = pixels.shape[axis]
    where = np.clip((np.arange(SIDE) + 0.5) * size / SIDE - 0.5, 0, size - 1)
    low = np.floor(where).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    shape = [1, 1, 1]
    shape[axis] = SIDE
    weight = (where - low).astype(np.float32).reshape(shape)
    # Only the rows (then columns) sampled are turned to floats: a 1024² picture costs ~15 ms, not ~65.
    first: npt.NDArray[np.float32] = np.take(pixels, low, axis=axis).astype(np.float32)
    second: npt.NDArray[np.float32] = np.take(pixels, high, axis=axis).astype(np.float32)
    mixed: npt.NDArray[np.float32] = first * (1 - weight) + second * weight
    return mixed


def _detections(rows: npt.NDArray[np.float32], scale: float, size: tuple[int, int]) -> list[Detection]:
    """Candidates (one row each: cx, cy, w, h, a score per label) to boxes that survive suppression."""
    scores = rows[:, 4:]
    best = scores.max(axis=1)
    keep = best >= MIN_SCORE
    rows, best, classes = rows[keep], best[keep], scores[keep].argmax(axis=1)
    width, height = size
    x = np.clip((rows[:, 0] - rows[:, 2] / 2) * scale, 0, width)
    y = np.clip((rows[:, 1] - rows[:, 3] / 2) * scale, 0, height)
    w = np.minimum(rows[:, 2] * scale, width - x)
    h = np.minimum(rows[:, 3] * scale, height - y)
    inside = (w > 0) & (h > 0)  # a box wholly in the padding has nothing of the picture in it
    boxes = np.stack([x, y, w, h], axis=1)[inside]
    best, classes = best[inside], classes[inside]
    return [
        Detection(LABELS[int(classes[i])], float(best[i]), _pixels(boxes[i])) for i in _suppress(boxes, best)
    ]


def _pixels(box: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    """A box in whole pixels, truncated as NudeNet does."""
    x, y, w, h = (int(v) for v in box)
    return x, y, w, h


def _suppress(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]) -> list[int]:
    """Greedy non-maximum suppression, as OpenCV's ``NMSBoxes`` that NudeNet calls (any label)."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order:
        first, order = order[0], order[1:]
        kept.append(int(first))
        if order:
            overlaps = _iou(boxes[first], boxes[order])
            order = [i for i, overlap in zip(order, overlaps, strict=True) if overlap <= IOU]
    return kept


def _iou(box: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    bottom = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
