"""MLlib logistic regression, random forest and decision tree on cached CNN features.

    python -m training.spark.classify --features runs/features --task multiclass --out runs/spark \\
        [--cnn-metrics runs/eval-test/metrics.json]

Each classifier is an MLlib Pipeline tuned with CrossValidator over a small grid. Cross-validation
uses the manifest's grouped folds (``foldCol``), so no patient is on both sides; the test split stays
out of tuning. Test metrics use the same names as ``training.evaluate``. The pipeline with the best
cross-validated macro F1 is saved with MLlib's writer; a comparison table goes to comparison.md.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import DecisionTreeClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from model.core.labels import TASKS, labels_for
from training.metrics import compute_metrics

logger = logging.getLogger(__name__)


def prepare(features: DataFrame, task: str) -> DataFrame:
    """Keep the task's labels, index them in the model contract's order, make MLlib vectors."""
    labels = labels_for(task)
    index = F.create_map(*[x for i, label in enumerate(labels) for x in (F.lit(label), F.lit(float(i)))])
    return (
        features.where(F.col("label").isin(*labels))
        .withColumn("label_idx", index[F.col("label")])
        .withColumn("vector", array_to_vector(F.col("features")))
    )


def candidates(num_classes: int) -> dict[str, tuple[Pipeline, list[Any]]]:
    scaler = StandardScaler(inputCol="vector", outputCol="scaled")
    lr = LogisticRegression(featuresCol="scaled", labelCol="label_idx", maxIter=200, family="multinomial")
    rf = RandomForestClassifier(featuresCol="vector", labelCol="label_idx", seed=0)
    dt = DecisionTreeClassifier(featuresCol="vector", labelCol="label_idx", seed=0)
    return {
        "logistic_regression": (
            Pipeline(stages=[scaler, lr]),
            ParamGridBuilder().addGrid(lr.regParam, [0.01, 0.1]).addGrid(lr.elasticNetParam, [0.0, 0.5]).build(),
        ),
        "random_forest": (
            Pipeline(stages=[rf]),
            ParamGridBuilder().addGrid(rf.numTrees, [50, 150]).addGrid(rf.maxDepth, [5, 10]).build(),
        ),
        "decision_tree": (
            Pipeline(stages=[dt]),
            ParamGridBuilder().addGrid(dt.maxDepth, [4, 8]).addGrid(dt.minInstancesPerNode, [1, 5]).build(),
        ),
    }


def grouped_fold_column(train: DataFrame) -> tuple[DataFrame, int]:
    """CrossValidator wants folds numbered 0..k-1: renumber the manifest's grouped folds."""
    folds = sorted(r["fold"] for r in train.select("fold").distinct().collect())
    mapping = F.create_map(*[x for i, f in enumerate(folds) for x in (F.lit(f), F.lit(i))])
    return train.withColumn("cv_fold", mapping[F.col("fold")].cast("int")), len(folds)


def held_out_metrics(model: PipelineModel, test: DataFrame, labels: tuple[str, ...]) -> dict[str, Any]:
    rows = model.transform(test).select("label_idx", vector_to_array(F.col("probability")).alias("p")).collect()
    y = np.array([int(r["label_idx"]) for r in rows])
    probs = np.array([r["p"] for r in rows])
    return compute_metrics(y, probs, labels)


def train_and_compare(features: DataFrame, task: str, out: Path, parallelism: int = 2) -> dict[str, Any]:
    labels = labels_for(task)
    data = prepare(features, task).cache()
    train, folds = grouped_fold_column(data.where(F.col("split") != "test"))
    test = data.where(F.col("split") == "test")
    evaluator = MulticlassClassificationEvaluator(labelCol="label_idx", metricName="f1")
    report: dict[str, Any] = {"task": task, "labels": list(labels), "cv_folds": folds, "classifiers": {}}
    best_name, best_score, best_model = "", -1.0, None
    for name, (pipeline, grid) in candidates(len(labels)).items():
        cv = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator, numFolds=folds,
                            foldCol="cv_fold", parallelism=parallelism, seed=0)  # fmt: skip
        fitted = cv.fit(train)
        cv_f1 = float(max(fitted.avgMetrics))
        best = cast(PipelineModel, fitted.bestModel)  # the estimator is a Pipeline
        metrics = held_out_metrics(best, test, labels) if test.count() else {}
        report["classifiers"][name] = {"cv_weighted_f1": cv_f1, "test": metrics}
        logger.info("%s: CV F1 %.4f, test accuracy %s", name, cv_f1, metrics.get("accuracy"))
        if cv_f1 > best_score:
            best_name, best_score, best_model = name, cv_f1, best
    assert best_model is not None
    out.mkdir(parents=True, exist_ok=True)
    best_model.write().overwrite().save(str(out / "best_pipeline"))
    report["best"] = best_name
    (out / "comparison.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


def comparison_table(report: dict[str, Any], cnn: dict[str, Any] | None = None) -> str:
    rows = [("| model | CV F1 (grouped) | test accuracy | test macro F1 | COVID sens. | ROC AUC |"),
            "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    entries = [(n, c["cv_weighted_f1"], c["test"]) for n, c in report["classifiers"].items()]
    if cnn:
        entries.append(("fine-tuned CNN", float("nan"), cnn))
    for name, cv_f1, m in entries:
        rows.append(
            f"| {name} | {cv_f1:.3f} | {m.get('accuracy', float('nan')):.3f} | {m.get('macro_f1', float('nan')):.3f} "
            f"| {m.get('covid_sensitivity', float('nan')):.3f} | {m.get('roc_auc', float('nan')):.3f} |"
        )
    return "\n".join(rows)


def main(args: argparse.Namespace) -> None:
    from training.spark.session import get_spark

    spark = get_spark(args.master)
    report = train_and_compare(spark.read.parquet(args.features), args.task, Path(args.out), args.parallelism)
    cnn = json.loads(Path(args.cnn_metrics).read_text()) if args.cnn_metrics else None
    table = comparison_table(report, cnn)
    (Path(args.out) / "comparison.md").write_text(table + "\n")
    print(table)
    print(f"best: {report['best']} -> {args.out}/best_pipeline")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True, help="Parquet from training.spark.featurize")
    parser.add_argument("--task", default="multiclass", choices=TASKS, help="(default: %(default)s)")
    parser.add_argument("--out", required=True, help="output directory (pipeline, comparison.json/.md)")
    parser.add_argument(
        "--cnn-metrics", default=None, help="metrics.json of the CNN on the same test split, for the table"
    )
    parser.add_argument(
        "--parallelism", type=int, default=2, help="models fitted in parallel in CV (default: %(default)s)"
    )
    parser.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[*])")
    main(parser.parse_args())
