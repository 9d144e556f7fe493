"""The export job Neo compiles from: what it writes, and that its code and the served code run on
the Python of Neo's PyTorch 2.0 images (3.10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.builder.architectures import build_model
from model.builder.checkpoint import save_checkpoint
from model.builder.deploy import export_modules
from model.builder.lung_network import LungNet, save_lung_checkpoint
from model.builder.neo_export import EXPORTED_WITH_FILE, export
from model.builder.package import MODEL_DIR, SERVED_FLOORS, floor_files
from model.core.contract import LUNGS_TORCHSCRIPT_FILE, ONNX_FILE, TORCHSCRIPT_FILE
from model.core.labels import labels_for
from model.core.lung_fields import policy
from model.serving.backends import OnnxBackend, TorchScriptBackend
from model.serving.metadata import ModelMetadata
from tests.unit.model.test_lung_fields import PAIR_RULE

NEO_PYTHON = "3.10"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    meta = ModelMetadata(
        "t", "v", "mobilenet_v3_small", "multiclass", list(labels_for("multiclass")), 224, "xray-gray-224-v2"
    )
    model = save_checkpoint(build_model("mobilenet_v3_small", "multiclass").eval(), meta, root / "model.safetensors")
    lungs = save_lung_checkpoint(LungNet(), policy(PAIR_RULE, {"name": "lungs-test"}), root / "lungs.safetensors")
    return model, lungs


@pytest.fixture(scope="module")
def exported(checkpoints: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("neo")
    export(*checkpoints, out / "model", out / "data")
    return out / "model", out / "data"


def test_neo_gets_one_traced_model_and_nothing_else(exported: tuple[Path, Path]) -> None:
    model_dir, _ = exported
    assert [p.name for p in model_dir.iterdir()] == [TORCHSCRIPT_FILE]


def test_the_lung_network_and_the_exporting_torch_ride_beside_it(exported: tuple[Path, Path]) -> None:
    _, data_dir = exported
    assert {p.name for p in data_dir.iterdir()} == {LUNGS_TORCHSCRIPT_FILE, EXPORTED_WITH_FILE}
    assert (data_dir / EXPORTED_WITH_FILE).read_text() == f'{{"torch": "{torch.__version__.split("+")[0]}"}}'


def test_the_exported_graph_is_the_served_one(
    exported: tuple[Path, Path], checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    from model.builder.artifacts import build

    build(checkpoints[0], tmp_path, ("onnx",), lungs=checkpoints[1])
    batch = np.random.default_rng(0).random((2, 1, 224, 224), np.float32)
    served = OnnxBackend(tmp_path / "artifacts" / ONNX_FILE).run(batch)
    neo = TorchScriptBackend(exported[0] / TORCHSCRIPT_FILE, device="cpu").run(batch)
    np.testing.assert_allclose(neo.logits, served.logits, atol=1e-4)
    np.testing.assert_allclose(neo.gate_score, served.gate_score, atol=1e-3)
    np.testing.assert_array_equal(neo.turned_gate_score, neo.gate_score)  # one pass: lung fields decide upright


@pytest.mark.parametrize(
    "modules", [export_modules, lambda: floor_files(SERVED_FLOORS)], ids=["export-job", "served-code"]
)
def test_the_code_runs_on_the_python_of_neos_pytorch_images(modules) -> None:  # type: ignore[no-untyped-def]
    files = [str(MODEL_DIR / name) for name in modules()]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vermin"), f"-t={NEO_PYTHON}-", "--no-tips", "--violations", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
