"""The Neo deployment command, offline: moto for S3, botocore Stubber for the exact SageMaker calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from model.builder.deploy import Checkpoints, compile_and_repack
from model.builder.package import build_tarball, pack, read_members
from model.core.errors import CompilationFailedError, ExportJobFailedError, NeoUnsupportedError

ROLE = "arn:aws:iam::123456789012:role/neo"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-inference-pytorch:2.0-gpu-py3"


@pytest.fixture
def aws(aws_credentials: None):  # type: ignore[no-untyped-def]
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        yield s3


def _package(model_dir: Path, out: Path, torch_version: str | None = "2.0.1") -> Path:
    """``model.tar.gz`` of ``model_dir`` as if its artifacts had been written by ``torch_version``."""
    members = read_members(build_tarball(model_dir, out).read_bytes())
    meta = json.loads(members["metadata.json"])
    meta["exported_with"] = {} if torch_version is None else {"torch": torch_version, "onnx_opset": 17}
    members["metadata.json"] = json.dumps(meta).encode()
    out.write_bytes(pack(members))
    return out


def _compilation_job(**fields: Any) -> dict[str, Any]:
    """A DescribeCompilationJob answer with the fields botocore requires, and ``fields``."""
    return {
        "CompilationJobName": "job1",
        "CompilationJobArn": "arn:aws:sagemaker:us-east-1:123456789012:compilation-job/job1",
        "StoppingCondition": {},
        "CreationTime": "2026-01-01",
        "LastModifiedTime": "2026-01-01",
        "RoleArn": ROLE,
        "InputConfig": {"S3Uri": "s3://x", "Framework": "PYTORCH"},
        "OutputConfig": {"S3OutputLocation": "s3://x", "TargetDevice": "ml_g4dn"},
        "ModelArtifacts": {"S3ModelArtifacts": "s3://models/m/job1/compiled/model-ml_g4dn.tar.gz"},
        "FailureReason": "",
        **fields,
    }


def _stub(sagemaker, final_status: str = "COMPLETED"):  # type: ignore[no-untyped-def]
    stubber = Stubber(sagemaker)
    stubber.add_response(
        "create_compilation_job",
        {"CompilationJobArn": "arn:aws:sagemaker:us-east-1:123456789012:compilation-job/job1"},
        {
            "CompilationJobName": "job1",
            "RoleArn": ROLE,
            "InputConfig": {
                "S3Uri": "s3://models/m/job1/input/model.tar.gz",
                "DataInputConfig": '{"input0": [1, 1, 224, 224]}',
                "Framework": "PYTORCH",
                "FrameworkVersion": "2.0",
            },
            "OutputConfig": {"S3OutputLocation": "s3://models/m/job1/compiled/", "TargetDevice": "ml_g4dn"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    )
    base = _compilation_job()
    stubber.add_response(
        "describe_compilation_job",
        {**base, "CompilationJobStatus": "INPROGRESS"},
        {"CompilationJobName": "job1"},
    )
    final = {**base, "CompilationJobStatus": final_status, "InferenceImage": IMAGE}
    if final_status == "FAILED":
        final["FailureReason"] = "unsupported operator"
    stubber.add_response("describe_compilation_job", final, {"CompilationJobName": "job1"})
    return stubber


def test_compiles_waits_and_repacks_code(aws, tiny_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz")
    aws.put_object(
        Bucket="models",
        Key="m/job1/compiled/model-ml_g4dn.tar.gz",
        Body=pack({"compiled.pt": b"neo"}),
    )
    sagemaker = boto3.client("sagemaker")
    sleeps: list[float] = []
    with _stub(sagemaker) as stubber:
        result = compile_and_repack(
            tarball, "models", "m", ROLE, "job1", s3=aws, sagemaker=sagemaker, sleep=sleeps.append
        )
        stubber.assert_no_pending_responses()
    assert result.inference_image == IMAGE
    assert result.model_data_url == "s3://models/m/job1/model-neo-ml_g4dn.tar.gz"
    assert sleeps == [30.0]
    neo_in = read_members(aws.get_object(Bucket="models", Key="m/job1/input/model.tar.gz")["Body"].read())
    assert "model.pt" in neo_in
    assert "model.onnx" not in neo_in
    repacked = read_members(aws.get_object(Bucket="models", Key="m/job1/model-neo-ml_g4dn.tar.gz")["Body"].read())
    assert {"compiled.pt", "code/inference.py", "code/requirements.txt", "metadata.json"} <= set(repacked)
    assert json.loads(repacked["metadata.json"])["input_shape"] == [1, 1, 224, 224]


@pytest.mark.parametrize(("status", "why"), [("FAILED", "unsupported operator"), ("STOPPED", "STOPPED")])
def test_a_compilation_that_does_not_complete_raises_with_the_reason(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, status: str, why: str
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz")
    sagemaker = boto3.client("sagemaker")
    with _stub(sagemaker, status), pytest.raises(CompilationFailedError, match=why):
        compile_and_repack(tarball, "models", "m", ROLE, "job1", s3=aws, sagemaker=sagemaker, sleep=lambda s: None)


@pytest.mark.parametrize(
    ("exported", "framework", "why"),
    [
        ("2.14.1", "2.0", "pass --checkpoint"),
        ("2.0.1", "2.1", "not 2.1"),
        (None, "2.0", "pass --checkpoint"),
    ],
    ids=["newer-torch-without-weights", "unsupported-framework", "unknown-torch-without-weights"],
)
def test_what_neo_cannot_compile_is_refused_before_anything_is_uploaded(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, exported: str | None, framework: str, why: str
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz", exported)
    sagemaker = boto3.client("sagemaker")
    with Stubber(sagemaker), pytest.raises(NeoUnsupportedError, match=why):  # no call is expected
        compile_and_repack(tarball, "models", "m", ROLE, "job1", framework, s3=aws, sagemaker=sagemaker)
    assert aws.list_objects_v2(Bucket="models").get("KeyCount") == 0


def test_the_package_records_the_torch_that_wrote_it(tiny_model_dir: Path) -> None:
    import torch

    meta = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert meta["exported_with"] == {"torch": torch.__version__.split("+")[0], "onnx_opset": 17}


def test_neo_compiles_the_classifier_alone_and_the_package_keeps_the_lung_network() -> None:
    from model.builder.deploy import neo_input, repack
    from model.builder.package import pack

    original = {"model.pt": b"c", "model.onnx": b"o", "lungs.pt": b"l", "lungs.onnx": b"lo", "metadata.json": b"{}"}
    assert set(read_members(neo_input(original))) == {"model.pt", "metadata.json"}
    repacked = read_members(repack(pack({"compiled.pt": b"neo"}), original))
    assert {"compiled.pt", "lungs.pt", "lungs.onnx", "metadata.json"} <= set(repacked)


# --- the export job: a package written by a torch Neo does not compile -------------------------------

EXPORT_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.0.1-cpu-py310"
EXPORT_BASE = "m/job1/export"
NEO_INPUT = f"s3://models/{EXPORT_BASE}/job/job1-export/output/model.tar.gz"


@pytest.fixture
def checkpoints(tmp_path: Path) -> Checkpoints:
    """Stand-ins with the tiny package's name and version (the export itself runs in AWS)."""
    from safetensors.numpy import save_file

    meta = json.dumps({"name": "tiny-test", "version": "test-multiclass"})
    model, lungs = tmp_path / "model.safetensors", tmp_path / "lungs.safetensors"
    save_file({"w": np.zeros(1, np.float32)}, str(model), metadata={"xray_metadata": meta})
    save_file({"w": np.zeros(1, np.float32)}, str(lungs), metadata={"xray_metadata": "{}"})
    return Checkpoints(model, lungs)


