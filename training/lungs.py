"""Train the lung-field network, measure it on held-out patients, and fit its plausibility rule.

    python -m training.lungs --masks ../shared/data/cxr-lungmasks --data ../shared/data/cxr-multisource \\
        --manifest runs/ms/manifest.csv --out runs/lungs --folds 5 --epochs 60

1. **Cross-validation**: patient-grouped ``--folds`` over the human lung masks; each fold's network is
   trained on the others and scored on its held-out patients: Dice and IoU at the network's 128 px
   and at the stored image's own size, and the orientation head's accuracy on the four turns.
2. **Final network** on every mask, saved as ``--out/lungs.safetensors`` (``--install`` copies it to
   ``model/default/``). ``--network PATH`` skips 1 and 2 and refits the rule of a trained network.
3. **Rule** (``model.core.lung_fields.LungRule``): bounds on the mask's shape measures, from chest X-rays
   only (the manifest's training and validation folds, every source): their extremes widened by
   ``--margin`` interquartile ranges; refusals then counted on the test fold, per source.
4. **Contact sheet** per source of ``--sheet`` test images with the lung outline and box drawn, to
   be looked at (``--out/sheet-<source>.png``).

Augmentation is strong on purpose, since the masks come from one collection: geometry (rotation
+-15 degrees, scale 0.8-1.2, shift, horizontal flip), exposure, gamma, blur, noise, resolution, and
a quarter turn for the orientation head (the mask turns with the image).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from model.builder.lung_network import LungNet, load_lung_checkpoint, save_lung_checkpoint, torch_graph
from model.core.decoding import load_gray
from model.core.lung_fields import FEATURES, LUNG_SIZE, SIDES, LungFinder, LungRule, lung_input, policy
from model.core.presets import get_preset
from training.augment import _blur, _exposure, _gamma, _noise, _resolution, random_affine
from training.data import read_manifest

logger = logging.getLogger(__name__)

MARGIN: Final = 0.25
# The images are decoded as the bundled model's preset decodes them, so the rule's measures are the
# served ones (a JPEG decoded at a reduced scale differs a little with the scale).
DECODE_SIZE: Final = get_preset("xray-gray-224-v2").decode_size
UPRIGHT_SHARE: Final = 0.4  # of training images left upright; the rest are turned 90, 180 or 270 degrees
DEFAULT_INSTALL: Final = Path(__file__).resolve().parents[1] / "model" / "default" / "lungs.safetensors"

Uint8Images = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]


@dataclass
class MaskSet:
    """The masked images at the network's size, and what the full-size scores need."""

    images: Uint8Images  # (N, S, S) lung_input
    masks: npt.NDArray[np.float32]  # (N, S, S) in [0, 1]
    patients: list[str]
    paths: list[Path]  # the full-size masks
    names: list[str]


