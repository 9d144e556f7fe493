"""A package with the lung-field network: its export, every backend that runs it, and the served gate."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.builder.architectures import build_model
from model.builder.export import export_model
from model.builder.lung_network import LungNet, load_lung_checkpoint, save_lung_checkpoint
from model.core import errors
from model.core.contract import LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE
from model.core.labels import labels_for
from model.core.lung_fields import LUNG_SIZE, LungFinder, LungRule, policy
from model.serving.backends import OnnxBackend, OnnxLungs, TorchScriptLungs
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor
from tests import images
from tests.unit.model.test_lung_fields import PAIR_RULE, FakeLungs, two_lungs


def _meta(preset: str = "xray-gray-224-v2") -> ModelMetadata:
    return ModelMetadata("t", "v", "mobilenet_v3_small", "multiclass", list(labels_for("multiclass")), 224, preset)


@pytest.fixture(scope="module")
def lung_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("lungs") / "artifacts"
    info = policy(PAIR_RULE, {"name": "lungs-test"})
    export_model(build_model("mobilenet_v3_small", "multiclass").eval(), _meta(), out, ("onnx",), (LungNet(), info))
    return out


def test_the_package_holds_the_lung_network_and_its_rule(lung_package: Path) -> None:
    assert (lung_package / LUNGS_ONNX_FILE).is_file()
    assert (lung_package / LUNGS_TORCHSCRIPT_FILE).is_file()
    meta = ModelMetadata.read(lung_package)
    assert LungRule.from_dict(meta.lung_fields["rule"]) == PAIR_RULE


def test_with_lung_fields_the_classifier_runs_each_image_once(lung_package: Path) -> None:
    out = OnnxBackend(lung_package / "model.onnx").run(np.random.default_rng(0).random((2, 1, 224, 224), np.float32))
    np.testing.assert_array_equal(out.turned_gate_score, out.gate_score)  # no turned copies


def test_the_predictor_loads_the_lung_network_beside_its_backend(lung_package: Path) -> None:
    predictor = Predictor.load(lung_package, prefer="onnx")
    assert predictor.lungs is not None
    assert isinstance(predictor.lungs.graph, OnnxLungs)


def test_served_onnx_sessions_do_not_spin_between_runs(lung_package: Path) -> None:
    # The lung and classifier sessions run in turn: spinning workers of one would starve the other.
    for session in (
        OnnxLungs(lung_package / LUNGS_ONNX_FILE)._session,
        OnnxBackend(lung_package / "model.onnx")._session,
    ):
        assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_and_torchscript_lungs_answer_as_the_network_does(lung_package: Path) -> None:
    torch.manual_seed(0)
    batch = np.random.default_rng(1).random((3, 1, LUNG_SIZE, LUNG_SIZE), np.float32)
    onnx_mask, onnx_turn = OnnxLungs(lung_package / LUNGS_ONNX_FILE)(batch)
    script_mask, script_turn = TorchScriptLungs(lung_package / LUNGS_TORCHSCRIPT_FILE, device="cpu")(batch)
    np.testing.assert_allclose(onnx_mask, script_mask, atol=1e-4)
    np.testing.assert_allclose(onnx_turn, script_turn, atol=1e-4)


def test_the_lung_checkpoint_stores_fp16_and_rebuilds_its_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = LungNet().eval()
    path = save_lung_checkpoint(net, {"rule": PAIR_RULE.to_dict(), "name": "x"}, tmp_path / "lungs.safetensors")
    loaded, info = load_lung_checkpoint(path)
    x = torch.rand(1, 1, LUNG_SIZE, LUNG_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], net(x)[0], atol=0.05, rtol=0.05)
    assert info["name"] == "x"
    assert path.stat().st_size < 1_200_000  # fp16: well within the 2 MB target


def _predictor(lung_package: Path, mask: np.ndarray, k: int = 0, preset: str = "xray-gray-224-v2") -> Predictor:
    backend = OnnxBackend(lung_package / "model.onnx")
    return Predictor(backend, _meta(preset), LungFinder(FakeLungs(mask, k), PAIR_RULE))


def test_no_plausible_lungs_is_refused_before_the_classifier(lung_package: Path) -> None:
    answer = _predictor(lung_package, np.zeros((LUNG_SIZE, LUNG_SIZE), np.float32)).predict([images.xray_png()])
    error = answer.items[0].to_dict()["error"]  # type: ignore[typeddict-item]
    assert error["reason"] == "no_lung_fields"
    assert "gate" not in error  # no feature distance was computed


def test_lungs_found_turned_are_not_upright(lung_package: Path) -> None:
    predictor = _predictor(lung_package, np.rot90(two_lungs()).copy(), k=1)
    error = predictor.predict([images.xray_png()]).items[0].to_dict()["error"]  # type: ignore[typeddict-item]
    assert error["reason"] == "not_upright"


def test_a_refusal_leaves_the_other_images_of_the_batch_answered(lung_package: Path) -> None:
    answers = _predictor(lung_package, two_lungs()).predict([images.xray_png(), b"not an image", images.xray_png()])
    assert ["error" in a.to_dict() for a in answers.items] == [False, True, False]


def test_the_heatmap_carries_the_lung_fields_in_green(lung_package: Path) -> None:
    answer = _predictor(lung_package, two_lungs()).predict([images.xray_png()], explain=True).items[0].to_dict()
    png = base64.b64decode(answer["explanation"]["b64"])  # type: ignore[typeddict-item]
    heat = np.asarray(Image.open(io.BytesIO(png)))
    assert heat.shape == (LUNG_SIZE, LUNG_SIZE, 3)
    np.testing.assert_array_equal(heat[..., 1] == 255, two_lungs() > 0.5)
    assert set(np.unique(heat[..., 2])) == {0}


def test_a_lung_centred_model_without_its_lung_network_does_not_load(lung_package: Path) -> None:
    with pytest.raises(errors.ArtifactNotFoundError, match="lung-field network"):
        Predictor(OnnxBackend(lung_package / "model.onnx"), _meta("xray-gray-224-v3"))


def test_a_lung_centred_model_is_not_exported_without_its_lung_network(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lung-field network"):
        export_model(build_model("mobilenet_v3_small", "multiclass"), _meta("xray-gray-224-v3"), tmp_path, ("onnx",))
