"""Featurize throughput: Spark local[N] pandas UDF vs a plain PyTorch batch loop, in one run.

    python bench/spark_featurize.py --images ../shared/data/ozturk-3class --checkpoint model/default/model.safetensors

Both decode with the serving preset and run the same backbone on the same images; the plain loop uses
all cores in one process, Spark uses N single-threaded Python workers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from model.builder.checkpoint import load_checkpoint
from model.core.preprocessing import prepare, to_batch
from model.core.presets import get_preset


def plain_loop(paths: list[Path], checkpoint: Path, batch_size: int) -> float:
    net, meta = load_checkpoint(checkpoint)
    preset = get_preset(meta.preset)
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        batch = to_batch([prepare(p.read_bytes(), preset) for p in paths[i : i + batch_size]])
        with torch.inference_mode():
            net.features(torch.from_numpy(batch))[0].mean(dim=(2, 3))
    return time.perf_counter() - start


def spark_run(images: Path, checkpoint: Path, master: str, batch_size: int) -> tuple[float, int]:
    from training.spark.featurize import featurize
    from training.spark.session import get_spark

    spark = get_spark(master, "bench-featurize")
    featurize(spark, str(images), None, "", str(checkpoint), batch_size=batch_size).limit(
        2
    ).count()  # JVM and workers warm
    start = time.perf_counter()
    rows = featurize(spark, str(images), None, "", str(checkpoint), batch_size=batch_size).count()
    seconds = time.perf_counter() - start
    spark.stop()
    return seconds, rows


def main(args: argparse.Namespace) -> None:
    paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    os.environ["XRAY_TORCH_THREADS"] = "1"
    spark_s, rows = spark_run(args.images, args.checkpoint, args.master, args.batch_size)
    loop_s = plain_loop(paths, args.checkpoint, args.batch_size)
    print(f"{len(paths)} images, backbone from {args.checkpoint.name}, {os.cpu_count()} cores")
    print(f"{'path':<34} {'seconds':>8} {'img/s':>8}")
    print(f"{'plain PyTorch loop (1 process)':<34} {loop_s:>8.1f} {len(paths) / loop_s:>8.1f}")
    print(f"{'Spark ' + args.master + ' pandas UDF':<34} {spark_s:>8.1f} {rows / spark_s:>8.1f}")
    print(f"Spark / plain: {loop_s / spark_s:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="image directory")
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("model/default/model.safetensors"), help="(default: %(default)s)"
    )
    parser.add_argument("--master", default="local[2]", help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    main(parser.parse_args())
