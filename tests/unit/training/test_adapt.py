"""training.adapt on a tiny synthetic site: the cross-validation never scores an image with a model
that saw it, the adapted model is stamped and served, and bad inputs end with a clear message."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from model.builder.architectures import build_model
from model.builder.checkpoint import read_checkpoint_metadata, save_checkpoint
from model.serving.metadata import ModelMetadata
from tests import images
from tests.conftest import invoke_local_endpoint
from training.adapt import get_args_parser, main

ARCH, PRESET = "mobilenet_v3_small", "xray-gray-224-v1"


def _checkpoint(folder: Path, task: str) -> Path:
    labels = ["covid", "no_findings", "pneumonia"] if task == "multiclass" else ["covid", "no_findings"]
    net = build_model(ARCH, task, "none", PRESET)
    return save_checkpoint(
        net,
        ModelMetadata("xray-covid", f"start-{task}", ARCH, task, labels, 224, PRESET),
        folder / f"{task}.safetensors",
    )


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("start"), "multiclass")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.class_folders(tmp_path_factory.mktemp("site"), per_class=6)


def _args(start: Path, site: Path, out: Path, *extra: str) -> list[str]:
    return ["--checkpoint", str(start), "--data", str(site), "--out", str(out), "--folds", "3", "--epochs", "1", *extra]


@pytest.fixture(scope="module")
def adapted(start: Path, site: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("adapted")
    return out, main(get_args_parser().parse_args(_args(start, site, out, "--site-name", "St Example")))


def _paths(manifest: Path, *splits: str) -> set[str]:
    with manifest.open(newline="") as handle:
        return {row["path"] for row in csv.DictReader(handle) if row["split"] in splits}


def test_no_image_is_scored_by_a_model_that_saw_it(adapted: tuple[Path, dict[str, Any]]) -> None:
    out, _ = adapted
    for fold in sorted((out / "folds").glob("*/*")):
        seen = _paths(fold / "manifest.csv", "train", "val")
        scored = set(json.loads((fold / "predictions.json").read_text())["paths"])
        assert scored
        assert not scored & seen


def test_every_site_image_is_scored_once_per_strategy(adapted: tuple[Path, dict[str, Any]]) -> None:
    out, report = adapted
    for strategy in report["strategies"]:
        scored = [
            p
            for fold in (out / "folds" / strategy).glob("*")
            for p in json.loads((fold / "predictions.json").read_text())["paths"]
        ]
        assert sorted(scored) == sorted(set(scored))
        assert len(scored) == report["images_used"] == 12


def test_the_report_holds_before_and_after_with_intervals(adapted: tuple[Path, dict[str, Any]]) -> None:
    _, report = adapted
    for part in ("before", "after"):
        assert {"n", "roc_auc", "roc_auc_ci", "covid_sensitivity", "covid_specificity", "ece"} <= set(report[part])
        assert report[part]["n"] == 12
    assert report["strategy"] in report["strategies"]
    assert report["folds"] == 3


def test_images_of_other_labels_are_listed_as_skipped_with_the_reason(adapted: tuple[Path, dict[str, Any]]) -> None:
    skipped = adapted[1]["images_skipped"]
    assert len(skipped) == 6
    assert all("pneumonia is not one of the binary task" in s["reason"] for s in skipped)


def test_the_adapted_model_is_stamped_with_its_site_validation(adapted: tuple[Path, dict[str, Any]]) -> None:
    out, report = adapted
    meta = read_checkpoint_metadata(out / "model.safetensors")
    assert meta.task == "binary"
    assert (meta.site_validation["site"], meta.site_validation["n"]) == ("St Example", 12)
    assert meta.site_validation["meets_goal"] is report["after"]["meets_goal"]


def test_the_package_and_the_model_card_are_written(adapted: tuple[Path, dict[str, Any]]) -> None:
    out, _ = adapted
    assert (out / "model.tar.gz").stat().st_size > 0
    assert "adapted to St Example" in (out / "MODEL_CARD.md").read_text()


def test_a_site_without_one_class_is_refused(start: Path, tmp_path: Path) -> None:
    site = images.class_folders(tmp_path / "site", per_class=4)
    for file in (site / "no_findings").iterdir():
        file.unlink()
    with pytest.raises(SystemExit, match="no usable no_findings images"):
        main(get_args_parser().parse_args(_args(start, site, tmp_path / "out")))


def test_too_few_patients_for_the_folds_says_how_many_are_needed(start: Path, tmp_path: Path) -> None:
    site = images.class_folders(tmp_path / "site", per_class=2)
    with pytest.raises(SystemExit, match="3 folds need at least 3 patients of each label"):
        main(get_args_parser().parse_args(_args(start, site, tmp_path / "out")))


def test_a_checkpoint_of_a_smaller_task_is_refused(site: Path, tmp_path: Path) -> None:
    binary = _checkpoint(tmp_path, "binary")
    with pytest.raises(SystemExit, match="is a binary model"):
        main(get_args_parser().parse_args(_args(binary, site, tmp_path / "out", "--task", "multiclass")))


def test_unreadable_files_are_skipped_with_the_reason(start: Path, tmp_path: Path) -> None:
    site = images.class_folders(tmp_path / "site", per_class=4)
    (site / "covid" / "broken.png").write_bytes(images.truncated(images.png(96, seed=9)))
    from training.adapt import load_site

    args = get_args_parser().parse_args(_args(start, site, tmp_path / "out", "--folds", "2"))
    loaded = load_site(args, PRESET)
    assert [s["reason"].split(":")[0] for s in loaded.skipped if s["path"].endswith("broken.png")] == ["unreadable"]
    assert len(loaded.records) == 8


def test_the_html_report_is_one_self_contained_page(adapted: tuple[Path, dict[str, Any]]) -> None:
    page = (adapted[0] / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 + 4  # ROC, reliability, 2 heatmaps a label: embedded
    assert "Where the adapted model looks" in page
    assert "Adapting the model to St Example" in page
    assert 'src="http' not in page
    assert "<th scope='row'>ROC AUC</th>" in page


def test_in_a_training_job_the_inputs_and_outputs_are_sagemakers_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_START", "/opt/ml/input/data/start")
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training")
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    args = get_args_parser().parse_args(["--task", "binary"])
    assert args.checkpoint == Path("/opt/ml/input/data/start/model.safetensors")
    assert (args.data, args.model_dir, args.report_dir) == (
        Path("/opt/ml/input/data/training"),
        Path("/opt/ml/model"),
        Path("/opt/ml/output/data"),
    )
    assert args.out == Path("/opt/ml/checkpoints/adapt")  # synced to S3: a spot interruption resumes the folds


def test_the_serving_artifacts_and_the_report_are_published_where_sagemaker_packs_them(
    adapted: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from training.adapt import publish_for_sagemaker

    args = get_args_parser().parse_args(
        [
            "--checkpoint",
            "x",
            "--data",
            "x",
            "--out",
            str(adapted[0]),
            "--model-dir",
            str(tmp_path / "model"),
            "--report-dir",
            str(tmp_path / "output"),
        ]
    )
    publish_for_sagemaker(args)
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["site_validation"]["site"] == "St Example"
    assert (tmp_path / "output" / "report.html").is_file()


def test_the_local_endpoint_serves_the_package_and_names_its_site(
    adapted: tuple[Path, dict[str, Any]], site: Path, tmp_path: Path
) -> None:
    from model.serving.serve import unpack

    out, report = adapted
    model_dir = unpack(out / "model.tar.gz", tmp_path / "model")
    image = next((site / "covid").iterdir()).read_bytes()
    # As JSON, so that a refused synthetic image is an answer too (a raw one would be a 400).
    body = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}).encode()
    answer = invoke_local_endpoint(model_dir, body, content_type="application/json")
    assert answer["model"]["site_validation"] == "St Example"
    assert answer["model"]["labels"] == ["covid", "no_findings"]
    prediction = answer["predictions"][0]
    if "confidence" in prediction:  # the gate may refuse a synthetic image
        assert ("validated_on" in prediction["confidence"]) is report["after"]["meets_goal"]


def _figures(refused: int, n: int = 80) -> dict[str, Any]:
    return {"n": n, "gate": {"refused": refused, "share": refused / n}}


def test_the_caveats_say_when_the_starting_model_learnt_from_the_sites_sources() -> None:
    from collections import Counter

    from training.adapt import caveats

    site = type("Site", (), {"patients_named": True})()
    notes = caveats(site, _figures(0), Counter({"hannover": 40, "kermany": 40}), _figures(0), frozenset({"hannover"}))  # type: ignore[arg-type]
    assert any("trained on sources named hannover" in note for note in notes)


def test_the_caveats_say_when_the_refitted_gate_refuses_more_than_intended() -> None:
    from collections import Counter

    from training.adapt import caveats

    site = type("Site", (), {"patients_named": True})()
    quiet = caveats(site, _figures(0), Counter({"a": 80}), _figures(1))  # type: ignore[arg-type]
    loud = caveats(site, _figures(0), Counter({"a": 80}), _figures(7))  # type: ignore[arg-type]
    assert [n for n in loud if "refused 7 of 80 held-out" in n]
    assert not [n for n in quiet if "held-out" in n]


def test_a_three_class_adaptation_reports_both_the_binary_and_the_three_class_figures(
    start: Path, site: Path, tmp_path: Path
) -> None:
    report = main(get_args_parser().parse_args(_args(start, site, tmp_path / "out", "--task", "multiclass")))
    assert report["after"]["n"] == 12  # covid vs no_findings: the pneumonia images left out of it
    assert report["after"]["multiclass"]["n"] == 18
    assert report["images_skipped"] == []
    assert "Figures, all three labels" in (tmp_path / "out" / "report.html").read_text()


def test_nih_file_names_count_as_named_patients(adapted: tuple[Path, dict[str, Any]]) -> None:
    assert not any("each image counted as its own patient" in note for note in adapted[1]["caveats"])


def test_a_site_of_plain_file_names_counts_each_image_as_its_own_patient(start: Path, tmp_path: Path) -> None:
    from training.adapt import load_site

    site = tmp_path / "site"
    for label in ("covid", "no_findings"):
        (site / label).mkdir(parents=True)
        for i in range(3):
            (site / label / f"scan-{label}-{i}.png").write_bytes(
                images.png(96, seed=(7 if label == "covid" else 50) + i)
            )
    args = get_args_parser().parse_args(_args(start, site, tmp_path / "out", "--folds", "2"))
    assert not load_site(args, PRESET).patients_named


def test_a_manifest_with_a_patient_column_names_the_patients(tmp_path: Path) -> None:
    from training.adapt import manifest_names_patients

    (tmp_path / "manifest.csv").write_text("path,label,source,patient\ncovid/a.png,covid,site,P1\n")
    assert manifest_names_patients(tmp_path)
    assert not manifest_names_patients(tmp_path / "elsewhere")
