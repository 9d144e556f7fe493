"""fp16 TorchScript: what it answers, how its guard decides, and that only a GPU serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model.builder import half as half_module
from model.core.contract import TORCHSCRIPT_FILE
from model.core.preprocessing import to_batch
from model.serving import backends
from model.serving.backends import TorchScriptBackend
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor
from tests import images


@pytest.fixture
def artifacts(tiny_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def _chests(artifacts: Path, n: int, seed: int = 0) -> np.ndarray:
    size = ModelMetadata.read(artifacts).input_size
    return np.stack([images.chest(size, seed=seed + s) for s in range(n)])


def test_the_fp16_graph_answers_what_the_fp32_graph_answers_to_half_precision(artifacts: Path) -> None:
    batch = to_batch(list(_chests(artifacts, 3)))
    fp32 = TorchScriptBackend(artifacts / TORCHSCRIPT_FILE, device="cpu").run(batch)
    half = TorchScriptBackend(artifacts / TORCHSCRIPT_FILE, half=True, device="cpu")
    out = half.run(batch)
    assert half.name == "torchscript-fp16"
    assert out.logits.dtype == np.float32  # the contract's dtype, whatever the arithmetic
    np.testing.assert_allclose(out.logits, fp32.logits, atol=0.05, rtol=0.02)
    np.testing.assert_allclose(out.gate_score, fp32.gate_score, atol=0.1, rtol=0.05)


def test_the_guard_compares_fp32_and_fp16_and_records_its_verdict(artifacts: Path) -> None:
    test = _chests(artifacts, 6, seed=100)
    verdict = half_module.guard(artifacts, test, ["covid", "no_findings", "pneumonia"] * 2, "cpu", seconds=0.1)
    assert (verdict["images"], verdict["device"]) == (6, "cpu")
    assert verdict["served"] == (
        verdict["label_agreement"] >= 0.99
        and verdict["gate_agreement"] >= 0.99
        and (verdict["auc_delta"] is None or abs(verdict["auc_delta"]) <= 0.005)
    )
    assert set(verdict["ms_per_image_batch1"]) == {"fp32", "fp16", "speedup"}
    half_module.record(artifacts, verdict)
    assert ModelMetadata.read(artifacts).fp16 == verdict


@pytest.mark.parametrize(("served", "backend"), [(True, "torchscript-fp16"), (False, "torchscript")])
def test_a_gpu_serves_fp16_only_when_its_guard_passed(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch, served: bool, backend: str
) -> None:
    monkeypatch.setattr(backends, "_cuda_available", lambda: True)  # the machine's choice, not the arithmetic
    half_module.record(artifacts, {"served": served})
    assert Predictor.load(artifacts).backend.name == backend


def test_a_cpu_never_serves_fp16(artifacts: Path) -> None:
    half_module.record(artifacts, {"served": True})
    assert Predictor.load(artifacts).backend.name == "onnx"
    assert Predictor.load(artifacts, "torchscript").backend.name == "torchscript"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU captures the graph")
def test_where_a_cuda_graph_cannot_be_captured_the_module_itself_answers(artifacts: Path) -> None:
    from model.serving.gpu import BatchOfOne

    module = torch.jit.load(str(artifacts / TORCHSCRIPT_FILE)).eval()
    x = torch.from_numpy(to_batch(list(_chests(artifacts, 1))))
    batch_of_one = BatchOfOne(module)
    with torch.inference_mode():
        answers = [batch_of_one(x), batch_of_one(x)]  # the second call does not try to capture again
        expected = module(x)
    assert batch_of_one.graph is None
    for answer in answers:
        for got, want in zip(answer, expected, strict=True):
            torch.testing.assert_close(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_cuda_graph_at_batch_one_answers_what_the_module_answers(artifacts: Path) -> None:
    batch = to_batch(list(_chests(artifacts, 2)))
    backend = TorchScriptBackend(artifacts / TORCHSCRIPT_FILE, half=True)
    for image in batch:  # the first call captures, the second replays with another image
        replayed = backend.run(image[None])
        plain = backend.run(np.stack([image, image]))  # batch 2: no graph
        np.testing.assert_allclose(replayed.logits[0], plain.logits[0], atol=1e-2)
    assert backend._batch_of_one.graph is not None  # captured, not fallen back to the module


def test_the_command_guards_the_test_fold_and_repacks_the_package(artifacts: Path, tmp_path: Path) -> None:
    import csv
    import tarfile

    data = tmp_path / "data"
    data.mkdir()
    with (data / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "fold"])
        writer.writeheader()
        for i, label in enumerate(["covid", "no_findings", "pneumonia", "covid"]):
            (data / f"{i}.png").write_bytes(images.xray_png(64, seed=i))
            writer.writerow({"path": f"{i}.png", "label": label, "fold": i % 2})
    package = tmp_path / "model.tar.gz"
    where = ["--artifacts", str(artifacts), "--data", str(data), "--manifest", str(data / "manifest.csv")]
    args = half_module.get_args_parser().parse_args(
        [*where, "--device", "cpu", "--seconds", "0.1", "--package", str(package)]
    )
    verdict = half_module.main(args)
    assert verdict["images"] == 2  # fold 0
    assert verdict["guarded_on"] == {"split": "test", "fold": 0}
    assert ModelMetadata.read(artifacts).fp16["served"] == verdict["served"]
    with tarfile.open(package) as tar:
        assert "metadata.json" in tar.getnames()
