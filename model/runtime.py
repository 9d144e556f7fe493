"""Load whichever served artifact a model directory holds and turn images into predictions.

Backends, in order of preference:
1. a SageMaker Neo-compiled model (when ``neopytorch`` imports and a compiled file is present);
2. TorchScript on CUDA when a GPU is present, a CUDA graph at batch 1, in fp16 where ``model.half``
   checked it (``metadata.json`` ``fp16.served``);
3. ONNX Runtime where it is installed (the fast CPU path; torch is never imported), with the int8
   graph where ``model.quantize`` made one and its guard passed (``metadata.json`` ``int8.served``);
4. TorchScript on the CPU.
``XRAY_BACKEND=neo|torchscript|onnx`` forces one.

A package with a lung-field network (``lungs.onnx`` / ``lungs.pt``, ``metadata.json`` ``lung_fields``)
runs it first, on the same kind of backend (ONNX Runtime beside ONNX, TorchScript on the classifier's
device beside TorchScript and Neo): an image without a plausible pair of lungs is refused
``no_lung_fields``, one whose lungs are turned ``not_upright``, and only the rest go through the
classifier, once each (``model.lung_fields``).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from model import contract, errors, settings
from model.contract import (
    INT8_ONNX_FILE,
    LUNGS_ONNX_FILE,
    LUNGS_TORCHSCRIPT_FILE,
    NEO_GLOBS,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
)
from model.lung_fields import LUNG_SIZE, LungField, LungFinder, LungRule
from model.metadata import ModelMetadata
from model.preprocessing import check_lungs, gated_prepare, get_preset, load_gray, prepare_gray, seen_box, to_batch

logger = logging.getLogger(__name__)

MAX_BATCH: Final = contract.BATCH
CAM_SIZE: Final = 64
# With lung fields the heatmap carries their mask too, fine enough to draw an outline from.
LUNG_CAM_SIZE: Final = LUNG_SIZE
LOW_CONFIDENCE: Final[contract.ConfidenceLevel] = "low"
# p(covid) this close to the operating point (or the two most probable labels this close) is borderline.
BORDERLINE_MARGIN: Final = 0.15

FloatArray = npt.NDArray[np.float32]


class Outputs(NamedTuple):
    """The served graph's outputs (``model.metadata.OUTPUT_NAMES``), as float32 arrays."""

    logits: FloatArray  # (N, K)
    cam: FloatArray  # (N, K, h, w)
    gate_score: FloatArray  # (N,)
    turned_gate_score: FloatArray  # (N,)


class Scored(NamedTuple):
    """What the predictor makes of ``Outputs``: calibrated probabilities instead of logits."""

    probabilities: FloatArray  # (N, K)
    cam: FloatArray  # (N, K, h, w)
    gate_score: FloatArray  # (N,)
    turned_gate_score: FloatArray  # (N,)


def _outputs(values: Sequence[Any]) -> Outputs:
    if len(values) != len(Outputs._fields):
        raise errors.ArtifactNotFoundError(
            f"the model has {len(values)} outputs, not {len(Outputs._fields)}: rebuild it with `make model`"
        )
    return Outputs(*(np.asarray(v, np.float32) for v in values))


ACCEPTED: Final = 0
NOT_UPRIGHT: Final = 1
NOT_A_CHEST_XRAY: Final = 2


def gate_decisions(
    scores: npt.NDArray[np.floating[Any]],
    turned: npt.NDArray[np.floating[Any]],
    threshold: float | None,
    upright_threshold: float | None = None,
) -> npt.NDArray[np.int8]:
    """The gate's rule, per image: ACCEPTED, NOT_UPRIGHT or NOT_A_CHEST_XRAY.

    - An image under ``threshold`` whose best turned copy scores lower still, and under ``threshold``,
      is a chest X-ray on its side or upside down: it is never classified as it is.
    - An image over ``threshold`` is refused. It is called a turned chest X-ray only if a turned copy
      scores lower and under ``upright_threshold`` (a typical chest X-ray's score, below
      ``threshold``): otherwise it is no chest X-ray at all.
    Without a threshold (a gate never fitted) everything is accepted.
    """
    decisions = np.full(len(scores), ACCEPTED, np.int8)
    if threshold is None:
        return decisions
    upright = threshold if upright_threshold is None else upright_threshold
    over = scores > threshold
    better_turned = turned < scores
    decisions[over] = NOT_A_CHEST_XRAY
    decisions[better_turned & ((~over & (turned <= threshold)) | (over & (turned <= upright)))] = NOT_UPRIGHT
    return decisions


