"""The lung fields of a chest X-ray: what the lung-field network's outputs say, in plain NumPy.

The network (``model.builder.lung_network``, served as ``lungs.onnx`` / ``lungs.pt``) sees the image at
``LUNG_SIZE`` px, equalised (``lung_input``), and answers two things: a lung-field probability per
pixel, and which way the image is turned (0, 90, 180 or 270 degrees counter-clockwise). This module
turns those into a ``LungField``: the mask in the upright frame, a few shape measures of it
(``FEATURES``), and whether they look like a pair of lungs (``LungRule``, fitted on chest X-rays only by
``training.lungs``). Three uses, one definition:

- the gate: no plausible pair of lungs is ``no_lung_fields``; lungs found turned is ``not_upright``
  (one small network pass instead of four backbone passes);
- preset v3: the classifier sees the lungs' bounding box (``crop_box``), optionally with the outside
  masked;
- explanations: the heatmap carries the lung fields, so the client draws their outline.

Only Pillow and NumPy: this ships in the served package's code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, ImageOps

LUNG_SIZE: Final = 128
TURNS: Final = (0, 90, 180, 270)  # the orientation head's classes: degrees counter-clockwise
# The shape measures of the lung mask in the upright frame, in [0, 1] (see ``features``).
FEATURES: Final = ("area", "width", "height", "centre_x", "centre_y", "balance", "gap", "fill", "confidence")
# Which side of each measure can be implausible: a pair of lungs is never too certain, too balanced or
# too clearly separated.
SIDES: Final[Mapping[str, tuple[bool, bool]]] = {
    "area": (True, True),
    "width": (True, True),
    "height": (True, True),
    "centre_x": (True, True),
    "centre_y": (True, True),
    "balance": (True, False),
    "gap": (False, True),
    "fill": (True, True),
    "confidence": (True, False),
}
_MIN_PIXELS: Final = 32  # fewer lung pixels than this at LUNG_SIZE is no lung field at all

FloatArray = npt.NDArray[np.float32]
Uint8Array = npt.NDArray[np.uint8]
# The network as a function: (N, 1, S, S) float32 in [0, 1] -> mask logits (N, 1, S, S), turn logits (N, 4).
LungGraph = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


def lung_input(gray: Image.Image) -> Uint8Array:
    """The network's input: the whole image squashed to ``LUNG_SIZE`` square and equalised."""
    small = gray.resize((LUNG_SIZE, LUNG_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(ImageOps.equalize(small), dtype=np.uint8)


@dataclass(frozen=True)
class LungField:
    """One image's lung fields. ``mask``: probability per pixel at ``LUNG_SIZE``, turned upright;
    ``turn``: how far the image is turned (degrees counter-clockwise), and with what probability;
    ``failed``: the measures a fitted rule found implausible (empty: a plausible pair of lungs)."""

    mask: FloatArray
    turn: int
    turn_probability: float
    features: dict[str, float]
    failed: tuple[str, ...] = ()

    @property
    def upright(self) -> bool:
        return self.turn == 0

    @property
    def plausible(self) -> bool:
        return not self.failed

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The lungs' bounding box (left, top, right, bottom) as shares of the upright image's sides."""
        return _box(self.mask > 0.5)


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = (1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))).astype(np.float32)
    return out


def _softmax(x: FloatArray) -> FloatArray:
    z = np.exp(x - x.max())
    out: FloatArray = (z / z.sum()).astype(np.float32)
    return out


def _box(lungs: npt.NDArray[np.bool_]) -> tuple[float, float, float, float]:
    """Bounding box of the lung pixels, by the 0.5th and 99.5th percentile of their coordinates so that
    a speck far away does not stretch it; shares of the side, (0, 0, 1, 1) when there are none."""
    ys, xs = np.nonzero(lungs)
    if len(xs) < _MIN_PIXELS:
        return 0.0, 0.0, 1.0, 1.0
    size = lungs.shape[0]
    x0, x1 = np.percentile(xs, [0.5, 99.5])
    y0, y1 = np.percentile(ys, [0.5, 99.5])
    return float(x0) / size, float(y0) / size, float(x1 + 1) / size, float(y1 + 1) / size


def features(mask: FloatArray) -> dict[str, float]:
    """Shape measures of an upright lung mask (probabilities), each in [0, 1]:

    ``area`` (share of the image that is lung), ``width`` and ``height`` (of the bounding box),
    ``centre_x`` and ``centre_y`` (of the lung pixels), ``gap`` (the thinnest column of lung in the
    middle two fifths of the box, over the thickest column: low where a mediastinum separates two
    lungs), ``balance`` (the lung either side of that column, the smaller over the larger: two lungs),
    ``fill`` (share of the box that is lung) and ``confidence`` (mean probability over the lung pixels).
    """
    lungs = mask > 0.5
    count = int(lungs.sum())
    if count < _MIN_PIXELS:
        return {name: 0.0 for name in FEATURES}
    size = mask.shape[0]
    ys, xs = np.nonzero(lungs)
    x0, y0, x1, y1 = (round(v * size) for v in _box(lungs))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    inside = lungs[y0:y1, x0:x1]
    columns = inside.sum(axis=0).astype(np.float64)
    # The mediastinum: the thinnest column of lung in the middle of the box; the two lungs either side.
    low, high = 3 * len(columns) // 10, max(3 * len(columns) // 10 + 1, 7 * len(columns) // 10)
    middle = x0 + low + int(np.argmin(columns[low:high]))
    left, right = float(lungs[:, :middle].sum()), float(lungs[:, middle:].sum())
    return {
        "area": count / lungs.size,
        "width": (x1 - x0) / size,
        "height": (y1 - y0) / size,
        "centre_x": float(xs.mean() + 0.5) / size,
        "centre_y": float(ys.mean() + 0.5) / size,
        "balance": min(left, right) / max(left, right, 1.0),
        "gap": float(columns[middle - x0]) / max(float(columns.max()), 1.0),
        "fill": float(inside.mean()),
        "confidence": float(mask[lungs].mean()),
    }


@dataclass(frozen=True)
class LungRule:
    """Bounds on ``features`` outside which a mask is no pair of lungs (``None``: that side is open)."""

    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def failed(self, measured: Mapping[str, float]) -> tuple[str, ...]:
        out = []
        for name, (low, high) in self.bounds.items():
            value = measured[name]
            if (low is not None and value < low) or (high is not None and value > high):
                out.append(name)
        return tuple(out)

    def to_dict(self) -> dict[str, list[float | None]]:
        return {name: [low, high] for name, (low, high) in self.bounds.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float | None]]) -> LungRule:
        unknown = set(data) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown lung-field measures {sorted(unknown)}; known: {FEATURES}")
        return cls({name: (bounds[0], bounds[1]) for name, bounds in data.items()})


def analyse(mask_logits: FloatArray, turn_logits: FloatArray, rule: LungRule | None) -> LungField:
    """One image's network outputs (``(1, S, S)`` or ``(S, S)`` mask logits, 4 turn logits) -> a
    ``LungField``, measured in the upright frame."""
    probabilities = _softmax(turn_logits.astype(np.float32))
    k = int(np.argmax(probabilities))
    # The mask is of the image as it is; turning it back by k quarter turns makes it upright.
    mask = np.ascontiguousarray(np.rot90(_sigmoid(mask_logits.reshape(LUNG_SIZE, LUNG_SIZE)), -k))
    measured = features(mask)
    return LungField(mask, TURNS[k], float(probabilities[k]), measured, rule.failed(measured) if rule else ())


class LungFinder:
    """Gray images in, ``LungField``s out: the network (``graph``, any backend) and the fitted rule."""

    def __init__(self, graph: LungGraph, rule: LungRule | None) -> None:
        self.graph = graph
        self.rule = rule

    def find(self, grays: Sequence[Image.Image], batch: int = 32) -> list[LungField]:
        fields: list[LungField] = []
        for start in range(0, len(grays), batch):
            inputs = np.stack([lung_input(g) for g in grays[start : start + batch]]).astype(np.float32) / 255.0
            masks, turns = self.graph(inputs[:, None])
            fields.extend(analyse(m, t, self.rule) for m, t in zip(masks, turns, strict=True))
        return fields


def crop_box(lung_field: LungField, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The pixel box of ``width`` x ``height`` the lung-centred presets crop: the lungs' bounding box
    grown by ``margin`` of its own size on every side, within the image."""
    left, top, right, bottom = lung_field.box
    dx, dy = (right - left) * margin, (bottom - top) * margin
    x0, y0 = max(0.0, left - dx) * width, max(0.0, top - dy) * height
    x1, y1 = min(1.0, right + dx) * width, min(1.0, bottom + dy) * height
    return int(x0), int(y0), max(int(x0) + 1, round(x1)), max(int(y0) + 1, round(y1))


def outside_mask(
    lung_field: LungField, box: tuple[int, int, int, int], width: int, height: int, size: int
) -> Uint8Array:
    """255 on the lung fields (grown by a few pixels, so their edges stay in view) and 0 elsewhere, for
    the ``size`` x ``size`` network input cropped to ``box`` of a ``width`` x ``height`` image."""
    lungs = Image.fromarray(((lung_field.mask > 0.5) * 255).astype(np.uint8), "L").filter(ImageFilter.MaxFilter(5))
    full = lungs.resize((width, height), Image.Resampling.BILINEAR)
    cropped = full.crop(box).resize((size, size), Image.Resampling.BILINEAR)
    return np.where(np.asarray(cropped) >= 128, 255, 0).astype(np.uint8)


def mask_in_box(lung_field: LungField, box: tuple[float, float, float, float], size: int) -> npt.NDArray[np.bool_]:
    """The lung fields within ``box`` (shares of the upright image's sides: what a network saw), at
    ``size`` x ``size``: the frame of that network's class activation maps."""
    lungs = Image.fromarray(((lung_field.mask > 0.5) * 255).astype(np.uint8), "L")
    left, top, right, bottom = (v * LUNG_SIZE for v in box)
    cropped = lungs.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    return np.asarray(cropped) >= 128


def activation_inside(cam: FloatArray, lungs: npt.NDArray[np.bool_]) -> float:
    """Share of a class activation map's positive mass that falls on the lung fields (both maps in the
    same frame; ``cam`` is resized to the mask's size)."""
    positive = np.maximum(cam.astype(np.float32), 0.0)
    resized = np.asarray(
        Image.fromarray(positive, "F").resize(lungs.shape[::-1], Image.Resampling.BILINEAR), dtype=np.float32
    )
    total = float(resized.sum())
    return float(resized[lungs].sum()) / total if total > 0 else 0.0


def policy(rule: LungRule, info: Mapping[str, Any]) -> dict[str, Any]:
    """``ModelMetadata.lung_fields``: the rule and what the network is and how it was measured."""
    return {"rule": rule.to_dict(), "input_size": LUNG_SIZE, "turns": list(TURNS), **info}
