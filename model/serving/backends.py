"""The served graph's backends: whichever artifact a model directory holds, on what this machine runs.

Backends, in order of preference:
1. a SageMaker Neo-compiled model (when ``neopytorch`` imports and a compiled file is present);
2. TorchScript on CUDA when a GPU is present, a CUDA graph at batch 1, in fp16 where ``model.builder.half``
   checked it (``metadata.json`` ``fp16.served``);
3. ONNX Runtime where it is installed (the fast CPU path; torch is never imported), with the int8
   graph where ``model.builder.quantize`` made one and its guard passed (``metadata.json`` ``int8.served``);
4. TorchScript on the CPU.
``XRAY_BACKEND=neo|torchscript|onnx`` forces one.

A package with a lung-field network (``lungs.onnx`` / ``lungs.pt``, ``metadata.json`` ``lung_fields``)
runs it first, on the same kind of backend (ONNX Runtime beside ONNX, TorchScript on the classifier's
device beside TorchScript and Neo): an image without a plausible pair of lungs is refused
``no_lung_fields``, one whose lungs are turned ``not_upright``, and only the rest go through the
classifier, once each (``model.core.lung_fields``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from model.core import errors, settings
from model.core.contract import (
    INT8_ONNX_FILE,
    LUNGS_ONNX_FILE,
    LUNGS_TORCHSCRIPT_FILE,
    NEO_GLOBS,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
)
from model.core.lung_fields import LungFinder, LungRule
from model.serving.metadata import ModelMetadata

FloatArray = npt.NDArray[np.float32]


class Outputs(NamedTuple):
    """The served graph's outputs (``model.serving.metadata.OUTPUT_NAMES``), as float32 arrays."""

    logits: FloatArray  # (N, K)
    cam: FloatArray  # (N, K, h, w)
    gate_score: FloatArray  # (N,)
    turned_gate_score: FloatArray  # (N,)


def _outputs(values: Sequence[Any]) -> Outputs:
    if len(values) != len(Outputs._fields):
        raise errors.ArtifactNotFoundError(
            f"the model has {len(values)} outputs, not {len(Outputs._fields)}: rebuild it with `make model`"
        )
    return Outputs(*(np.asarray(v, np.float32) for v in values))


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
    and ``half`` serves it in fp16, channels-last (``model.serving.gpu``); ``device``: where to run it (default:
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
            from model.serving import gpu

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
    ``ModelMetadata.int8_served``); ``half``: TorchScript on a GPU runs in fp16 (``model.builder.half``'s guard
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
    """``lungs.onnx`` as a ``model.core.lung_fields.LungGraph``."""

    def __init__(self, path: Path) -> None:
        self._session = onnx_session(path)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        mask, turn = self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(mask, np.float32), np.asarray(turn, np.float32)


class TorchScriptLungs:
    """``lungs.pt`` as a ``model.core.lung_fields.LungGraph``, on ``device`` (default: the GPU where there is one)."""

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
