from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from tests import images
from training.data import detect_layout, group_from_name, ingest, read_dataset


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("00012345_003.png", "nih-00012345"),
        ("paper-gr2_lrg-a.jpg", "s-paper-gr2_lrg"),
        ("paper-gr2_lrg-b.png", "s-paper-gr2_lrg"),
        ("x.pdf-002-a1.png", "s-x.pdf-002"),
        ("x.pdf-000-fig1b.png", "s-x.pdf-000-fig1"),
        ("case_Fig1_HTML.webp-day10.png", "s-case_fig1_html"),
        ("covid-19-pneumonia-7-PA.jpg", "s-covid-19-pneumonia-7-pa"),
    ],
)
def test_group_rules(name: str, group: str) -> None:
    assert group_from_name(name, "s") == group


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _class_folders(root: Path, folders: dict[str, str], per_class: int = 6) -> None:
    seed = 0
    for folder in folders.values():
        for i in range(per_class):
            seed += 1
            _write(root / folder / f"{10000000 + seed:08d}_00{i % 2}.png", images.png(64, seed=seed * 7))


@pytest.mark.parametrize(
    ("folders", "layout"),
    [
        ({"covid": "covid", "no_findings": "no_findings", "pneumonia": "pneumonia"}, "classfolders"),
        ({"covid": "Covid-19", "no_findings": "No_findings", "pneumonia": "Pneumonia"}, "ozturk"),
        (
            {"covid": "COVID/images", "no_findings": "Normal/images", "pneumonia": "Viral Pneumonia/images"},
            "chowdhury",
        ),
    ],
)
def test_folder_layouts_are_ingested(tmp_path: Path, folders: dict[str, str], layout: str) -> None:
    _class_folders(tmp_path, folders)
    if layout == "chowdhury":
        _write(tmp_path / "Lung_Opacity" / "images" / "a.png", images.png(64, seed=999))
    _, report = ingest(tmp_path, folds=3)
    assert report.layout == layout
    assert report.counts == {"covid": 6, "no_findings": 6, "pneumonia": 6}
    if layout == "chowdhury":
        assert report.left_out == {"Lung_Opacity": 1}


def test_cohen_layout_keeps_frontal_views_and_patient_groups(tmp_path: Path) -> None:
    rows = [
        ("p1", "COVID-19", "PA", "a.png"),
        ("p1", "COVID-19", "AP", "b.png"),
        ("p2", "COVID-19", "L", "c.png"),
        ("p3", "No Finding", "PA", "d.png"),
        ("p4", "Pneumonia/Bacterial", "AP Supine", "e.png"),
    ]
    for i, (_, _, _, name) in enumerate(rows):
        _write(tmp_path / "images" / name, images.png(64, seed=100 + i * 13))
    with (tmp_path / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patientid", "finding", "view", "folder", "filename"])
        writer.writerows([(p, f, v, "images", n) for p, f, v, n in rows])
    records, report = ingest(tmp_path, folds=2)
    assert report.layout == "cohen"
    assert sorted((r.label, r.group) for r in records) == [
        ("covid", "cohen-p1"),
        ("covid", "cohen-p1"),
        ("no_findings", "cohen-p3"),
        ("pneumonia", "cohen-p4"),
    ]


def test_duplicates_are_removed_and_reported(tmp_path: Path) -> None:
    _class_folders(tmp_path, {"c": "covid", "n": "no_findings"})
    twin = (tmp_path / "covid").iterdir().__next__().read_bytes()
    _write(tmp_path / "no_findings" / "copy.png", twin)
    records, report = ingest(tmp_path, folds=3)
    assert len(report.exact_duplicates) == 1
    assert len(records) == 12


def test_no_group_crosses_folds_or_splits(tmp_path: Path) -> None:
    _class_folders(tmp_path, {"c": "covid", "n": "no_findings", "p": "pneumonia"}, per_class=12)
    records, _ = ingest(tmp_path, folds=3)
    folds, splits = defaultdict(set), defaultdict(set)
    for record in records:
        folds[record.group].add(record.fold)
        splits[record.group].add(record.split)
    assert all(len(v) == 1 for v in folds.values())
    assert all(len(v) == 1 for v in splits.values())
    assert {r.split for r in records} == {"train", "val", "test"}


def test_detect_layout_defaults_to_class_folders(tmp_path: Path) -> None:
    (tmp_path / "covid").mkdir()
    assert detect_layout(tmp_path) == "classfolders"


def test_a_multi_source_manifest_groups_by_its_patient_column(tmp_path: Path) -> None:
    (tmp_path / "covid").mkdir()
    rows = ["path,label,source,patient", "covid/a.png,covid,hannover,7", "covid/b.png,covid,hannover,7"]
    rows.append("covid/c.png,covid,cohen,7")
    for name in ("a", "b", "c"):
        (tmp_path / "covid" / f"{name}.png").write_bytes(images.png(64, seed=ord(name)))
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    records, _ = read_dataset(tmp_path)
    assert [(r.source, r.group) for r in records] == [
        ("hannover", "hannover-7"),
        ("hannover", "hannover-7"),
        ("cohen", "cohen-7"),  # the same number in another source is another patient
    ]
