"""Ingest X-ray datasets in their native layouts into one grouped, split manifest.

    python -m training.data --data ../shared/data/ozturk-3class --out runs/manifest.csv

Layouts (detected from the directory):
- ``classfolders``: LABEL/NAME.png, optionally with manifest.csv (path,label[,source,original_name,...]);
- ``ozturk``: Covid-19/, No_findings/, Pneumonia/;
- ``chowdhury``: COVID/, NORMAL or Normal/, Viral Pneumonia/ (optionally with images/ inside);
  Lung_Opacity/ is left out (it is not one of this project's labels) and reported;
- ``cohen``: metadata.csv + images/ (finding -> label; frontal PA/AP views only; patientid -> group).

Every image gets a group (one patient where the name or metadata tells it), an exact (sha256) and a
perceptual (pHash) hash; duplicates are removed across the whole set and reported; then groups are
assigned to stratified folds so that no group ever spans two folds or splits.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from PIL import Image

from model.core.labels import ALL_LABELS, COVID, NO_FINDINGS, PNEUMONIA

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg"})
MANIFEST_COLUMNS: Final = ("path", "label", "source", "group", "sha256", "phash", "split", "fold")
NIH_NAME: Final = re.compile(r"^(\d{8})_\d{3}\.png$", re.IGNORECASE)
# Figure crops of one case: "-a"/"-b", "-a1"/"-a2", "fig1a"/"fig1b", "-day0"/"-day4".
_CROP_SUFFIXES: Final = (
    re.compile(r"[-_ ]?day\d+$", re.IGNORECASE),
    re.compile(r"-[a-z]\d?$", re.IGNORECASE),
    re.compile(r"(?<=fig\d)[a-z]$", re.IGNORECASE),
    re.compile(r"(?<=fig\d\d)[a-z]$", re.IGNORECASE),
)
FOLDER_LABELS: Final = {
    "covid": COVID,
    "covid-19": COVID,
    "covid19": COVID,
    "no_findings": NO_FINDINGS,
    "normal": NO_FINDINGS,
    "no findings": NO_FINDINGS,
    "pneumonia": PNEUMONIA,
    "viral pneumonia": PNEUMONIA,
}
LEFT_OUT_FOLDERS: Final = frozenset({"lung_opacity", "lung opacity"})
NEAR_DUPLICATE_BITS: Final = 2


@dataclass
class Record:
    path: str
    label: str
    source: str
    group: str
    sha256: str = ""
    phash: str = ""
    split: str = ""
    fold: int = -1


@dataclass
class IngestReport:
    layout: str
    counts: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    exact_duplicates: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)
    groups: int = 0
    multi_image_groups: int = 0


def _strip_image_suffixes(name: str) -> str:
    while Path(name).suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".gif"}:
        name = Path(name).stem
    return name


def group_from_name(name: str, source: str) -> str:
    """The patient/case a file name belongs to, as far as the name tells."""
    nih = NIH_NAME.match(Path(name).name)
    if nih:
        return f"nih-{nih.group(1)}"
    stem = _strip_image_suffixes(Path(name).name)
    for pattern in _CROP_SUFFIXES:
        stem = pattern.sub("", stem)
    # "Fig1_HTML.webp-day10.png": the crop suffix may hide a second extension.
    return f"{source}-{_strip_image_suffixes(stem).lower()}"


def _label_of_folder(name: str) -> str | None:
    return FOLDER_LABELS.get(name.strip().lower().replace("_", " ").replace(" ", "_")) or FOLDER_LABELS.get(
        name.strip().lower()
    )


def detect_layout(root: Path) -> str:
    names = {p.name.lower() for p in root.iterdir()}
    if "metadata.csv" in names and "images" in names:
        return "cohen"
    if {"covid-19", "no_findings", "pneumonia"} <= names:
        return "ozturk"
    if "covid" in names and ("normal" in names or "viral pneumonia" in names):
        return "chowdhury"
    return "classfolders"


def _images_in(folder: Path) -> Iterator[Path]:
    inner = folder / "images"
    base = inner if inner.is_dir() else folder
    yield from sorted(p for p in base.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folders(root: Path, source: str, report: IngestReport) -> Iterator[Record]:
    manifest = root / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle):
                original = row.get("original_name") or Path(row["path"]).name
                row_source = row.get("source") or source
                # A multi-source manifest names each image's patient: the group, within its source.
                patient = (row.get("patient") or "").strip()
                group = f"{row_source}-{patient}" if patient else group_from_name(original, row_source)
                yield Record(row["path"], row["label"], row_source, group)
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _label_of_folder(folder.name)
        if label is None:
            count = sum(1 for _ in _images_in(folder))
            if folder.name.lower() in LEFT_OUT_FOLDERS or count:
                report.left_out[folder.name] = count
            continue
        for image in _images_in(folder):
            yield Record(str(image.relative_to(root)), label, source, group_from_name(image.name, source))


def _cohen_label(finding: str) -> str | None:
    finding = finding.lower()
    if "covid" in finding:
        return COVID
    if "no finding" in finding:
        return NO_FINDINGS
    if "pneumonia" in finding:
        return PNEUMONIA
    return None


def _read_cohen(root: Path, report: IngestReport) -> Iterator[Record]:
    with (root / "metadata.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            view = (row.get("view") or "").upper().strip()
            label = _cohen_label(row.get("finding") or "")
            if not view.startswith(("PA", "AP")) or label is None:
                report.left_out["non-frontal or other finding"] = (
                    report.left_out.get("non-frontal or other finding", 0) + 1
                )
                continue
            path = Path(row.get("folder") or "images") / row["filename"]
            if path.suffix.lower() not in IMAGE_SUFFIXES or not (root / path).is_file():
                report.left_out["missing or unsupported file"] = (
                    report.left_out.get("missing or unsupported file", 0) + 1
                )
                continue
            yield Record(str(path), label, "cohen", f"cohen-{row['patientid']}")


def read_dataset(root: Path, layout: str = "auto") -> tuple[list[Record], IngestReport]:
    layout = detect_layout(root) if layout == "auto" else layout
    report = IngestReport(layout)
    source = {"ozturk": "ozturk2020", "chowdhury": "chowdhury2020", "cohen": "cohen"}.get(layout, root.name)
    reader = _read_cohen(root, report) if layout == "cohen" else _read_folders(root, source, report)
    return list(reader), report


def add_hashes(records: Iterable[Record], root: Path) -> None:
    import imagehash

    for record in records:
        data = (root / record.path).read_bytes()
        record.sha256 = hashlib.sha256(data).hexdigest()
        with Image.open(root / record.path) as image:
            record.phash = str(imagehash.phash(image.convert("L")))


def remove_duplicates(records: list[Record], report: IngestReport) -> list[Record]:
    """Drop exact (sha256) and near (pHash within NEAR_DUPLICATE_BITS) duplicates, keeping the first."""
    import imagehash

    kept: list[Record] = []
    seen_sha: dict[str, Record] = {}
    kept_hashes: list[tuple[Any, Record]] = []
    for record in records:
        if record.sha256 in seen_sha:
            report.exact_duplicates.append((seen_sha[record.sha256].path, record.path))
            continue
        seen_sha[record.sha256] = record
        phash = imagehash.hex_to_hash(record.phash)
        twin = next((r for h, r in kept_hashes if h - phash <= NEAR_DUPLICATE_BITS), None)
        if twin is not None:
            report.near_duplicates.append((twin.path, record.path))
            continue
        kept_hashes.append((phash, record))
        kept.append(record)
    return kept


def split_of(fold: int, test_fold: int, val_fold: int) -> str:
    """The one rule from a record's fold to its split."""
    return "test" if fold == test_fold else "val" if fold == val_fold else "train"