class Backend(Protocol):
    name: str

    def run(self, batch: FloatArray) -> Outputs:
        """``(N, 1, S, S)`` -> the graph's outputs."""
        ...


def onnx_session(path: Path, providers: Sequence[str] | None = None) -> Any:
    """An ONNX Runtime session as served: all graph optimisations, the GPU where ORT has one, and
    worker threads that sleep rather than spin when a run ends. A package runs two graphs in turn
    (lung fields, then the classifier): with spinning on, the first one's idle threads keep the cores
    busy while the second runs, which cost 1.55x a classifier pass instead of 1.19x here
    (``bench/gate_cost.py``, ResNet-18, 2 cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if providers is None:
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), options, providers=list(providers))


class OnnxBackend:
    name = "onnx"

    def __init__(self, path: Path) -> None:
        if path.name == INT8_ONNX_FILE:
            self.name = "onnx-int8"

        self._session = onnx_session(path)
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: FloatArray) -> Outputs:
        return _outputs(self._session.run(None, {self._input: batch}))


class TorchScriptBackend:
    """The TorchScript graph (or Neo's compilation of it). On a GPU a batch of one replays a CUDA graph,
    and ``half`` serves it in fp16, channels-last (``model.gpu``); ``device``: where to run it (default:
    the GPU where there is one)."""

    name = "torchscript"

    def __init__(
        self, path: Path, neo_model_dir: Path | None = None, half: bool = False, device: str | None = None
    ) -> None:
        import torch

        if neo_model_dir is not None:
            import neopytorch  # type: ignore[import-not-found]

            neopytorch.config(model_dir=str(neo_model_dir), neo_runtime=True)
            self.name = "neo"
        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._module: Any = torch.jit.load(str(path), map_location=self._device).eval()  # type: ignore[no-untyped-call]
        self._to_half: Any = None
        self._batch_of_one: Any = None
        if half or self._device.type == "cuda":
            from model import gpu

            if half:
                self._module = gpu.half_precision(self._module)
                self._to_half = gpu.half_input
                self.name = "torchscript-fp16"
            if self._device.type == "cuda" and self.name != "neo":
                self._batch_of_one = gpu.BatchOfOne(self._module)

    def _input(self, batch: FloatArray) -> Any:
        x = self._torch.from_numpy(batch).to(self._device)
        return x if self._to_half is None else self._to_half(x)

    def run(self, batch: FloatArray) -> Outputs:
        torch = self._torch
        with torch.inference_mode():
            x = self._input(batch)
            graphed = self._batch_of_one is not None and len(batch) == 1
            values = self._batch_of_one(x) if graphed else self._module(x)
        return _outputs([v.float().cpu().numpy() for v in values])


def _find_neo_artifact(model_dir: Path) -> Path | None:
    for pattern in NEO_GLOBS:
        found = sorted(model_dir.glob(pattern))
        if found:
            return found[0]
    return None


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def load_backend(
    model_dir: Path, prefer: settings.Backend | None = None, int8: bool = False, half: bool = False
) -> Backend:
    """The backend to serve ``model_dir`` with (module docstring); ``prefer`` (else ``XRAY_BACKEND``)
    forces one; ``int8``: the ONNX path uses the int8 graph, where there is one (its guard passed:
    ``ModelMetadata.int8_served``); ``half``: TorchScript on a GPU runs in fp16 (``model.half``'s guard
    passed: ``ModelMetadata.fp16_served``)."""
    prefer = prefer or settings.backend()
    neo = _find_neo_artifact(model_dir)
    onnx = model_dir / ONNX_FILE
    script = model_dir / TORCHSCRIPT_FILE
    if neo is not None and prefer in (None, "neo") and importlib.util.find_spec("neopytorch") is not None:
        return TorchScriptBackend(neo, neo_model_dir=model_dir)
    if prefer == "neo":
        raise errors.ArtifactNotFoundError(f"no Neo-compiled model (or no neopytorch) in {model_dir}")
    if script.is_file() and (prefer == "torchscript" or (prefer is None and _cuda_available())):
        return TorchScriptBackend(script, half=half and _cuda_available())
    # A container without ONNX Runtime (the SageMaker PyTorch CPU images, serverless mode) serves the
    # TorchScript instead of failing to load; asked for by name, ONNX fails with the import error.
    onnx_runs = prefer == "onnx" or importlib.util.find_spec("onnxruntime") is not None
    if onnx.is_file() and prefer in (None, "onnx") and onnx_runs:
        quantized = model_dir / INT8_ONNX_FILE
        return OnnxBackend(quantized if int8 and quantized.is_file() else onnx)
    if script.is_file() and prefer in (None, "torchscript"):
        return TorchScriptBackend(script)
    raise errors.ArtifactNotFoundError(f"no servable model ({ONNX_FILE}, {TORCHSCRIPT_FILE}) in {model_dir}")


class OnnxLungs:
    """``lungs.onnx`` as a ``model.lung_fields.LungGraph``."""

    def __init__(self, path: Path) -> None:
        self._session = onnx_session(path)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        mask, turn = self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(mask, np.float32), np.asarray(turn, np.float32)


class TorchScriptLungs:
    """``lungs.pt`` as a ``model.lung_fields.LungGraph``, on ``device`` (default: the GPU where there is one)."""

    def __init__(self, path: Path, device: str | None = None) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._module: Any = torch.jit.load(str(path), map_location=self._device).eval()  # type: ignore[no-untyped-call]

    def __call__(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        torch = self._torch
        with torch.inference_mode():
            mask, turn = self._module(torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self._device))
        return mask.float().cpu().numpy(), turn.float().cpu().numpy()


def load_lungs(model_dir: Path, meta: ModelMetadata, backend: Backend | None = None) -> LungFinder | None:
    """The package's lung-field network beside ``backend`` (module docstring; None: ONNX Runtime where
    it is installed), or None where the package has none."""
    if not meta.has_lung_fields:
        return None
    rule = LungRule.from_dict(meta.lung_fields.get("rule", {}))
    onnx, script = model_dir / LUNGS_ONNX_FILE, model_dir / LUNGS_TORCHSCRIPT_FILE
    if backend is not None:
        onnx_first = backend.name.startswith("onnx")
    else:
        onnx_first = importlib.util.find_spec("onnxruntime") is not None
    if onnx_first and onnx.is_file():
        return LungFinder(OnnxLungs(onnx), rule)
    if script.is_file() and importlib.util.find_spec("torch") is not None:
        return LungFinder(TorchScriptLungs(script), rule)
    if onnx.is_file() and importlib.util.find_spec("onnxruntime") is not None:
        return LungFinder(OnnxLungs(onnx), rule)
    raise errors.ArtifactNotFoundError(
        f"metadata.json names a lung-field network but {model_dir} has no {LUNGS_ONNX_FILE} or "
        f"{LUNGS_TORCHSCRIPT_FILE} this machine can run: rebuild it with `make model`"
    )


def decide(probs: FloatArray, labels: Sequence[str], covid_threshold: float | None) -> int:
    """The index of the label to answer: covid at p(covid) >= the operating point's threshold,
    otherwise the most probable other label (without an operating point: the most probable label)."""
    if covid_threshold is None or "covid" not in labels:
        return int(np.argmax(probs))
    covid = list(labels).index("covid")
    if probs[covid] >= covid_threshold:
        return covid
    others = np.where(np.arange(len(probs)) == covid, -np.inf, probs)
    return int(np.argmax(others))


def confidence(probs: FloatArray, labels: Sequence[str], meta: ModelMetadata) -> contract.Confidence:
    """``{"level": "low" | "normal", "reasons": [...]}`` for one answer.

    Low when the model has not shown that it meets the project's goal, neither on hospitals it never
    saw nor, by cross-validation, on the site it was adapted to (``not_validated_on_unseen_sources``:
    its probabilities then say little about a new site's images), or when the answer is close to the
    other one (``borderline``: p(covid) within ``BORDERLINE_MARGIN`` of the operating point, or,
    without one, the two most probable labels that close). A site-validated model's answers name the
    site (``validated_on``).
    """
    validated = meta.validated_on_unseen_sources or meta.validated_on_site
    reasons = [] if validated else ["not_validated_on_unseen_sources"]
    threshold = meta.covid_threshold
    if threshold is not None and "covid" in labels:
        margin = abs(float(probs[list(labels).index("covid")]) - threshold)
    else:
        first, second = np.sort(probs)[::-1][:2]
        margin = float(first - second)
    if margin < BORDERLINE_MARGIN:
        reasons.append("borderline")
    answer: contract.Confidence = {"level": LOW_CONFIDENCE if reasons else "normal", "reasons": reasons}
    if meta.validated_on_site:
        answer["validated_on"] = str(meta.site_validation.get("site", ""))
    return answer


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


def gate_dict(score: float, threshold: float | None) -> contract.Gate:
    """The gate's part of an answer: its score and the threshold over which it refuses."""
    return {"score": round(float(score), 4), "threshold": None if threshold is None else round(threshold, 4)}


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


def softmax(logits: FloatArray, temperature: float) -> FloatArray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


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
        """One image's network input, as ``predict`` makes it (``model.preprocessing.gated_prepare``)."""
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