def read_masks(masks_dir: Path, data: Path) -> MaskSet:
    with (masks_dir / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    images, masks = [], []
    for row in rows:
        images.append(lung_input(load_gray((data / row["image"]).read_bytes(), DECODE_SIZE)))
        # 127 ("ignore": pacemakers and markups drawn over the lung) is lung.
        full = Image.open(masks_dir / row["mask"]).point(lambda v: 255 if v >= 127 else 0)
        masks.append(np.asarray(full.resize((LUNG_SIZE, LUNG_SIZE), Image.Resampling.BILINEAR), np.float32) / 255)
    return MaskSet(
        np.stack(images),
        np.stack(masks),
        [row["patient"] for row in rows],
        [masks_dir / row["mask"] for row in rows],
        [row["image"] for row in rows],
    )


def _affine_pair(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same random geometry for every channel of ``x`` (image and mask), wider than the
    classifier's: rotation +-15 degrees, scale 0.8-1.2, shift +-10 %, horizontal flip (lungs are near
    mirror images; the heart's side is the classifier's business, not this network's)."""
    return random_affine(x, generator, hflip=True, degrees=15.0, scale=(0.8, 1.2), shift=0.2)


def augment_pair(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images and float masks ``(N, S, S)`` -> augmented ``(N, 1, S, S)`` images and masks, and
    each image's quarter turns (the orientation head's target)."""
    pair = _affine_pair(torch.stack([images.float() / 255.0, masks], dim=1), generator)
    x, y = pair[:, :1], pair[:, 1:]
    x = _exposure(x, generator).clamp(0.0, 1.0)
    x = _noise(_resolution(_blur(_gamma(x, generator), generator), generator), generator).clamp(0.0, 1.0)
    n = len(x)
    turned = torch.rand(n, generator=generator) >= UPRIGHT_SHARE
    turns = torch.where(turned, torch.randint(1, 4, (n,), generator=generator), torch.zeros(n, dtype=torch.long))
    x = torch.stack([torch.rot90(x[i], int(turns[i]), dims=(1, 2)) for i in range(n)])
    y = torch.stack([torch.rot90(y[i], int(turns[i]), dims=(1, 2)) for i in range(n)])
    return x, y, turns


def loss_of(
    mask_logits: torch.Tensor, turn_logits: torch.Tensor, masks: torch.Tensor, turns: torch.Tensor
) -> torch.Tensor:
    """BCE + soft Dice on the mask, cross-entropy on the turn."""
    bce = F.binary_cross_entropy_with_logits(mask_logits, masks)
    probabilities = torch.sigmoid(mask_logits)
    overlap = (probabilities * masks).sum(dim=(1, 2, 3))
    dice = 1 - (2 * overlap + 1) / (probabilities.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean() + 0.5 * F.cross_entropy(turn_logits, turns)


def train_network(
    images: Uint8Images,
    masks: npt.NDArray[np.float32],
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    time_limit: float,
) -> LungNet:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = LungNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(images) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(masks)
    start = time.monotonic()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch):
            chosen = order[i : i + batch]
            if len(chosen) < 2:  # batch norm needs two
                continue
            x, y, turns = augment_pair(x_all[chosen], y_all[chosen], generator)
            mask_logits, turn_logits = net(x)
            loss = loss_of(mask_logits, turn_logits, y, turns)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(chosen)
        logger.info("epoch %d/%d loss %.4f (%.0f s)", epoch + 1, epochs, total / len(images), time.monotonic() - start)
        if time_limit and time.monotonic() - start > time_limit:
            logger.warning("stopped after epoch %d: --time-limit %.0f s", epoch + 1, time_limit)
            break
    return net.eval()


def dice_iou(predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> tuple[float, float]:
    overlap = float(np.logical_and(predicted, truth).sum())
    union = float(np.logical_or(predicted, truth).sum())
    total = float(predicted.sum() + truth.sum())
    return (2 * overlap / total if total else 1.0), (overlap / union if union else 1.0)


def score_fold(net: LungNet, masks: MaskSet, held_out: Sequence[int]) -> list[dict[str, Any]]:
    """Dice/IoU at 128 px and at the stored size, and the turn predicted for each of the four turns."""
    graph = torch_graph(net)
    rows = []
    for index in held_out:
        image = masks.images[index].astype(np.float32) / 255.0
        turned = np.stack([np.rot90(image, k) for k in range(4)])[:, None].copy()
        logits, turns = graph(turned)
        probability = 1.0 / (1.0 + np.exp(-logits[0, 0]))
        truth_small = masks.masks[index] >= 0.5
        full_truth = np.asarray(Image.open(masks.paths[index])) >= 127
        full = Image.fromarray(probability.astype(np.float32), "F").resize(
            full_truth.shape[::-1], Image.Resampling.BILINEAR
        )
        small_dice, small_iou = dice_iou(probability > 0.5, truth_small)
        full_dice, full_iou = dice_iou(np.asarray(full) > 0.5, full_truth)
        rows.append(
            {
                "image": masks.names[index],
                "patient": masks.patients[index],
                "dice_128": small_dice,
                "iou_128": small_iou,
                "dice": full_dice,
                "iou": full_iou,
                "turns_right": int((turns.argmax(axis=1) == np.arange(4)).sum()),
            }
        )
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"images": len(rows), "patients": len({r["patient"] for r in rows})}
    for key in ("dice", "iou", "dice_128", "iou_128"):
        values = np.array([r[key] for r in rows])
        out[key] = {
            "mean": float(values.mean()),
            "median": float(np.median(values)),
            "p05": float(np.percentile(values, 5)),
            "min": float(values.min()),
        }
    out["turn_accuracy"] = float(sum(r["turns_right"] for r in rows) / (4 * len(rows)))
    return out


def fit_rule(measured: Sequence[dict[str, float]], margin: float = MARGIN) -> LungRule:
    """Bounds on each measure (on the sides ``SIDES`` allows): the extremes of ``measured`` (chest
    X-rays, every source) widened by ``margin`` times the measure's interquartile range. It refuses
    none of them by construction; the margin is for the hospitals they do not include (on held-out
    X-rays the bare extremes refused 1.5 % of one source's)."""
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for name in FEATURES:
        values = np.array([m[name] for m in measured])
        spread = margin * float(np.percentile(values, 75) - np.percentile(values, 25))
        low_side, high_side = SIDES[name]
        bounds[name] = (
            float(values.min()) - spread if low_side else None,
            float(values.max()) + spread if high_side else None,
        )
    return LungRule(bounds)


def overlay(
    gray: Image.Image, field_mask: npt.NDArray[np.float32], turn: int, plausible: bool, size: int = 112
) -> Image.Image:
    """The image at ``size`` px with the lung outline (green if plausible and upright, else red)."""
    tile = gray.resize((size, size), Image.Resampling.BILINEAR).convert("RGB")
    mask = np.rot90(field_mask, turn // 90) > 0.5  # back to the image's own frame
    small = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((size, size))) > 127
    edge = small & ~(np.roll(small, 1, 0) & np.roll(small, -1, 0) & np.roll(small, 1, 1) & np.roll(small, -1, 1))
    pixels = np.asarray(tile).copy()
    pixels[edge] = (40, 220, 60) if plausible and turn == 0 else (230, 40, 40)
    return Image.fromarray(pixels)


def contact_sheet(finder: LungFinder, grays: Sequence[Image.Image], columns: int = 10) -> tuple[Image.Image, int]:
    fields = finder.find(grays)
    tiles = [overlay(g, f.mask, f.turn, f.plausible and f.upright) for g, f in zip(grays, fields, strict=True)]
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * 114, rows * 114), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x, y = (i % columns) * 114 + 1, (i // columns) * 114 + 1
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + 1), str(i), fill=(255, 255, 0))
    return sheet, sum(not (f.plausible and f.upright) for f in fields)


def main(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    masks = read_masks(args.masks, args.data)
    report: dict[str, Any] = {"masks": len(masks.names), "patients": len(set(masks.patients)), "folds": args.folds}
    if args.network is not None:
        net, trained = load_lung_checkpoint(args.network)
        report["cross_validation"] = trained.get("cross_validation", {})
        trained_on = trained.get("trained_on", {})
    else:
        net = cross_validate_and_train(args, masks, report)
        trained_on = {"masks": len(masks.names), "patients": len(set(masks.patients)), "epochs": args.epochs}
    return fit_and_report(args, net, report, trained_on)


def cross_validate_and_train(args: argparse.Namespace, masks: MaskSet, report: dict[str, Any]) -> LungNet:
    """Steps 1 and 2: the cross-validated figures into ``report``, then the network on every mask."""
    from sklearn.model_selection import GroupKFold

    rows: list[dict[str, Any]] = []
    if args.folds > 1:
        splitter = GroupKFold(n_splits=args.folds)
        for fold, (train, held_out) in enumerate(splitter.split(masks.images, groups=masks.patients)):
            net = train_network(
                masks.images[train], masks.masks[train], args.epochs, args.batch, args.lr, args.seed, args.time_limit
            )
            fold_rows = score_fold(net, masks, held_out)
            logger.info("fold %d: %s", fold, json.dumps(summary(fold_rows)["dice"]))
            rows.extend({**r, "fold": fold} for r in fold_rows)
        report["cross_validation"] = summary(rows)
        (args.out / "cv.json").write_text(json.dumps(rows, indent=1) + "\n")
    return train_network(masks.images, masks.masks, args.epochs, args.batch, args.lr, args.seed, args.time_limit)


def fit_and_report(
    args: argparse.Namespace, net: LungNet, report: dict[str, Any], trained_on: dict[str, Any]
) -> dict[str, Any]:
    """Steps 3 and 4: the rule on the manifest's X-rays, the checkpoint, the contact sheets."""
    finder = LungFinder(torch_graph(net), None)
    records = [r for r in read_manifest(args.manifest)]
    fit = [r for r in records if r.fold != args.test_fold]
    test = [r for r in records if r.fold == args.test_fold]

    def fields_of(chosen: Sequence[Any]) -> list[Any]:
        return finder.find([load_gray((args.data / r.path).read_bytes(), DECODE_SIZE) for r in chosen])

    fit_fields = fields_of(fit)
    rule = fit_rule([f.features for f in fit_fields], args.margin)
    finder.rule = rule
    test_fields = fields_of(test)
    per_source: dict[str, dict[str, Any]] = {}
    for record, lung_field in zip(test, test_fields, strict=True):
        failed = rule.failed(lung_field.features)
        row = per_source.setdefault(record.source, {"n": 0, "no_lung_fields": 0, "not_upright": 0})
        row["n"] += 1
        row["no_lung_fields"] += bool(failed)
        row["not_upright"] += not failed and lung_field.turn != 0
    report["rule"] = {
        "bounds": rule.to_dict(),
        "fitted_on": {"images": len(fit), "refused": sum(bool(rule.failed(f.features)) for f in fit_fields)},
        "test": per_source,
    }
    info = policy(
        rule,
        {
            "name": f"lungs-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}",
            "trained_on": trained_on,
            "cross_validation": report.get("cross_validation", {}),
            "rule_fitted_on": report["rule"]["fitted_on"],
        },
    )
    save_lung_checkpoint(net, info, args.out / "lungs.safetensors")
    if args.install:
        save_lung_checkpoint(net, info, DEFAULT_INSTALL)
    rng = np.random.default_rng(0)
    report["sheets"] = {}
    for source in sorted({r.source for r in test}):
        chosen = [r for r in test if r.source == source]
        picked = [chosen[i] for i in sorted(rng.permutation(len(chosen))[: args.sheet])]
        grays = [load_gray((args.data / r.path).read_bytes(), 256) for r in picked]
        sheet, flagged = contact_sheet(finder, grays)
        sheet.save(args.out / f"sheet-{source}.png")
        report["sheets"][source] = {"images": len(picked), "flagged": flagged, "files": [r.path for r in picked]}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "sheets"}, indent=2))
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--masks", type=Path, required=True, help="cxr-lungmasks folder (manifest.csv, masks/)")
    add("--data", type=Path, required=True, help="cxr-multisource folder (the masks' images, every source)")
    add("--manifest", type=Path, required=True, help="its manifest.csv (training.data): the rule's X-rays")
    add("--out", type=Path, default=Path("runs/lungs"), help="report folder (default: %(default)s)")
    add("--folds", type=int, default=5, help="patient-grouped folds; 1: no cross-validation (default: %(default)s)")
    add("--epochs", type=int, default=60, help="(default: %(default)s)")
    add("--batch", type=int, default=16, help="(default: %(default)s)")
    add("--lr", type=float, default=3e-3, help="peak learning rate, one-cycle (default: %(default)s)")
    add("--seed", type=int, default=0, help="(default: %(default)s)")
    add("--time-limit", type=float, default=0.0, help="seconds per network; 0: none (default: %(default)s)")
    add("--test-fold", type=int, default=0, help="the manifest's fold the rule is measured on (default: %(default)s)")
    add("--margin", type=float, default=MARGIN, help="the rule's bounds: extremes +- this x IQR (default: %(default)s)")
    add("--sheet", type=int, default=50, help="test images per source on the contact sheets (default: %(default)s)")
    add("--network", type=Path, default=None, help="a trained lungs.safetensors: only refit its rule (default: train)")
    add("--install", action="store_true", help=f"also write {DEFAULT_INSTALL} (default: off)")
    add("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
