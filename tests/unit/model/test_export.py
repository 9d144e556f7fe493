from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model.builder.architectures import ARCHS, ExportWrapper, build_model
from model.builder.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from model.builder.package import build_tarball
from model.core import errors
from model.core.labels import LABELS
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor
from model.serving.serve import unpack


def _meta(task: str = "multiclass", arch: str = "mobilenet_v3_small", size: int = 224) -> ModelMetadata:
    return ModelMetadata(
        name="t",
        version="v",
        arch=arch,
        task=task,
        labels=list(LABELS[task]),
        input_size=size,
        preset=ARCHS[arch].preset,
    )


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_every_artifact_agrees_with_eager(tiny_model_dirs: dict[str, Path], task: str, backend: str) -> None:
    model_dir = tiny_model_dirs[task]
    torch.manual_seed(0)
    eager = ExportWrapper(build_model("mobilenet_v3_small", task).eval())
    x = torch.rand(4, 1, 224, 224)
    with torch.no_grad():
        reference = eager(x)
    outputs = Predictor.load(model_dir, backend).backend.run(x.numpy())
    assert outputs.logits.shape == (4, len(LABELS[task]))
    assert outputs.gate_score.shape == outputs.turned_gate_score.shape == (4,)
    for got, want in zip(outputs, reference, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-3, atol=1e-3)


def test_cam_is_consistent_with_logits() -> None:
    net = build_model("resnet18", "binary").eval()
    with torch.no_grad():
        logits, cam, _, _ = ExportWrapper(net)(torch.rand(2, 1, 224, 224))
    torch.testing.assert_close(cam.mean((2, 3)) + net.classifier.bias, logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("arch", "size", "cam_side"), [("resnet50", 224, 7), ("inception_v3", 299, 8)])
def test_paper_architectures_export_logits_and_cam(arch: str, size: int, cam_side: int) -> None:
    net = build_model(arch, "multiclass").eval()
    with torch.no_grad():
        logits, cam, _, _ = ExportWrapper(net)(torch.rand(1, 1, size, size))
    assert logits.shape == (1, 3)
    assert cam.shape == (1, 3, cam_side, cam_side)


def test_inception_has_aux_logits_only_in_training() -> None:
    net = build_model("inception_v3", "binary")
    x = torch.rand(2, 1, 299, 299)
    assert net.train().forward_train(x)[1] is not None
    assert net.eval().forward_train(x)[1] is None


def test_missing_imagenet_weights_give_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import urllib.request

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(errors.PretrainedWeightsUnavailableError, match="--pretrained PATH"):
        build_model("resnet18", "binary", pretrained="imagenet")


def test_local_imagenet_weights_file_is_loaded(tmp_path: Path) -> None:
    import torchvision

    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = build_model("resnet18", "binary", pretrained=str(path))
    torch.testing.assert_close(net.backbone.body[0].weight, reference.conv1.weight)


def test_checkpoint_rebuilds_its_model_alone(tmp_path: Path) -> None:
    net = build_model("mobilenet_v3_small", "binary").eval()
    path = save_checkpoint(net, _meta("binary"), tmp_path / "w.safetensors")
    loaded, meta = load_checkpoint(path)
    assert meta.task == "binary"
    assert read_checkpoint_metadata(path).labels == ["covid", "no_findings"]
    x = torch.rand(1, 1, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_tarball_has_the_sagemaker_layout(tiny_model_dir: Path, tmp_path: Path) -> None:
    tarball = build_tarball(tiny_model_dir, tmp_path / "model.tar.gz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"model.pt", "model.onnx", "metadata.json", "code/inference.py", "code/requirements.txt"} <= names
    assert "code/model/serving/runtime.py" in names
    assert not any(name.startswith("code/model/builder/") for name in names)  # no torch code at runtime


def _serve_unpacked(tiny_model_dir: Path, tmp_path: Path, prelude: str, report: str) -> dict[str, Any]:
    """Build and unpack the package, then answer one PNG through its code/inference.py in a fresh
    interpreter whose only path to `model` is code/, as in the container; ``prelude`` runs first and
    ``report`` is the JSON-able expression printed (``m``: the loaded model, ``out``: the answer)."""
    import json
    import subprocess
    import sys

    from tests import images

    unpacked = unpack(build_tarball(tiny_model_dir, tmp_path / "model.tar.gz"), tmp_path / "opt-ml-model")
    script = (
        f"import json, sys; {prelude}; sys.path.insert(0, sys.argv[1] + '/code'); import inference as h;"
        "m = h.model_fn(sys.argv[1]); body = open(sys.argv[2], 'rb').read();"
        "out, ct = h.output_fn(h.predict_fn(h.input_fn(body, 'image/png'), m), 'application/json');"
        f"print(json.dumps({report}))"
    )
    image = tmp_path / "x.png"
    image.write_bytes(images.png(128))
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, str(unpacked), str(image)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    return {**json.loads(done.stdout), "unpacked": unpacked}


def test_unpacked_tarball_serves_through_the_inference_handlers(tiny_model_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("onnxruntime") is not None
    report = (
        "{'answer': json.loads(out), 'files': "
        "[m.__file__ for n, m in sys.modules.items() if n == 'model' or n.startswith('model.')]}"
    )
    printed = _serve_unpacked(tiny_model_dir, tmp_path, "pass", report)
    # The project's editable install would quietly supply a module the package forgot: none may come from it.
    code_model = printed["unpacked"] / "code" / "model"
    assert all(Path(f).is_relative_to(code_model) for f in printed["files"]), printed["files"]
    answer = printed["answer"]
    assert answer["model"]["labels"] == ["covid", "no_findings", "pneumonia"]
    assert abs(sum(answer["predictions"][0]["probabilities"].values()) - 1) < 1e-5


def test_a_container_without_onnxruntime_serves_the_torchscript(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The SageMaker PyTorch CPU images (serverless mode) have torch but no ONNX Runtime.
    report = "{'backend': m.backend.name, 'answer': json.loads(out)}"
    printed = _serve_unpacked(tiny_model_dir, tmp_path, "sys.modules['onnxruntime'] = None", report)
    assert printed["backend"] == "torchscript"
    assert len(printed["answer"]["predictions"]) == 1