def assign_folds(records: list[Record], folds: int = 5, seed: int = 0, test_fold: int = 0, val_fold: int = 1) -> None:
    """Stratified, grouped folds; ``test_fold`` -> split test, ``val_fold`` -> val, the rest -> train."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = [r.label for r in records]
    groups = [r.group for r in records]
    for fold, (_, held_out) in enumerate(splitter.split(records, labels, groups)):
        for index in held_out:
            records[index].fold = fold
    for record in records:
        record.split = split_of(record.fold, test_fold, val_fold)


def write_manifest(records: Iterable[Record], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(asdict(record))
    return path


def read_manifest(path: Path) -> list[Record]:
    with path.open(newline="") as handle:
        return [Record(**{**row, "fold": int(row["fold"])}) for row in csv.DictReader(handle)]  # type: ignore[arg-type]


def ingest(root: Path, layout: str = "auto", folds: int = 5, seed: int = 0) -> tuple[list[Record], IngestReport]:
    records, report = read_dataset(root, layout)
    unknown = {r.label for r in records} - set(ALL_LABELS)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not among {ALL_LABELS}")
    add_hashes(records, root)
    records = remove_duplicates(records, report)
    assign_folds(records, folds, seed)
    report.counts = dict(Counter(r.label for r in records))
    group_sizes = Counter(r.group for r in records)
    report.groups = len(group_sizes)
    report.multi_image_groups = sum(1 for n in group_sizes.values() if n > 1)
    return records, report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset root directory")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/manifest.csv"), help="manifest to write (default: %(default)s)"
    )
    parser.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "classfolders", "ozturk", "chowdhury", "cohen"],
        help="dataset layout (default: %(default)s)",
    )
    parser.add_argument("--folds", type=int, default=5, help="number of grouped folds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed (default: %(default)s)")
    return parser


def main(args: argparse.Namespace) -> None:
    records, report = ingest(args.data, args.layout, args.folds, args.seed)
    write_manifest(records, args.out)
    report_path = args.out.with_suffix(".report.json")
    report_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(json.dumps({k: v for k, v in asdict(report).items() if not k.endswith("duplicates")}, indent=2))
    print(
        f"{len(report.exact_duplicates)} exact and {len(report.near_duplicates)} near duplicates removed; "
        f"manifest: {args.out}; report: {report_path}"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
