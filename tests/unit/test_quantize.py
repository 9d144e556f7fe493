"""The int8 graph: how it is made, how the guard decides, and that the runtime follows the verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.contract import INT8_ONNX_FILE, ONNX_FILE
from model.metadata import ModelMetadata
from model.quantize import fp32_convs, guard, quantize, record
from model.runtime import Predictor
from tests import images


@pytest.fixture(scope="module")
def quantized(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = tmp_path_factory.mktemp("q") / "artifacts"
    shutil.copytree(tiny_model_dirs["multiclass"], artifacts)
    size = ModelMetadata.read(artifacts).input_size
    quantize(artifacts, np.stack([images.chest(size, seed=s) for s in range(8)]))
    return artifacts


def test_the_first_convolution_and_the_last_stage_stay_fp32(quantized: Path) -> None:
    import onnx

    convs = [n.name for n in onnx.load(str(quantized / ONNX_FILE)).graph.node if n.op_type == "Conv"]
    kept = fp32_convs(quantized / ONNX_FILE)
    assert kept[0] == convs[0]
    assert convs[-1] in kept
    assert len(kept) < len(convs)  # the rest is quantized


def test_the_int8_graph_has_the_served_outputs_and_quantized_convolutions(quantized: Path) -> None:
    import onnx

    graph = onnx.load(str(quantized / INT8_ONNX_FILE)).graph
    assert [o.name for o in graph.output] == ModelMetadata.read(quantized).output_names
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)


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
