"""Tiny end-to-end training on synthetic images (small net, 2 epochs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from model.builder.package import read_members
from model.serving.serve import unpack
from tests import images
from tests.conftest import invoke_local_endpoint
from training.train import get_args_parser, main


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.class_folders(tmp_path_factory.mktemp("data"), per_class=10)


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data",
        str(data),
        "--arch",
        "mobilenet_v3_small",
        "--task",
        "multiclass",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--folds",
        "3",
        "--output-dir",
        str(out / "model"),
        "--output-data-dir",
        str(out / "output"),
        "--checkpoint-dir",
        str(out / "ckpt"),
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("run")
    summary = main(get_args_parser().parse_args(_args(synthetic_data, out)))
    return out, summary


def test_training_writes_metrics_and_calibration(trained: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, summary = trained
    assert len(summary["history"]) == 2
    assert summary["metadata"]["temperature"] > 0
    assert set(summary["metrics"]["test"]) >= {"accuracy", "macro_f1", "ece", "confusion_matrix"}
    assert json.loads((out / "output" / "training.json").read_text())["temperature"] == summary["temperature"]


def test_training_fits_the_gate_on_the_training_split(trained: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    _, summary = trained
    gate = summary["metadata"]["gate"]
    counts = summary["metadata"]["training_data"]["counts"]
    assert gate["fitted_on"] == {"split": "train", "images": sum(counts["train"].values())}
    assert gate["threshold_from"]["images"] == sum(counts["val"].values())
    assert gate["threshold"] > 0


def test_training_chooses_the_covid_operating_point_on_validation(trained: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    _, summary = trained
    point = summary["metadata"]["operating_point"]
    assert point["target_sensitivity"] == 0.9
    assert point["chosen_on"]["split"] == "val"
    assert point["chosen_on"]["sensitivity"] >= 0.9


def test_trained_model_tarball_is_served_by_the_local_endpoint(
    trained: tuple[Path, dict],  # type: ignore[type-arg]
    synthetic_data: Path,
    tmp_path: Path,
) -> None:
    out, summary = trained
    model_dir = unpack(out / "output" / "model.tar.gz", tmp_path / "model")
    with (out / "output" / "manifest.csv").open() as handle:
        training_image = next(row["path"] for row in csv.DictReader(handle) if row["split"] == "train")
    answer = invoke_local_endpoint(model_dir, (synthetic_data / training_image).read_bytes())
    assert answer["model"]["labels"] == ["covid", "no_findings", "pneumonia"]
    assert answer["predictions"][0]["gate"]["threshold"] == round(summary["metadata"]["gate"]["threshold"], 4)
    assert answer["model"]["covid_threshold"] == round(summary["metadata"]["operating_point"]["threshold"], 4)


def test_resume_continues_to_the_same_state(synthetic_data: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    main(get_args_parser().parse_args(_args(synthetic_data, straight, "--no-export")))
    interrupted = tmp_path / "interrupted"
    assert "stopped_at_epoch" in main(
        get_args_parser().parse_args(_args(synthetic_data, interrupted, "--no-export", "--stop-after", "1"))
    )
    main(get_args_parser().parse_args(_args(synthetic_data, interrupted, "--no-export")))
    a = torch.load(straight / "ckpt" / "last.pt", weights_only=False)["model"]
    b = torch.load(interrupted / "ckpt" / "last.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every label from two sources, two images per patient."""
    root = tmp_path_factory.mktemp("sources")
    rows = ["path,label,source,patient"]
    for c, label in enumerate(("covid", "no_findings", "pneumonia")):
        (root / label).mkdir()
        for s, source in enumerate(("north", "south")):
            for i in range(6):
                name = f"{label}/{source}-{i}.png"
                (root / name).write_bytes(images.png(64, seed=100 * c + 10 * s + i))
                rows.append(f"{name},{label},{source},{c}{i // 2}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_resume_with_the_whole_recipe_continues_to_the_same_state(two_sources: Path, tmp_path: Path) -> None:
    recipe = ["--no-export", "--preset", "xray-gray-224-v2", "--augment", "strong", "--balance", "source"]
    recipe += ["--source-adversary", "0.3"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    main(get_args_parser().parse_args(_args(two_sources, straight, *recipe)))
    main(get_args_parser().parse_args(_args(two_sources, interrupted, *recipe, "--stop-after", "1")))
    summary = main(get_args_parser().parse_args(_args(two_sources, interrupted, *recipe)))
    a = torch.load(straight / "ckpt" / "last.pt", weights_only=False)
    b = torch.load(interrupted / "ckpt" / "last.pt", weights_only=False)
    for part in ("model", "adversary"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], msg=f"{part}.{key}")
    assert summary["metadata"]["preset"] == "xray-gray-224-v2"
    assert summary["metadata"]["training_data"]["recipe"]["source_adversary"] == 0.3


def test_the_time_limit_ends_training_with_the_best_epoch_so_far(synthetic_data: Path, tmp_path: Path) -> None:
    limited = _args(synthetic_data, tmp_path, "--no-export", "--time-limit", "0.001")
    summary = main(get_args_parser().parse_args(limited))
    assert len(summary["history"]) == 1
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_resuming_another_models_state_is_refused(synthetic_data: Path, tmp_path: Path) -> None:
    main(get_args_parser().parse_args(_args(synthetic_data, tmp_path, "--no-export", "--stop-after", "1")))
    other_task = [a if a != "multiclass" else "binary" for a in _args(synthetic_data, tmp_path, "--no-export")]
    with pytest.raises(SystemExit, match="resume state of"):
        main(get_args_parser().parse_args(other_task))


def _state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    names = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
    assert names
    return any(not torch.equal(before[k], after[k]) for k in names)


def test_fine_tuning_starts_from_the_checkpoint_and_can_train_the_head_alone(
    trained: tuple[Path, dict],  # type: ignore[type-arg]
    synthetic_data: Path,
    tmp_path: Path,
) -> None:
    start = trained[0] / "model" / "model.safetensors"
    args = _args(synthetic_data, tmp_path, "--init-checkpoint", str(start), "--epochs", "1", "--freeze-epochs", "1")
    args.remove("--arch")
    args.remove("mobilenet_v3_small")  # taken from the checkpoint
    main(get_args_parser().parse_args(args))
    before, after = _state(start), _state(tmp_path / "model" / "model.safetensors")
    assert not _changed(before, after, "backbone.")
    assert _changed(before, after, "classifier.")


def test_the_backbone_learns_at_its_own_rate() -> None:
    from model.builder.architectures import build_model
    from training.train import parameter_groups

    net = build_model("mobilenet_v3_small", "binary", "none", "xray-gray-224-v1")
    backbone, head = parameter_groups(net, 1e-3, 0.1)
    assert (backbone["lr"], head["lr"]) == (pytest.approx(1e-4), 1e-3)
    assert len(backbone["params"]) + len(head["params"]) == len(list(net.parameters()))


def test_a_checkpoint_with_fewer_labels_than_the_task_is_refused_before_any_image_is_read(tmp_path: Path) -> None:
    from model.builder.architectures import build_model
    from model.builder.checkpoint import save_checkpoint
    from model.serving.metadata import ModelMetadata

    net = build_model("mobilenet_v3_small", "binary", "none", "xray-gray-224-v1")
    meta = ModelMetadata("m", "v", "mobilenet_v3_small", "binary", ["covid", "no_findings"], 224, "xray-gray-224-v1")
    start = save_checkpoint(net, meta, tmp_path / "binary.safetensors")
    args = _args(tmp_path / "no-such-data", tmp_path, "--init-checkpoint", str(start))
    with pytest.raises(SystemExit, match="is a binary model"):
        main(get_args_parser().parse_args(args))


def test_a_three_class_checkpoint_starts_a_binary_model_with_its_covid_and_no_findings_rows(
    trained: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    from model.builder.checkpoint import load_checkpoint
    from training.train import initial_network

    start = trained[0] / "model" / "model.safetensors"
    three, meta = load_checkpoint(start)
    two = initial_network(start, "binary")
    rows = [meta.labels.index("covid"), meta.labels.index("no_findings")]
    assert torch.equal(two.classifier.weight, three.classifier.weight[rows])
    assert torch.equal(two.backbone.state_dict()["body.0.0.weight"], three.backbone.state_dict()["body.0.0.weight"])


def test_an_arch_other_than_the_checkpoints_is_refused(
    trained: tuple[Path, dict],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    start = trained[0] / "model" / "model.safetensors"
    args = _args(tmp_path / "no-such-data", tmp_path, "--init-checkpoint", str(start))
    args[args.index("mobilenet_v3_small")] = "resnet18"
    with pytest.raises(SystemExit, match="leave out --arch resnet18"):
        main(get_args_parser().parse_args(args))


def _whole_image_lungs(path: Path) -> Path:
    """A lung-field network that finds the whole image upright, with a rule that accepts it."""
    from model.builder.lung_network import LungNet, save_lung_checkpoint
    from model.core.lung_fields import LungRule, policy

    net = LungNet().eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(6.0)
        net.turn.weight.zero_()
        net.turn.bias.copy_(torch.tensor([6.0, -6.0, -6.0, -6.0]))
    return save_lung_checkpoint(net, policy(LungRule(), {"name": "whole-image"}), path)


def test_a_lung_centred_model_is_trained_and_packaged_with_its_lung_network(
    synthetic_data: Path, tmp_path: Path
) -> None:
    lungs = _whole_image_lungs(tmp_path / "lungs.safetensors")
    args = _args(synthetic_data, tmp_path, "--preset", "xray-gray-224-v3", "--lungs", str(lungs), "--epochs", "1")
    summary = main(get_args_parser().parse_args(args))
    assert summary["metadata"]["lung_fields"]["name"] == "whole-image"
    members = read_members((tmp_path / "output" / "model.tar.gz").read_bytes())
    assert {"lungs.onnx", "lungs.pt", "model.onnx"} <= set(members)
