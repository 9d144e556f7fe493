"""Leave-one-source-out on a tiny synthetic multi-source set (small net, one epoch)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests import images
from training.data import ingest
from training.loso import get_args_parser, holdout_manifest, main

SOURCES = ("north", "south", "west")


@pytest.fixture(scope="module")
def multisource(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multisource")
    rows = ["path,label,source,patient"]
    for s, source in enumerate(SOURCES):
        for c, label in enumerate(("covid", "no_findings")):
            (root / label).mkdir(exist_ok=True)
            for i in range(6):
                name = f"{label}/{source}-{i}.png"
                (root / name).write_bytes(images.png(64, seed=1000 * s + 100 * c + i))
                rows.append(f"{name},{label},{source},{c}{i // 2}")  # two images per patient
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_the_held_out_source_is_the_test_fold_and_nothing_else(multisource: Path) -> None:
    records, _ = ingest(multisource)
    manifest = holdout_manifest(records, "south")
    assert {r.source for r in manifest if r.split == "test"} == {"south"}
    assert "south" not in {r.source for r in manifest if r.split != "test"}
    assert {r.split for r in manifest if r.source != "south"} == {"train", "val"}
    train_groups = {r.group for r in manifest if r.split == "train"}
    assert not train_groups & {r.group for r in manifest if r.split == "val"}


def test_every_source_is_scored_by_a_model_that_never_saw_it(multisource: Path, tmp_path: Path) -> None:
    train = ["--arch", "mobilenet_v3_small", "--task", "binary", "--epochs", "1", "--batch-size", "8", "--workers", "0"]
    args, rest = get_args_parser().parse_known_args(
        ["--data", str(multisource), "--out", str(tmp_path), "--jobs", "1", *train]
    )
    report = main(args, rest)
    assert set(report["sources"]) == set(SOURCES)
    for source in SOURCES:
        with (tmp_path / f"holdout-{source}" / "output" / "test_predictions.csv").open() as handle:
            assert {row["path"].split("/")[1].split("-")[0] for row in csv.DictReader(handle)} == {source}
        scored = report["sources"][source]["at_0.5"]
        assert (scored["covid"], scored["no_findings"]) == (6, 6)
        assert "auc" in scored
