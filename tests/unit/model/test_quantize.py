"""The int8 graph: how it is made, how the guard decides, and that the runtime follows the verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.builder import quantize as quantize_module
from model.builder.quantize import (
    BACKBONE_SCOPE,
    FP32_LADDER,
    convolutions,
    guard,
    plan_name,
    quantize,
    record,
    sensitivity,
)
from model.core.contract import INT8_ONNX_FILE, ONNX_FILE
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor
from tests import images


@pytest.fixture(scope="module")
def quantized(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = tmp_path_factory.mktemp("q") / "artifacts"
    shutil.copytree(tiny_model_dirs["multiclass"], artifacts)
    size = ModelMetadata.read(artifacts).input_size
    quantize(artifacts, np.stack([images.chest(size, seed=s) for s in range(8)]))
    return artifacts


def _int8_convs(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    # A QDQ graph dequantizes each int8 weight right before its convolution.
    return sum(1 for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] in weights)


def test_the_first_plan_quantizes_every_convolution(quantized: Path) -> None:
    import onnx

    convs = [n for n in onnx.load(str(quantized / ONNX_FILE)).graph.node if n.op_type == "Conv"]
    assert _int8_convs(quantized / INT8_ONNX_FILE) == len(convs)


def test_the_convolutions_kept_fp32_are_left_out_of_the_int8_graph(quantized: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(quantized, artifacts)
    size = ModelMetadata.read(artifacts).input_size
    convs = convolutions(artifacts / ONNX_FILE)
    kept = [convs[0], convs[-1]]
    quantize(artifacts, np.stack([images.chest(size, seed=s) for s in range(4)]), keep_fp32=kept)
    assert _int8_convs(artifacts / INT8_ONNX_FILE) == len(convs) - 2


def test_every_convolution_gets_a_sensitivity_and_quantizing_one_moves_the_answers(
    quantized: Path, tmp_path: Path
) -> None:
    size = ModelMetadata.read(quantized).input_size
    chest = np.stack([images.chest(size, seed=s) for s in range(4)])
    cache = tmp_path / "ranges.json"
    quantize(quantized, chest, cache=cache, out=tmp_path / "calibrated.onnx")
    scores = sensitivity(quantized, chest, cache)
    assert list(scores) == convolutions(quantized / ONNX_FILE)
    assert all(score >= 0 for score in scores.values())
    assert max(scores.values()) > 0


def test_a_later_plan_reuses_the_ranges_calibrated_for_the_first(quantized: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(quantized, artifacts)
    size = ModelMetadata.read(artifacts).input_size
    cache = tmp_path / "ranges.json"
    quantize(artifacts, np.stack([images.chest(size, seed=s) for s in range(6)]), cache=cache)
    no_images = np.empty((0, size, size), np.uint8)  # the second plan could not calibrate on its own
    quantize(artifacts, no_images, keep_fp32=convolutions(artifacts / ONNX_FILE)[:1], cache=cache)
    assert cache.is_file()
    assert _int8_convs(artifacts / INT8_ONNX_FILE) > 0


def test_plans_are_tried_fastest_first_until_one_passes_the_guard(
    quantized: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(quantized, artifacts)
    convs = convolutions(artifacts / ONNX_FILE)
    verdicts = iter([False, False, True])
    figures = {"label_agreement": 0.9, "gate_agreement": 1.0, "auc_delta": 0.0}
    monkeypatch.setattr(quantize_module, "guard", lambda *_: {"served": next(verdicts), **figures})
    # The last convolution moves the answers most, then the one before it, ...
    monkeypatch.setattr(quantize_module, "sensitivity", lambda *_: {c: float(i) for i, c in enumerate(convs)})
    size = ModelMetadata.read(artifacts).input_size
    chest = np.stack([images.chest(size, seed=s) for s in range(2)])
    verdict = quantize_module.choose(artifacts, chest, chest, ["covid", "no_findings"])
    assert [a["plan"] for a in verdict["attempts"]] == [plan_name(k) for k in (0, *FP32_LADDER[:2])]
    assert verdict["served"] is True
    assert verdict["fp32"] == convs[::-1][: FP32_LADDER[1]]
    assert _int8_convs(artifacts / INT8_ONNX_FILE) == len(convs) - FP32_LADDER[1]


def test_the_int8_graph_has_the_served_outputs_and_quantized_convolutions(quantized: Path) -> None:
    import onnx

    graph = onnx.load(str(quantized / INT8_ONNX_FILE)).graph
    assert [o.name for o in graph.output] == ModelMetadata.read(quantized).output_names
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)


def test_each_relu_folds_into_the_int8_range_of_its_convolution(quantized: Path) -> None:
    import onnx

    def relus(path: Path) -> int:
        graph = onnx.load(str(path)).graph
        return sum(1 for n in graph.node if n.op_type == "Relu" and n.name.startswith(BACKBONE_SCOPE))

    assert relus(quantized / ONNX_FILE) > 0
    assert relus(quantized / INT8_ONNX_FILE) == 0


def test_the_head_stays_fp32(quantized: Path) -> None:
    import onnx

    graph = onnx.load(str(quantized / INT8_ONNX_FILE)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    head = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    assert head
    assert not any(made_by.get(i) == "DequantizeLinear" for n in head for i in n.input)


def test_the_guard_compares_fp32_and_int8_and_says_whether_int8_is_served(quantized: Path) -> None:
    size = ModelMetadata.read(quantized).input_size
    test = np.stack([images.chest(size, seed=100 + s) for s in range(6)])
    verdict = guard(quantized, test, ["covid", "no_findings", "pneumonia"] * 2)
    assert verdict["images"] == 6
    assert 0.0 <= verdict["label_agreement"] <= 1.0
    assert verdict["served"] == (
        verdict["label_agreement"] >= 0.99
        and verdict["gate_agreement"] >= 0.99
        and (verdict["auc_delta"] is None or abs(verdict["auc_delta"]) <= 0.005)
    )


@pytest.mark.parametrize(("served", "backend"), [(True, "onnx-int8"), (False, "onnx")])
def test_the_runtime_serves_int8_only_when_its_guard_passed(quantized: Path, served: bool, backend: str) -> None:
    record(quantized, {"file": INT8_ONNX_FILE, "served": served})
    assert Predictor.load(quantized).backend.name == backend
