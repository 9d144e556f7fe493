"""Can a Mahalanobis distance on the bundled model's pooled features tell chest X-rays from the rest?

    python bench/gate_feasibility.py --data ../shared/data/ozturk-3class --ood ../shared/data/cxr-ood

A measurement for the out-of-distribution gate of issue 10, not the gate itself. It fits class means
and a shared, shrunk covariance on 700 images of ``--data``, and sets the threshold so that 1 % of the
remaining in-distribution images are refused. It then prints the AUROC and the refusal rate for:
lateral views and CT slices from ``--ood``; inverted and 90-degree-rotated copies of held-out
X-rays; rendered text pages; noise; and flat images.

Caveat: the bundled model was trained on part of the same data, so the in-distribution scores are
optimistic; the real gate must be fitted on the training split only.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from sklearn.metrics import roc_auc_score

from model.checkpoint import load_checkpoint
from model.preprocessing import decode_gray, to_batch


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    net, meta = load_checkpoint(args.checkpoint)
    net.eval().float()
    size = meta.input_size

    def features(arrays: list[np.ndarray]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(arrays), 32):
                maps, _ = net.features(torch.from_numpy(to_batch(arrays[start : start + 32])))
                out.append(maps.mean(dim=(2, 3)).numpy())
        return np.concatenate(out)

    def array(image: Image.Image) -> np.ndarray:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return decode_gray(buffer.getvalue(), size)

    rows = list(csv.DictReader((args.data / "manifest.csv").open()))
    random.Random(0).shuffle(rows)  # noqa: S311 - a reproducible split, not a secret
    fit, held_out = rows[: args.fit], rows[args.fit :]
    fitted = features([decode_gray((args.data / r["path"]).read_bytes(), size) for r in fit])
    labels = np.array([r["label"] for r in fit])
    means = {label: fitted[labels == label].mean(0) for label in sorted(set(labels))}
    centered = np.concatenate([fitted[labels == label] - mean for label, mean in means.items()])
    covariance = np.cov(centered, rowvar=False)
    covariance += np.eye(len(covariance)) * 1e-3 * np.trace(covariance) / len(covariance)
    precision = np.linalg.inv(covariance)

    def score(arrays: list[np.ndarray]) -> np.ndarray:
        x = features(arrays)
        return np.min([np.einsum("ij,jk,ik->i", x - m, precision, x - m) for m in means.values()], axis=0)

    images = [Image.open(args.data / r["path"]).convert("L") for r in held_out]
    inside = score([array(i) for i in images])
    rng = np.random.default_rng(0)
    pages = []
    for _ in range(60):
        page = Image.new("L", (600, 800), 255)
        draw = ImageDraw.Draw(page)
        for line in range(40):
            draw.text((20, 15 + 19 * line), " ".join(f"lorem{rng.integers(1000)}" for _ in range(8)), fill=0)
        pages.append(array(page))
    categories = {
        "lateral": [decode_gray(p.read_bytes(), size) for p in sorted((args.ood / "lateral").glob("*"))],
        "ct": [decode_gray(p.read_bytes(), size) for p in sorted((args.ood / "ct").glob("*"))],
        "inverted": [array(ImageOps.invert(i)) for i in images[:100]],
        "rotated90": [array(i.rotate(90, expand=True)) for i in images[:100]],
        "text": pages,
        "noise": [array(Image.fromarray((rng.random((300, 300)) * 255).astype(np.uint8))) for _ in range(60)],
        "flat": [array(Image.new("L", (400, 400), v)) for v in (0, 10, 20, 128, 230, 240, 250, 255)],
    }
    threshold = np.percentile(inside, 99)
    print(f"in-distribution held out: {len(inside)} images; threshold at their 99th percentile: {threshold:.1f}")
    print(f"{'category':<10} {'n':>4} {'AUROC':>6} {'refused':>8}")
    for name, arrays in categories.items():
        outside = score(arrays)
        truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
        auroc = roc_auc_score(truth, np.r_[inside, outside])
        print(f"{name:<10} {len(outside):>4} {auroc:>6.3f} {np.mean(outside > threshold):>7.0%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="class folders with manifest.csv (Ozturk layout)")
    parser.add_argument("--ood", type=Path, required=True, help="cxr-ood folder (lateral/, ct/)")
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("model/default/model.safetensors"), help="(default: %(default)s)"
    )
    parser.add_argument("--fit", type=int, default=700, help="images to fit the statistics on (default: %(default)s)")
    main(parser.parse_args())
