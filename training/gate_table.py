"""The gate table of a served model: what it refuses, and why, of chest X-rays and of everything else.

    python -m training.gate_table --model build/model/artifacts --data ../shared/data/cxr-multisource \\
        --manifest runs/ms/manifest.csv --ood ../shared/data/cxr-ood --out runs/gate-table

Every image goes in as bytes, through ``Predictor.predict``: the served decoder, the lung-field gate
where the package has one, the classifier's feature gate. Categories:

- ``xray:<source>``: the manifest's test fold, per source (these must be answered: refused <= 1 %);
- ``lateral``, ``ct``: the ``cxr-ood`` folder's real lateral radiographs and CT slices;
- ``inverted``, ``rotated90``, ``rotated180``, ``rotated270``: the test X-rays as a negative, and turned
  counter-clockwise, each re-encoded as PNG like an upload;
- ``photographs`` ... ``flat``: ``training.negatives``'s generated and scikit-image categories.

Nothing here is fitted: run it on two packages of the same classifier (``python -m model.builder
--no-lungs`` and with lungs) to compare the gates side by side.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, ImageOps

from model.core.decoding import load_gray
from model.serving.runtime import Predictor
from training.data import read_manifest
from training.negatives import GENERATORS

logger = logging.getLogger(__name__)

BATCH: Final = 16
TURNED_SIDE: Final = 512  # a turned or inverted copy is re-encoded at this longest side


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def variants(xrays: Sequence[bytes]) -> dict[str, list[bytes]]:
    """The inverted and turned copies of ``xrays``, as PNG uploads."""
    out: dict[str, list[bytes]] = {"inverted": [], "rotated90": [], "rotated180": [], "rotated270": []}
    for data in xrays:
        gray = load_gray(data, TURNED_SIDE)
        gray.thumbnail((TURNED_SIDE, TURNED_SIDE))
        out["inverted"].append(_png(ImageOps.invert(gray)))
        for k, name in ((1, "rotated90"), (2, "rotated180"), (3, "rotated270")):
            out[name].append(_png(Image.fromarray(np.ascontiguousarray(np.rot90(np.asarray(gray), k)))))
    return out


def categories(data: Path, manifest: Path, test_fold: int, ood: Path | None) -> Iterator[tuple[str, list[bytes]]]:
    records = [r for r in read_manifest(manifest) if r.fold == test_fold]
    xrays: list[bytes] = []
    for source in sorted({r.source for r in records}):
        mine = [(data / r.path).read_bytes() for r in records if r.source == source]
        xrays.extend(mine)
        yield f"xray:{source}", mine
    for kind in ("lateral", "ct"):
        if ood is not None and (ood / kind).is_dir():
            yield kind, [p.read_bytes() for p in sorted((ood / kind).glob("*")) if p.is_file()]
    yield from variants(xrays).items()
    for name, generate in GENERATORS.items():
        yield name, [_png(image) for image in generate(np.random.default_rng(0))]


def outcomes(predictor: Predictor, images: Sequence[bytes]) -> Counter[str]:
    """``accepted`` or the refusal's reason, counted."""
    counted: Counter[str] = Counter()
    for start in range(0, len(images), BATCH):
        for item in predictor.predict(images[start : start + BATCH]).items:
            answer = item.to_dict()
            counted[answer["error"]["reason"] if "error" in answer else "accepted"] += 1
    return counted


def gate_table(predictor: Predictor, data: Path, manifest: Path, test_fold: int, ood: Path | None) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, images in categories(data, manifest, test_fold, ood):
        counted = outcomes(predictor, images)
        n = sum(counted.values())
        table[name] = {"n": n, "refused": (n - counted["accepted"]) / n if n else 0.0, "outcomes": dict(counted)}
        logger.info("%s: %s", name, table[name])
    return table


REASONS: Final = ("not_a_chest_xray", "not_upright", "no_lung_fields")


def format_table(table: dict[str, Any]) -> str:
    lines = [
        "| category | n | refused | " + " | ".join(f"`{r}`" for r in REASONS) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in REASONS) + " |",
    ]
    for name, row in table.items():
        n = max(1, row["n"])
        shares = " | ".join(f"{row['outcomes'].get(r, 0) / n:.1%}" for r in REASONS)
        lines.append(f"| {name} | {row['n']} | {row['refused']:.1%} | {shares} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    from training.evaluate import load_any_model

    predictor = load_any_model(args.model)
    table = gate_table(predictor, args.data, args.manifest, args.test_fold, args.ood)
    report = {"model": predictor.model_info(), "lung_fields": predictor.lungs is not None, "categories": table}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate_table.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gate_table.md").write_text(format_table(table) + "\n")
    print(format_table(table))
    return report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", type=Path, required=True, help="model dir, model.tar.gz or .safetensors")
    add("--data", type=Path, required=True, help="the chest X-rays (cxr-multisource)")
    add("--manifest", type=Path, required=True, help="their manifest.csv (training.data), with folds")
    add("--test-fold", type=int, default=0, help="the fold whose X-rays are scored (default: %(default)s)")
    add("--ood", type=Path, default=None, help="cxr-ood folder (lateral/, ct/) (default: none)")
    add("--out", type=Path, default=Path("runs/gate-table"), help="report folder (default: %(default)s)")
    return parser


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
