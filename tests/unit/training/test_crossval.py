from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.crossval import aggregate_cv
from training.data import Record
from training.train import write_predictions

LABELS = ["covid", "no_findings"]


def _fold(out: Path, k: int, rows: list[tuple[str, float]]) -> None:
    """Fold ``k``'s held-out predictions, written as training.train writes them."""
    path = out / f"fold-{k}" / "output" / "test_predictions.csv"
    path.parent.mkdir(parents=True)
    records = [Record(f"{k}-{i}.png", label, "s", f"g{k}{i}") for i, (label, _) in enumerate(rows)]
    write_predictions(path, records, LABELS, np.array([[p, 1 - p] for _, p in rows]))


def test_every_folds_held_out_predictions_are_pooled_once(tmp_path: Path) -> None:
    _fold(tmp_path, 0, [("covid", 0.9), ("no_findings", 0.2)])  # both right
    _fold(tmp_path, 1, [("covid", 0.4), ("no_findings", 0.1), ("covid", 0.8), ("no_findings", 0.3)])  # 3 of 4
    metrics = aggregate_cv(tmp_path, 2)
    assert metrics["n"] == 6
    assert metrics["per_fold_accuracy"] == [1.0, 0.75]
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    assert json.loads((tmp_path / "cv_metrics.json").read_text())["mean_fold_accuracy"] == pytest.approx(0.875)
