"""Images in, calibrated predictions out: the served graph's backend (``model.serving.backends``: which
artifact, on what this machine runs) and the decision policy (``model.serving.policy``: the gate, the
label at the operating point, the confidence) put together.

Each image is decoded once. With a lung-field network its lungs are found first, and only an image
with a plausible, upright pair goes through the classifier (``model.core.lung_fields``); an answer can
carry the class activation map of its label, framed on the part of the image the network saw.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image

from model.core import contract, errors, settings
from model.core.decoding import load_gray
from model.core.lung_fields import LUNG_SIZE, LungField, LungFinder
from model.core.preprocessing import check_lungs, gated_prepare, prepare_gray, seen_box, to_batch
from model.core.presets import get_preset
from model.serving.backends import Backend, FloatArray, load_backend, load_lungs
from model.serving.metadata import ModelMetadata
from model.serving.policy import ACCEPTED, NOT_UPRIGHT, confidence, decide, gate_decisions, gate_dict, softmax

logger = logging.getLogger(__name__)

MAX_BATCH: Final = contract.BATCH
CAM_SIZE: Final = 64
# With lung fields the heatmap carries their mask too, fine enough to draw an outline from.
LUNG_CAM_SIZE: Final = LUNG_SIZE


class Scored(NamedTuple):
    """What the predictor makes of ``Outputs``: calibrated probabilities instead of logits."""

    probabilities: FloatArray  # (N, K)
    cam: FloatArray  # (N, K, h, w)
    gate_score: FloatArray  # (N,)
    turned_gate_score: FloatArray  # (N,)


def lung_cam_png(cam: FloatArray, lungs: LungField, box: tuple[float, float, float, float]) -> str:
    """One class map and the lung fields as a base64 RGB PNG of ``LUNG_CAM_SIZE`` px in the whole
    image's frame: red the map (normalised to 0..255) over ``box`` (the part of the image the network
    saw, as shares of its sides) and 0 elsewhere, green 255 on the lung fields, blue 0."""
    lo, hi = float(cam.min()), float(cam.max())
    scaled = np.zeros_like(cam) if hi - lo < 1e-12 else (cam - lo) / (hi - lo)
    size = LUNG_CAM_SIZE
    left, top, right, bottom = (round(v * size) for v in box)
    width, height = max(1, right - left), max(1, bottom - top)
    heat = Image.fromarray((scaled * 255.0 + 0.5).astype(np.uint8), "L").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    red = Image.new("L", (size, size), 0)
    red.paste(heat, (left, top))
    green = Image.fromarray(np.where(lungs.mask > 0.5, 255, 0).astype(np.uint8), "L").resize((size, size))
    image = Image.merge("RGB", (red, green.point(lambda v: 255 if v >= 128 else 0), Image.new("L", (size, size), 0)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    gate: contract.Gate
    confidence: contract.Confidence
    explanation: str | None = None

    def to_dict(self) -> contract.Prediction:
        out: contract.Prediction = {
            "label": self.label,
            "probabilities": self.probabilities,
            "gate": self.gate,
            "confidence": self.confidence,
        }
        if self.explanation is not None:
            out["explanation"] = {"type": "cam", "format": "png", "b64": self.explanation}
        return out


@dataclass
class InstanceError:
    index: int
    error: errors.InvalidRequestError

    def to_dict(self) -> contract.Refusal:
        reason = getattr(self.error, "reason", "invalid_request")
        error: contract.InstanceError = {"instance": self.index, "reason": reason, "message": str(self.error)}
        if isinstance(self.error, errors.GateRefusedError) and self.error.score is not None:
            error["gate"] = gate_dict(self.error.score, self.error.threshold)
        return {"error": error}


@dataclass
class PredictionResult:
    items: list[Prediction | InstanceError] = field(default_factory=list)


def cam_png(cam: FloatArray) -> str:
    """Normalise one class map to 0..255 and return it as a base64 PNG of CAM_SIZE px."""
    lo, hi = float(cam.min()), float(cam.max())
    scaled = np.zeros_like(cam) if hi - lo < 1e-12 else (cam - lo) / (hi - lo)
    image = Image.fromarray((scaled * 255.0 + 0.5).astype(np.uint8), "L")
    image = image.resize((CAM_SIZE, CAM_SIZE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Predictor:
    """Images in, calibrated predictions out. Thread-safe: backends are stateless per call."""

    def __init__(self, backend: Backend, meta: ModelMetadata, lungs: LungFinder | None = None) -> None:
        self.backend = backend
        self.meta = meta
        self.preset = get_preset(meta.preset)
        self.lungs = lungs
        if self.preset.lungs and lungs is None:
            raise errors.ArtifactNotFoundError(f"preset {self.preset.id} needs the package's lung-field network")

    @classmethod
    def load(cls, model_dir: Path, prefer: settings.Backend | None = None) -> Predictor:
        if not model_dir.is_dir():
            raise errors.ArtifactNotFoundError(f"model directory {model_dir} does not exist")
        meta = ModelMetadata.read(model_dir)
        backend = load_backend(model_dir, prefer, int8=meta.int8_served, half=meta.fp16_served)
        return cls(backend, meta, load_lungs(model_dir, meta, backend))

    def model_info(self) -> contract.ModelInfo:
        m = self.meta
        info: contract.ModelInfo = {"name": m.name, "version": m.version, "task": m.task, "labels": list(m.labels)}
        if m.covid_threshold is not None:
            info["covid_threshold"] = round(m.covid_threshold, 4)
        if m.site_validation.get("site"):
            info["site_validation"] = str(m.site_validation["site"])
        return info

    def run_arrays(self, batch: FloatArray) -> Scored:
        """Calibrated probabilities, CAMs and gate scores for a preprocessed batch, in chunks of MAX_BATCH."""
        parts = []
        for start in range(0, len(batch), MAX_BATCH):
            out = self.backend.run(np.ascontiguousarray(batch[start : start + MAX_BATCH]))
            parts.append(Scored(softmax(out.logits, self.meta.temperature), *out[1:]))
        return Scored(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def gate_decisions(self, scored: Scored) -> npt.NDArray[np.int8]:
        m = self.meta
        return gate_decisions(scored.gate_score, scored.turned_gate_score, m.gate_threshold, m.gate_upright_threshold)

    def gate_error(self, decision: int, score: float) -> errors.GateRefusedError:
        threshold = self.meta.gate_threshold or 0.0
        if decision == NOT_UPRIGHT:
            return errors.NotUprightError(
                "this looks like a chest X-ray turned on its side or upside down: upload it upright",
                score,
                threshold,
            )
        return errors.NotAChestXrayError(
            f"this does not look like a frontal chest X-ray (gate score {score:.2f} > {threshold:.2f}); "
            "the model only answers for adult frontal chest radiographs",
            score,
            threshold,
        )

    def predict(self, images: Sequence[bytes], explain: bool = False) -> PredictionResult:
        slots: list[Prediction | InstanceError | None] = []
        grays: list[tuple[int, Image.Image]] = []
        for index, data in enumerate(images):
            try:
                grays.append((index, load_gray(data, self.preset.decode_size)))
                slots.append(None)
            except errors.InvalidImageError as exc:
                slots.append(InstanceError(index, exc))
        fields: list[LungField | None] = (
            list(self.lungs.find([g for _, g in grays])) if self.lungs is not None else [None] * len(grays)
        )
        pending: list[tuple[int, Image.Image, LungField | None]] = []
        for (index, gray), found in zip(grays, fields, strict=True):
            try:
                if found is not None:
                    check_lungs(found)
                pending.append((index, gray, found))
            except errors.GateRefusedError as exc:
                slots[index] = InstanceError(index, exc)
        if pending:
            batch = to_batch([prepare_gray(g, self.preset, f if self.preset.lungs else None) for _, g, f in pending])
            out = self.run_arrays(batch)
            decisions = self.gate_decisions(out)
            for row, (index, gray, found) in enumerate(pending):
                score = float(out.gate_score[row])
                slots[index] = (
                    self._prediction(out.probabilities[row], out.cam[row], score, explain, gray, found)
                    if decisions[row] == ACCEPTED
                    else InstanceError(index, self.gate_error(int(decisions[row]), score))
                )
        return PredictionResult([s for s in slots if s is not None])

    def prepare(self, data: bytes) -> npt.NDArray[np.uint8]:
        """One image's network input, as ``predict`` makes it (``model.core.preprocessing.gated_prepare``)."""
        return gated_prepare(data, self.preset, self.lungs)

    def _prediction(
        self,
        probs: FloatArray,
        cams: FloatArray,
        score: float,
        explain: bool,
        gray: Image.Image,
        found: LungField | None,
    ) -> Prediction:
        labels = self.meta.labels
        top = decide(probs, labels, self.meta.covid_threshold)
        explanation = None
        if explain:
            explanation = (
                cam_png(cams[top])
                if found is None
                else lung_cam_png(cams[top], found, seen_box(gray, self.preset, found))
            )
        return Prediction(
            label=labels[top],
            probabilities={label: float(p) for label, p in zip(labels, probs, strict=True)},
            gate=gate_dict(score, self.meta.gate_threshold),
            confidence=confidence(probs, labels, self.meta),
            explanation=explanation,
        )