def _training_job(status: str, reason: str = "") -> dict:  # type: ignore[type-arg]
    job = {
        "TrainingJobName": "job1-export",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job1-export",
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Starting",
        "AlgorithmSpecification": {"TrainingImage": EXPORT_IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "CreationTime": "2026-01-01",
        "ModelArtifacts": {"S3ModelArtifacts": NEO_INPUT},
    }
    if reason:
        job["FailureReason"] = reason
    return job


def _stub_export(stubber: Stubber, final: str, reason: str = "") -> None:
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:::training-job/job1-export"})
    stubber.add_response("describe_training_job", _training_job("InProgress"), {"TrainingJobName": "job1-export"})
    stubber.add_response("describe_training_job", _training_job(final, reason), {"TrainingJobName": "job1-export"})


def _stub_compilation(stubber: Stubber) -> None:
    base = _compilation_job(
        InputConfig={"S3Uri": NEO_INPUT, "Framework": "PYTORCH"},
        OutputConfig={"S3OutputLocation": "s3://models/m/job1/compiled/", "TargetDevice": "ml_g4dn"},
        CompilationJobStatus="COMPLETED",
        InferenceImage=IMAGE,
    )
    stubber.add_response(
        "create_compilation_job",
        {"CompilationJobArn": base["CompilationJobArn"]},
        {
            "CompilationJobName": "job1",
            "RoleArn": ROLE,
            "InputConfig": {
                "S3Uri": NEO_INPUT,  # the export job's model.tar.gz, as it is
                "DataInputConfig": '{"input0": [1, 1, 224, 224]}',
                "Framework": "PYTORCH",
                "FrameworkVersion": "2.0",
            },
            "OutputConfig": {"S3OutputLocation": "s3://models/m/job1/compiled/", "TargetDevice": "ml_g4dn"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    )
    stubber.add_response("describe_compilation_job", base, {"CompilationJobName": "job1"})


def _export_and_compile(tarball: Path, aws, sagemaker, checkpoints: Checkpoints):  # type: ignore[no-untyped-def]
    return compile_and_repack(
        tarball, "models", "m", ROLE, "job1", s3=aws, sagemaker=sagemaker, sleep=lambda s: None, checkpoints=checkpoints
    )


def test_a_newer_torch_is_exported_again_in_aws_then_compiled_and_repacked(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, checkpoints: Checkpoints
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz", "2.14.1")
    # What the export job leaves: its output.tar.gz beside model.tar.gz, and the compiled model.
    aws.put_object(
        Bucket="models",
        Key=f"{EXPORT_BASE}/job/job1-export/output/output.tar.gz",
        Body=pack({"lungs.pt": b"lungs by torch 2.0", "exported_with.json": b'{"torch": "2.0.1"}'}),
    )
    aws.put_object(Bucket="models", Key="m/job1/compiled/model-ml_g4dn.tar.gz", Body=pack({"compiled.pt": b"neo"}))
    sagemaker = boto3.client("sagemaker")
    with Stubber(sagemaker) as stubber:
        _stub_export(stubber, "Completed")
        _stub_compilation(stubber)
        result = _export_and_compile(tarball, aws, sagemaker, checkpoints)
        stubber.assert_no_pending_responses()
    assert result.export_job == "job1-export"
    source = read_members(aws.get_object(Bucket="models", Key=f"{EXPORT_BASE}/source/sourcedir.tar.gz")["Body"].read())
    assert {"sagemaker_entry.py", "requirements.txt", "model/builder/neo_export.py", "model/builder/export.py"} <= set(
        source
    )
    uploaded = aws.list_objects_v2(Bucket="models", Prefix=f"{EXPORT_BASE}/checkpoint/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[1] for o in uploaded} == {"model.safetensors", "lungs.safetensors"}
    repacked = read_members(aws.get_object(Bucket="models", Key="m/job1/model-neo-ml_g4dn.tar.gz")["Body"].read())
    assert repacked["lungs.pt"] == b"lungs by torch 2.0"  # loads in the Neo image's torch
    assert json.loads(repacked["metadata.json"])["exported_with"] == {
        "torch": "2.0.1",
        "by": "model.builder.neo_export",
    }
    assert "code/inference.py" in repacked


@pytest.mark.parametrize(
    ("status", "reason"), [("Failed", "AlgorithmError: no module named safetensors"), ("Stopped", "")]
)
def test_an_export_job_that_does_not_complete_stops_before_neo(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, checkpoints: Checkpoints, status: str, reason: str
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz", "2.14.1")
    sagemaker = boto3.client("sagemaker")
    stubber = Stubber(sagemaker)
    _stub_export(stubber, status, reason)
    with stubber, pytest.raises(ExportJobFailedError, match=status):
        _export_and_compile(tarball, aws, sagemaker, checkpoints)
    stubber.assert_no_pending_responses()  # and no compilation job was asked for


def test_a_checkpoint_that_is_not_the_packages_is_refused(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, checkpoints: Checkpoints
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz", "2.14.1")
    members = read_members(tarball.read_bytes())
    meta = json.loads(members["metadata.json"])
    members["metadata.json"] = json.dumps({**meta, "version": "another"}).encode()
    tarball.write_bytes(pack(members))
    with Stubber(boto3.client("sagemaker")) as stubber, pytest.raises(NeoUnsupportedError, match="was built from"):
        compile_and_repack(
            tarball, "models", "m", ROLE, "job1", s3=aws, sagemaker=stubber.client, checkpoints=checkpoints
        )
    assert aws.list_objects_v2(Bucket="models").get("KeyCount") == 0
