"""The Spark path in local mode on synthetic images with a small backbone."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (.ci/run installs one)", allow_module_level=True)

from pyspark.ml import PipelineModel  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from model.core.labels import labels_for  # noqa: E402
from tests import images  # noqa: E402
from training.data import ingest, write_manifest  # noqa: E402
from training.spark.classify import comparison_table, held_out_metrics, prepare, train_and_compare  # noqa: E402
from training.spark.featurize import featurize  # noqa: E402
from training.spark.score import score  # noqa: E402
from training.spark.session import get_spark  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = get_spark("local[2]", "xray-spark-test")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xrays")
    for c, label in enumerate(["covid", "no_findings", "pneumonia"]):
        (root / label).mkdir()
        for i in range(12):
            # two images per patient (NIH-style names) so that grouping matters
            data = images.png(64, seed=c * 1000 + i) if c != 1 else images.jpeg(64, seed=c * 1000 + i)
            (root / label / f"{c + 1:03d}{i // 2:05d}_{i % 2:03d}.png").write_bytes(data)
    records, _ = ingest(root, folds=3)
    manifest = write_manifest(records, root.parent / f"{root.name}-manifest.csv")
    return root, manifest


@pytest.fixture(scope="module")
def features(spark: SparkSession, dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    root, manifest = dataset
    out = tmp_path_factory.mktemp("features") / "features.parquet"
    featurize(spark, str(root), str(manifest), "mobilenet_v3_small", batch_size=8).write.parquet(str(out))
    return spark.read.parquet(str(out))


@pytest.fixture(scope="module")
def report(features: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("spark-out")
    return train_and_compare(features, "multiclass", out), out


def test_featurize_keeps_every_image_with_its_grouped_split(features: Any) -> None:
    rows = features.collect()
    assert len(rows) == 36
    assert len(rows[0]["features"]) == 576  # MobileNetV3-small's last conv channels
    splits: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in splits.values())


def test_three_classifiers_are_tuned_and_compared(report: tuple[dict[str, Any], Path]) -> None:
    result, out = report
    assert set(result["classifiers"]) == {"logistic_regression", "random_forest", "decision_tree"}
    for classifier in result["classifiers"].values():
        assert {"accuracy", "macro_f1", "per_class", "roc_auc", "confusion_matrix"} <= set(classifier["test"])
    assert "| random_forest |" in comparison_table(result)
    assert (out / "comparison.json").is_file()


def test_the_saved_best_pipeline_scores_the_test_split_as_it_did_when_chosen(
    report: tuple[dict[str, Any], Path], features: Any
) -> None:
    result, out = report
    test = prepare(features, "multiclass").where(F.col("split") == "test")
    reloaded = held_out_metrics(PipelineModel.load(str(out / "best_pipeline")), test, labels_for("multiclass"))
    recorded = result["classifiers"][result["best"]]["test"]
    assert reloaded["n"] == recorded["n"] > 0
    assert reloaded["confusion_matrix"] == recorded["confusion_matrix"]
    assert reloaded["roc_auc"] == pytest.approx(recorded["roc_auc"])


def test_batch_scoring_a_folder(
    spark: SparkSession, report: tuple[dict[str, Any], Path], dataset: tuple[Path, Path]
) -> None:
    _, out = report
    root, _ = dataset
    (root / "covid" / "broken.png").write_bytes(images.PDF)  # skipped, not fatal
    scored = score(spark, str(out / "best_pipeline"), str(root), "mobilenet_v3_small", "").collect()
    assert len(scored) == 36
    assert {r["predicted_label"] for r in scored} <= {"covid", "no_findings", "pneumonia"}
    assert all(abs(r["p_covid"] + r["p_no_findings"] + r["p_pneumonia"] - 1) < 1e-6 for r in scored)
