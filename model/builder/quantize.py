"""Static int8 quantization of the served ONNX graph, and the guard that decides whether it is served.

    python -m model.builder.quantize --artifacts build/model/artifacts --data DIR --manifest runs/manifest.csv \\
        [--package build/model/model.tar.gz]

ONNX Runtime's static post-training quantization (QDQ format, per-channel int8 weights, uint8
activations) of the backbone: its convolutions, ReLUs, max pooling and residual additions, so that
activations stay int8 from one convolution to the next and each ReLU folds into the range of the
convolution before it (``QUANTIZED_OPS``; on the 14-epoch ResNet-50, 47.7 ms a image against 51.5 ms
with the convolutions alone). The backbone is where the time goes; the classifier, the class
activation maps and the out-of-distribution gate (matrix products on the pooled features) stay fp32,
so their scores do not move with the quantization grid. ONNX Runtime rather than OpenVINO/NNCF: it is
already the served CPU runtime, so the int8 graph needs no new dependency in the container.

Activation ranges are calibrated on images of the training folds only, at the 99.999th percentile of
each activation's histogram rather than its extremes: with min/max ranges a few outlying activations
widen the grid, and on the bundled model every convolution in int8 changed 1.0 % of labels; with the
percentile 0.4 %. ONNX Runtime's histogram calibration holds the activations of every image it is
given at once (all 64 images of a ResNet-50 took about 20 GB), so the images go in chunks of
``CALIBRATION_CHUNK``, each folded into the histograms before the next; the ranges are computed once
and reused by every plan.

Plans, fastest first: the whole backbone in int8; then the convolutions whose quantization moves the
answers most kept fp32, 1, 2, 4, 8, then 16 of them (``FP32_LADDER``). How much each one moves them
(``sensitivity``) is measured on training images, each convolution quantized alone: how far the
calibrated probabilities and the gate scores move from fp32. On every model tried here the first
convolution ranks first, 2.6 to 4.5 times above any other: on the 14-epoch ResNet-50 its int8
weights alone (0.6 % relative error) moved the probabilities by 0.023 on average, more than the rest
of the backbone together, and keeping it fp32 costs 9 ms of 57. The guard (``model.builder.agreement``) runs
fp32 and int8 side by side on the test fold, and the first plan whose served labels agree on >= 99 %
of images, whose gate decisions agree on >= 99 %, and whose COVID-vs-rest ROC AUC moves by <= 0.005
is served. The verdict, with every plan's figures and the ranking, goes into ``metadata.json``
(``int8``); the package carries both graphs either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np

from model.builder.agreement import Uint8Images, compare, guard_parser, ms_per_image, publish, read_folds, run_batched
from model.builder.int8_recipe import RECIPE_VERSION, Int8Recipe, fingerprint, from_run
from model.core.contract import INPUT_NAME, INT8_ONNX_FILE, ONNX_FILE
from model.core.preprocessing import to_batch
from model.serving.backends import OnnxBackend, Outputs, load_lungs
from model.serving.metadata import ModelMetadata
from model.serving.policy import softmax

logger = logging.getLogger(__name__)

CALIBRATION_PERCENTILE: Final = 99.999
CALIBRATION_CHUNK: Final = 8
WHOLE_BACKBONE: Final = "the whole backbone int8"
FP32_LADDER: Final = (1, 2, 4, 8, 16)  # the most sensitive convolutions kept fp32, plan after plan
QUANTIZED_OPS: Final = ("Conv", "Relu", "MaxPool", "Add")
# The exported graph's node names follow the modules' (model.builder.architectures).
BACKBONE_SCOPE: Final = "/backbone/"
SENSITIVITY_IMAGES: Final = 16


def convolutions(model: Path) -> list[str]:
    """The names of the graph's convolutions, in graph order."""
    import onnx

    return [n.name for n in onnx.load(str(model), load_external_data=False).graph.node if n.op_type == "Conv"]


def backbone_nodes(model: Path) -> list[str]:
    """The nodes int8 is for: the backbone's ``QUANTIZED_OPS``, by name, in graph order."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in QUANTIZED_OPS and n.name.startswith(BACKBONE_SCOPE)]


def plan_name(kept: int) -> str:
    if kept == 0:
        return WHOLE_BACKBONE
    return "the most sensitive convolution fp32" if kept == 1 else f"the {kept} most sensitive convolutions fp32"


def prepare(artifacts: Path, out: Path) -> Path:
    """The fp32 graph as ONNX Runtime's quantizer wants it (shapes inferred, optimized), written to
    ``out``: the same for every plan, so made once where several are quantized."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(artifacts / ONNX_FILE), str(out), skip_symbolic_shape=True)
    return out


