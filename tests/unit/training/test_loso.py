"""Leave-one-source-out on a tiny synthetic multi-source set (small net, one epoch)."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from tests import images
from training.data import ingest
from training.loso import default_holdouts, get_args_parser, holdout_manifest, main
from training.recipes import RECIPES, recipe_args

COVID_SOURCES = ("north", "south")
NEGATIVE_SOURCES = ("west", "east")


@pytest.fixture(scope="module")
def multisource(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sources with COVID (and, in one, a few negatives) and two with negatives only."""
    root = tmp_path_factory.mktemp("multisource")
    rows = ["path,label,source,patient"]
    plan = {"north": {"covid": 6}, "south": {"covid": 6, "no_findings": 2}, "west": {"no_findings": 6}}
    plan["east"] = {"no_findings": 6}
    for s, (source, counts) in enumerate(plan.items()):
        for c, (label, n) in enumerate(counts.items()):
            (root / label).mkdir(exist_ok=True)
            for i in range(n):
                name = f"{label}/{source}-{i}.png"
                (root / name).write_bytes(images.png(64, seed=1000 * s + 100 * c + i))
                rows.append(f"{name},{label},{source},{c}{i // 2}")  # two images per patient
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_each_holdout_pairs_a_covid_source_with_a_source_without_covid(multisource: Path) -> None:
    records, _ = ingest(multisource)
    assert default_holdouts(records) == [(c, n) for c in sorted(COVID_SOURCES) for n in sorted(NEGATIVE_SOURCES)]


def test_the_held_out_sources_are_the_test_fold_and_nothing_else(multisource: Path) -> None:
    records, _ = ingest(multisource)
    manifest = holdout_manifest(records, ("south", "west"))
    assert {r.source for r in manifest if r.split == "test"} == {"south", "west"}
    assert not {"south", "west"} & {r.source for r in manifest if r.split != "test"}
    assert {r.split for r in manifest if r.source not in ("south", "west")} == {"train", "val"}
    train_groups = {r.group for r in manifest if r.split == "train"}
    assert not train_groups & {r.group for r in manifest if r.split == "val"}


def test_every_recipe_adds_its_change_to_the_one_before() -> None:
    flags = [recipe_args(name, "resnet18") for name in RECIPES]
    assert all(before == after[: len(before)] for before, after in itertools.pairwise(flags))
    assert recipe_args("crop-equalize", "inception_v3")[:2] == ["--preset", "xray-gray-299-v2"]


def test_every_holdout_is_scored_by_a_model_that_never_saw_it(multisource: Path, tmp_path: Path) -> None:
    train = ["--task", "binary", "--epochs", "1", "--batch-size", "8"]
    args, rest = get_args_parser().parse_known_args(
        ["--data", str(multisource), "--out", str(tmp_path), "--rows", "mobilenet_v3_small:source-adversary", *train]
    )
    report = main(args, rest)
    assert report["holdouts"] == ["north+east", "north+west", "south+east", "south+west"]
    runs = report["rows"]["mobilenet_v3_small:source-adversary"]
    for held, run in runs.items():
        covid_source, negative_source = held.split("+")
        path = tmp_path / "mobilenet_v3_small-source-adversary" / held / "output" / "test_predictions.csv"
        with path.open() as handle:
            assert {row["source"] for row in csv.DictReader(handle)} == {covid_source, negative_source}
        assert run["pooled"]["covid"] == 6
        assert "auc" in run["pooled"]
    assert report["best"] == "mobilenet_v3_small:source-adversary"
    assert (tmp_path / "loso.md").read_text().count("\n") == 3
