"""Re-encode a class-folder dataset smaller (for moving it to a training machine with a size limit).

    python -m training.shrink --data ../shared/data/ozturk-3class --out runs/ozturk-320 --max-side 320

Keeps the layout and writes manifest.csv with the new paths and the original names (for grouping).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image

from training.data import read_dataset


def main(args: argparse.Namespace) -> None:
    records, _ = read_dataset(args.data)
    manifest = args.data / "manifest.csv"
    originals: dict[str, dict[str, str]] = {}
    if manifest.is_file():
        with manifest.open(newline="") as handle:
            originals = {row["path"]: row for row in csv.DictReader(handle)}
    rows = []
    for record in records:
        # Same relative path where the file already is a JPEG, so manifests of the original still apply.
        target = (args.out / record.path).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(args.data / record.path) as image:
            gray = image.convert("L")
            gray.thumbnail((args.max_side, args.max_side), Image.Resampling.LANCZOS)
            gray.save(target, "JPEG", quality=args.quality)
        row = dict(originals.get(record.path, {}))
        row.update(
            path=str(target.relative_to(args.out)),
            label=record.label,
            source=record.source,
            original_name=row.get("original_name") or Path(record.path).name,
        )
        rows.append(row)
    with (args.out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} images -> {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, required=True, help="class-folder or multi-source dataset with manifest.csv"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--max-side", type=int, default=320, help="longest side in px (default: %(default)s)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default: %(default)s)")
    main(parser.parse_args())