def quantize(
    artifacts: Path,
    calibration: Uint8Images | None,
    keep_fp32: Sequence[str] = (),
    cache: Path | None = None,
    only: Sequence[str] | None = None,
    out: Path | None = None,
    prepared: Path | None = None,
) -> Path:
    """Write ``out`` (default: ``INT8_ONNX_FILE`` next to the fp32 graph) with the backbone in int8 but
    the convolutions named in ``keep_fp32`` (``only``: just these nodes), its activation ranges calibrated on
    ``calibration``. ``cache``: a file for the ranges, read where it exists (they do not depend on
    which convolutions are quantized, so only the first call calibrates); ``calibration`` may be None
    where it exists (``model.builder.int8_recipe``). ``prepared``: the graph
    ``prepare`` made, where the caller made it once for several calls."""
    out = out or artifacts / INT8_ONNX_FILE
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        """The calibration images one at a time, in the chunks ONNX Runtime asks for (``set_range``)."""

        def __init__(self, images: Uint8Images) -> None:
            self._images = images
            self.set_range(0, len(images))

        def __len__(self) -> int:
            return len(self._images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._batches: Iterator[dict[str, Any]] = iter(
                {INPUT_NAME: to_batch(list(self._images[i : i + 1]))} for i in range(start_index, end_index)
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    if calibration is None and (cache is None or not cache.is_file()):
        raise ValueError("quantize needs calibration images or an existing ranges cache")
    # Histograms grow chunk by chunk: the activations of one chunk are held, not all.
    strided = {} if calibration is None else {"CalibStridedMinMax": math.gcd(len(calibration), CALIBRATION_CHUNK)}
    with tempfile.TemporaryDirectory() as tmp:
        source = prepared or prepare(artifacts, Path(tmp) / "prepared.onnx")
        # ONNX Runtime reports calibration progress with print(): keep stdout for this command's JSON.
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                str(source),
                str(out),
                None if calibration is None else Reader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_exclude=list(keep_fp32),
                nodes_to_quantize=list(only) if only is not None else backbone_nodes(source),
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": CALIBRATION_PERCENTILE, **strided},
                calibration_cache_path=cache,
            )
    return out


class Baseline(NamedTuple):
    """The fp32 graph on the guard's images, and its batch-1 time: the same for every plan."""

    outputs: Outputs
    ms_per_image: float


def fp32_baseline(artifacts: Path, images: Uint8Images) -> Baseline:
    backend = OnnxBackend(artifacts / ONNX_FILE)
    return Baseline(run_batched(backend, images), ms_per_image(backend, images[0]))


def sensitivity(artifacts: Path, images: Uint8Images, cache: Path, prepared: Path | None = None) -> dict[str, float]:
    """How far each convolution, quantized alone (ranges from ``cache``), moves the served outputs on
    ``images``: the mean L1 change of the calibrated probabilities over its median across the
    convolutions, plus the same for the gate scores (the image's and its turned copies'). Higher
    moves more."""
    meta = ModelMetadata.read(artifacts)
    fp32 = run_batched(OnnxBackend(artifacts / ONNX_FILE), images)
    moved: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepared or prepare(artifacts, Path(tmp) / "prepared.onnx")
        for conv in convolutions(artifacts / ONNX_FILE):
            one = quantize(artifacts, images, cache=cache, only=[conv], out=Path(tmp) / "one.onnx", prepared=prepared)
            out = run_batched(OnnxBackend(one), images)
            probs = np.abs(softmax(out.logits, meta.temperature) - softmax(fp32.logits, meta.temperature))
            gate = np.abs(
                np.concatenate([out.gate_score - fp32.gate_score, out.turned_gate_score - fp32.turned_gate_score])
            )
            moved[conv] = (float(probs.sum(axis=1).mean()), float(gate.mean()))
    scales = [max(float(np.median([m[i] for m in moved.values()])), 1e-12) for i in (0, 1)]
    return {conv: m[0] / scales[0] + m[1] / scales[1] for conv, m in moved.items()}


def choose(
    artifacts: Path, calibration: Uint8Images, images: Uint8Images, truth: list[str], ranges: Path | None = None
) -> dict[str, Any]:
    """The whole backbone in int8, then the most sensitive convolutions kept fp32 (``FP32_LADDER``), each plan
    guarded; the verdict of the first one served (or of the last tried), with every attempt's figures
    under ``attempts``. The int8 file left is its graph. ``ranges``: where the calibrated activation
    ranges are kept (ONNX Runtime's calibration cache; default: a temporary file)."""
    attempts: list[dict[str, Any]] = []
    baseline = fp32_baseline(artifacts, images)
    ranking: list[str] = []
    scores: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = ranges or Path(tmp) / "ranges.json"
        prepared = prepare(artifacts, Path(tmp) / "prepared.onnx")
        for kept in (0, *FP32_LADDER):
            if kept and not ranking:
                logger.info("measuring how far each convolution, quantized alone, moves the answers")
                scores = sensitivity(artifacts, calibration[:SENSITIVITY_IMAGES], cache, prepared)
                ranking = sorted(scores, key=lambda conv: -scores[conv])
            quantize(artifacts, calibration, keep_fp32=ranking[:kept], cache=cache, prepared=prepared)
            verdict = {"plan": plan_name(kept), "fp32": ranking[:kept], **guard(artifacts, images, truth, baseline)}
            attempts.append({k: v for k, v in verdict.items() if k not in ("file", "method", "rule")})
            logger.info(
                "%s: labels agree on %.4f, gate decisions on %.4f, AUC moved by %s; served: %s",
                verdict["plan"],
                verdict["label_agreement"],
                verdict["gate_agreement"],
                verdict["auc_delta"],
                verdict["served"],
            )
            if verdict["served"]:
                break
    most = {conv: scores[conv] for conv in ranking[: max(FP32_LADDER)]}
    return {**verdict, "attempts": attempts, "most_sensitive": most}


def guard(artifacts: Path, images: Uint8Images, truth: list[str], baseline: Baseline | None = None) -> dict[str, Any]:
    """fp32 and int8 side by side on ``images`` (labelled ``truth``): the figures and the verdict
    (``model.builder.agreement``). ``baseline``: the fp32 side, where it was already run on these images."""
    fp32, fp32_ms = baseline or fp32_baseline(artifacts, images)
    backend = OnnxBackend(artifacts / INT8_ONNX_FILE)
    figures = compare(ModelMetadata.read(artifacts), truth, fp32, run_batched(backend, images), "int8")
    int8_ms = ms_per_image(backend, images[0])
    return {
        "file": INT8_ONNX_FILE,
        "method": (
            "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, the backbone's "
            f"{', '.join(QUANTIZED_OPS)}, "
            f"ranges at the {CALIBRATION_PERCENTILE}th percentile"
        ),
        **figures,
        "ms_per_image_batch1": {"fp32": fp32_ms, "int8": int8_ms, "speedup": fp32_ms / int8_ms},
    }


def record(artifacts: Path, verdict: dict[str, Any]) -> None:
    """Store the verdict in ``metadata.json``: the runtime serves int8 only if ``served`` is true."""
    meta = ModelMetadata.read(artifacts)
    meta.int8 = verdict
    meta.write(artifacts)


def apply_recipe(artifacts: Path, recipe: Int8Recipe) -> bool:
    """Quantize ``artifacts``' fp32 graph with the recipe's ranges and plan, and record its verdict in
    ``metadata.json``. False, with nothing written, where the recipe is for another graph."""
    if recipe.version != RECIPE_VERSION:
        logger.warning("int8 recipe version %s is not %s: serving fp32", recipe.version, RECIPE_VERSION)
        return False
    if fingerprint(artifacts / ONNX_FILE) != recipe.fingerprint:
        logger.warning("the int8 recipe was made for other weights or another export of the graph: serving fp32")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "ranges.json"
        cache.write_text(json.dumps(recipe.ranges))
        quantize(artifacts, None, keep_fp32=recipe.keep_fp32, cache=cache)
    meta = ModelMetadata.read(artifacts)
    meta.int8 = {
        **recipe.verdict,
        "fp32": recipe.keep_fp32,
        "file": INT8_ONNX_FILE,
        "from_recipe": recipe.provenance,
    }
    meta.write(artifacts)
    return True


def main(args: argparse.Namespace) -> dict[str, Any]:
    meta = ModelMetadata.read(args.artifacts)
    lungs = load_lungs(args.artifacts, meta) if meta.preset_needs_lungs else None
    calibration, test = read_folds(
        args.data, args.manifest, meta, args.test_fold, args.val_fold, args.calibration_images, lungs
    )
    with tempfile.TemporaryDirectory() as tmp:
        ranges = args.ranges or Path(tmp) / "ranges.json"
        verdict = choose(args.artifacts, calibration.images, test.images, test.labels, ranges)
        verdict["calibrated_on"] = {"split": "train", "images": len(calibration.images)}
        publish(args, verdict, record)
        if args.recipe is not None:
            from_run(args.artifacts, ranges, verdict, provenance(args, meta)).write(args.recipe)
    print(json.dumps(verdict, indent=2))  # noqa: T201 - command-line output
    return verdict


def provenance(args: argparse.Namespace, meta: ModelMetadata) -> dict[str, Any]:
    """Where a recipe's ranges and verdict were measured: enough to measure them again."""
    import datetime
    import platform

    import onnxruntime

    return {
        "model": f"{meta.name} {meta.version}",
        "data": args.data.name,
        "manifest": args.manifest.name,
        "test_fold": args.test_fold,
        "val_fold": args.val_fold,
        "calibration_images": args.calibration_images,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "measured": datetime.date.today().isoformat(),
        "command": "python -m model.builder.quantize --artifacts build/model/artifacts --data DATA --manifest MANIFEST "
        "--recipe model/default/int8.json",
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = guard_parser(__doc__)
    parser.add_argument(
        "--calibration-images", type=int, default=64, help="training images to calibrate on (default: %(default)s)"
    )
    parser.add_argument(
        "--ranges", type=Path, default=None, help="keep the calibrated activation ranges in this file (default: none)"
    )
    parser.add_argument(
        "--recipe",
        type=Path,
        default=None,
        help="write what int8 needs without data (ranges, plan, verdict; model.builder.int8_recipe) here, e.g. "
        "model/default/int8.json beside the bundled checkpoint (default: none)",
    )
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
