"""``model.builder.deploy --dry-run`` on the bundled package: the requests it would make, against Neo's
documented constraints (docs.aws.amazon.com/sagemaker/latest/dg/neo-supported-cloud.html)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model.builder.deploy import NEO_PYTORCH_VERSIONS, get_args_parser, main
from model.builder.package import build_tarball
from model.serving.metadata import ModelMetadata

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dry_run(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tarball = build_tarball(bundled_model, tmp_path_factory.mktemp("neo") / "model.tar.gz")
    args = get_args_parser().parse_args(
        [
            "--model",
            str(tarball),
            "--bucket",
            "b",
            "--role-arn",
            "arn:aws:iam::123456789012:role/neo",
            "--region",
            "eu-west-1",
            "--job-name",
            "xray-neo-t",
            "--dry-run",
        ]
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args)
    return json.loads(out.getvalue())


def _one(dry_run: dict[str, Any], operation: str) -> dict[str, Any]:
    [request] = [r["params"] for r in dry_run["requests"] if r["operation"] == operation]
    return request


def test_the_bundled_package_is_exported_again_by_the_torch_neo_compiles(dry_run: dict[str, Any]) -> None:
    job = _one(dry_run, "CreateTrainingJob")
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/pytorch-training:2.0.1-cpu-py310")
    [source] = [r["params"] for r in dry_run["requests"] if r["params"].get("Key", "").endswith("sourcedir.tar.gz")]
    assert "model/builder/neo_export.py" in source["Members"]


def test_the_compilation_request_is_one_neo_takes(dry_run: dict[str, Any], bundled_model: Path) -> None:
    compile_job = _one(dry_run, "CreateCompilationJob")
    config = compile_job["InputConfig"]
    assert config["Framework"] == "PYTORCH"
    assert config["FrameworkVersion"] in NEO_PYTORCH_VERSIONS
    meta = ModelMetadata.read(bundled_model)
    assert json.loads(config["DataInputConfig"]) == {meta.input_name: meta.input_shape}
    assert compile_job["OutputConfig"]["TargetDevice"] == "ml_g4dn"
    # Neo's input is the export job's model.tar.gz, which holds model.pt alone (test_neo_export).
    job = _one(dry_run, "CreateTrainingJob")
    assert config["S3Uri"].startswith(job["OutputDataConfig"]["S3OutputPath"])
    assert config["S3Uri"].endswith("/output/model.tar.gz")


def test_the_repacked_package_carries_the_served_code_and_the_lung_network(dry_run: dict[str, Any]) -> None:
    [package] = [
        r["params"] for r in dry_run["requests"] if r["params"].get("Key", "").endswith("model-neo-ml_g4dn.tar.gz")
    ]
    assert {"code/inference.py", "metadata.json", "lungs.pt"} <= set(package["Members"])


def test_the_inference_image_is_neos_pytorch_2_0_gpu_image(dry_run: dict[str, Any]) -> None:
    assert dry_run["InferenceImage"].endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/sagemaker-inference-pytorch:2.0-gpu-py3"
    )
