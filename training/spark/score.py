"""Batch-score a folder or bucket prefix with a saved MLlib pipeline over the CNN features.

    python -m training.spark.score --model runs/spark/best_pipeline --images DIR|s3a://... \\
        --checkpoint model/default/model.safetensors --out runs/scores [--format csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from training.spark.featurize import featurize


def score(
    spark: SparkSession, model_path: str, images: str, arch: str, checkpoint: str, pretrained: str = "none"
) -> DataFrame:
    labels = json.loads((Path(model_path).parent / "comparison.json").read_text())["labels"]
    frame = featurize(spark, images, None, arch, checkpoint, pretrained).withColumn(
        "vector", array_to_vector(F.col("features"))
    )
    scored = PipelineModel.load(model_path).transform(frame)
    names = F.array(*[F.lit(label) for label in labels])
    probs = vector_to_array(F.col("probability"))
    return scored.select(
        "path",
        names[F.col("prediction").cast("int")].alias("predicted_label"),
        *[probs[i].alias(f"p_{label}") for i, label in enumerate(labels)],
    )


def main(args: argparse.Namespace) -> None:
    from training.spark.session import get_spark

    spark = get_spark(args.master)
    scored = score(spark, args.model, args.images, args.arch, args.checkpoint, args.pretrained)
    writer = scored.write.mode("overwrite")
    (writer.option("header", "true").csv(args.out) if args.format == "csv" else writer.parquet(args.out))
    print(
        f"scored {spark.read.format(args.format).option('header', 'true').load(args.out).count()} images -> {args.out}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved pipeline (best_pipeline from training.spark.classify)")
    parser.add_argument("--images", required=True, help="image directory or s3a:// prefix")
    parser.add_argument("--arch", default="resnet50", help="backbone when no --checkpoint (default: %(default)s)")
    parser.add_argument("--checkpoint", default="", help="the checkpoint the features were made with")
    parser.add_argument("--pretrained", default="none", help="imagenet | none | PATH (default: %(default)s)")
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"], help="(default: %(default)s)")
    parser.add_argument("--out", required=True, help="output path")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[*])")
    main(parser.parse_args())
