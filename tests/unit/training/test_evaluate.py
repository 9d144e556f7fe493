from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from model.serving.runtime import Predictor
from tests import images
from training.evaluate import evaluate_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = images.class_folders(tmp_path_factory.mktemp("eval"), per_class=6, size=96)
    (root / "covid" / "broken.png").write_bytes(images.PDF)
    return root


def test_evaluation_writes_metrics_plots_overlays_and_probes(tiny_model_dir: Path, data: Path, tmp_path: Path) -> None:
    metrics = evaluate_dataset(Predictor.load(tiny_model_dir), data, tmp_path)
    assert metrics["n"] == 18
    assert {
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "per_class",
        "roc_auc",
        "covid_sensitivity",
        "covid_specificity",
        "ece",
        "confusion_matrix",
    } <= set(metrics)
    assert set(metrics["shortcut_probes"]) == {"masked_lungs_accuracy", "source_probe_accuracy", "chance_accuracy"}
    assert any("broken.png: rejected (not_an_image)" in note for note in metrics["notes"])
    for name in ("metrics.json", "confusion_matrix.png", "roc.png", "reliability.png", "cam_covid.png"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == 18


def test_binary_on_a_three_class_model_leaves_pneumonia_out_and_says_so(
    tiny_model_dir: Path, data: Path, tmp_path: Path
) -> None:
    metrics = evaluate_dataset(Predictor.load(tiny_model_dir), data, tmp_path, task="binary")
    assert metrics["n"] == 12
    assert metrics["confusion_matrix"]["labels"] == ["covid", "no_findings"]
    assert any("['pneumonia'] left out" in note for note in metrics["notes"])


@pytest.mark.parametrize("threshold", [0.0, None])
def test_evaluation_reports_what_the_gate_refuses(
    tiny_model_dir: Path, data: Path, tmp_path: Path, threshold: float | None
) -> None:
    predictor = Predictor.load(tiny_model_dir)
    predictor.meta = dataclasses.replace(predictor.meta, gate={} if threshold is None else {"threshold": threshold})
    metrics = evaluate_dataset(predictor, data, tmp_path)
    gate = metrics["gate"]
    assert gate["threshold"] == threshold
    assert gate["refused"] == gate["not_a_chest_xray"] + gate["not_upright"]
    assert sum(gate["refused_by_label"].values()) == gate["refused"]
    if threshold == 0.0:
        assert gate["refused"] == metrics["n"]
        assert "metrics_accepted" not in gate
    else:  # a gate never fitted refuses nothing
        assert gate["refused"] == 0
        assert gate["metrics_accepted"]["accuracy"] == metrics["accuracy"]
