"""Featurize X-rays with the project's CNN backbone on Spark, cached as Parquet.

    python -m training.spark.featurize --images ../shared/data/ozturk-3class --manifest runs/ozturk/manifest.csv \\
        --arch resnet18 --checkpoint model/default/model.safetensors --out runs/features

Images come from Spark's binaryFile source (a directory or an s3a:// URI). A pandas UDF decodes them
with the serving preprocessing preset (a lung-centred v3 preset with the lung-field network, ``--lungs``:
what its gate refuses gets no features, as serving would not answer it) and runs the backbone in
batches; the models are loaded once per Python worker process. The output keeps path, label, group,
split and fold from the manifest (ingested with ``training.data``) so the classifiers use the same
grouped splits as the CNN.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType

from model.builder.artifacts import DEFAULT_LUNGS
from model.core import settings
from model.core.errors import InvalidImageError
from model.core.lung_fields import LungFinder
from model.core.preprocessing import prepare, to_batch
from model.core.presets import get_preset

logger = logging.getLogger(__name__)
IMAGE_GLOB = "*.{png,jpg,jpeg,PNG,JPG,JPEG}"


@cache
def load_backbone(arch: str, checkpoint: str, pretrained: str) -> Any:
    """Built once per Python worker process (Spark reuses workers), then reused by every batch."""
    import torch

    from model.builder.architectures import build_model
    from model.builder.checkpoint import load_checkpoint

    torch.set_num_threads(settings.torch_threads())
    net = load_checkpoint(Path(checkpoint))[0] if checkpoint else build_model(arch, "multiclass", pretrained)
    return net.eval()


@cache
def load_lungs(path: str) -> LungFinder | None:
    """The lung-field network, once per Python worker process ("": none)."""
    from model.builder.lung_network import load_finder

    return load_finder(Path(path)) if path else None


def embed(
    images: list[bytes | None], arch: str, checkpoint: str, pretrained: str, preset: str, lungs: str = ""
) -> list[list[float] | None]:
    """Global-average-pooled last-conv features; None for anything that is not a usable image."""
    import torch

    net = load_backbone(arch, checkpoint, pretrained)
    finder = load_lungs(lungs) if get_preset(preset).lungs else None
    decoded: dict[int, np.ndarray] = {}
    for index, data in enumerate(images):
        try:
            decoded[index] = prepare(data or b"", get_preset(preset), finder)
        except InvalidImageError:
            continue
    out: list[list[float] | None] = [None] * len(images)
    if decoded:
        with torch.inference_mode():
            feats, _ = net.features(torch.from_numpy(to_batch(list(decoded.values()))))
            pooled = feats.mean(dim=(2, 3)).numpy()
        for index, row in zip(decoded, pooled, strict=True):
            out[index] = row.astype(np.float32).tolist()
    return out


def root_prefix(images: str) -> str:
    """How Spark spells the paths under ``images``, to turn them back into manifest-relative paths."""
    if "://" in images:
        return images.rstrip("/") + "/"
    return "file:" + str(Path(images).resolve()) + "/"


def featurize(
    spark: SparkSession,
    images: str,
    manifest: str | None,
    arch: str,
    checkpoint: str = "",
    pretrained: str = "none",
    batch_size: int = 32,
    lungs: str = str(DEFAULT_LUNGS),
) -> DataFrame:
    from model.builder.architectures import get_arch
    from model.builder.checkpoint import read_checkpoint_metadata

    if checkpoint:
        meta = read_checkpoint_metadata(Path(checkpoint))
        arch, preset = meta.arch, meta.preset
    else:
        preset = get_arch(arch).preset
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))

    @F.pandas_udf(ArrayType(FloatType()))  # type: ignore[attr-defined,untyped-decorator]
    def features(contents: Iterator[pd.Series]) -> Iterator[pd.Series]:
        # Imported by name: under `python -m` this module is __main__, which workers cannot unpickle.
        from training.spark.featurize import embed as embed_batch

        for batch in contents:
            yield pd.Series(embed_batch(list(batch), arch, checkpoint, pretrained, preset, lungs))

    prefix = root_prefix(images)
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", IMAGE_GLOB)
        .load(images)
        .withColumn("path", F.expr(f"substring(path, {len(prefix) + 1})"))
    )
    if manifest:
        labels = (
            spark.read.option("header", "true")
            .csv(manifest)
            .select("path", "label", "group", "split", F.col("fold").cast("int"))
        )
        files = files.join(labels, on="path", how="inner")
    else:
        files = (
            files.withColumn("label", F.regexp_extract("path", r"([^/]+)/[^/]+$", 1))
            .withColumn("group", F.col("path"))
            .withColumn("split", F.lit("score"))
            .withColumn("fold", F.lit(-1))
        )
    return files.withColumn("features", features("content")).drop("content").where(F.col("features").isNotNull())


def main(args: argparse.Namespace) -> None:
    from training.spark.session import get_spark

    spark = get_spark(args.master)
    frame = featurize(
        spark, args.images, args.manifest, args.arch, args.checkpoint, args.pretrained, args.batch_size, args.lungs
    )
    frame.write.mode("overwrite").parquet(args.out)
    written = spark.read.parquet(args.out)
    first = written.first()
    dims = len(first["features"]) if first is not None else 0
    print(f"{written.count()} feature rows of {dims} dims -> {args.out}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="image directory or s3a:// URI")
    parser.add_argument(
        "--manifest", default=None, help="manifest.csv from training.data (default: labels from folder names)"
    )
    parser.add_argument("--arch", default="resnet50", help="backbone when no --checkpoint (default: %(default)s)")
    parser.add_argument("--checkpoint", default="", help="project .safetensors checkpoint (default: none)")
    parser.add_argument(
        "--pretrained", default="none", help="imagenet | none | PATH, without --checkpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--lungs", default=str(DEFAULT_LUNGS), help="lung-field network for v3 presets (default: the bundled one)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per UDF batch (default: %(default)s)")
    parser.add_argument("--out", required=True, help="Parquet output path")
    parser.add_argument(
        "--master", default=None, help="Spark master, e.g. local[2] (default: spark-submit's, else local[*])"
    )
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(get_args_parser().parse_args())
