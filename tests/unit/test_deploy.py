"""The Neo deployment command, offline: moto for S3, botocore Stubber for the exact SageMaker calls."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from model.deploy import compile_and_repack
from model.errors import CompilationFailedError, NeoUnsupportedError
from model.package import build_tarball, pack, read_members

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
    base = {
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
    }
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


def test_failed_compilation_raises_with_the_reason(aws, tiny_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz")
    sagemaker = boto3.client("sagemaker")
    with _stub(sagemaker, "FAILED"), pytest.raises(CompilationFailedError, match="unsupported operator"):
        compile_and_repack(tarball, "models", "m", ROLE, "job1", s3=aws, sagemaker=sagemaker, sleep=lambda s: None)


@pytest.mark.parametrize(
    ("exported", "framework", "why"),
    [
        ("2.14.1", "2.0", "written by torch 2.14.1"),
        ("2.0.1", "2.1", "not 2.1"),
        (None, "2.0", "does not say which torch"),
    ],
    ids=["newer-torch", "unsupported-framework", "unknown-torch"],
)
def test_what_neo_cannot_compile_is_refused_before_anything_is_uploaded(  # type: ignore[no-untyped-def]
    aws, tiny_model_dir: Path, tmp_path: Path, exported: str | None, framework: str, why: str
) -> None:
    tarball = _package(tiny_model_dir, tmp_path / "model.tar.gz", exported)
    sagemaker = boto3.client("sagemaker")
    with Stubber(sagemaker), pytest.raises(NeoUnsupportedError, match=why) as refused:  # no call is expected
        compile_and_repack(tarball, "models", "m", ROLE, "job1", framework, s3=aws, sagemaker=sagemaker)
    assert "PyTorch inference container" in str(refused.value)
    assert aws.list_objects_v2(Bucket="models").get("KeyCount") == 0


def test_the_package_records_the_torch_that_wrote_it(tiny_model_dir: Path) -> None:
    import torch

    meta = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert meta["exported_with"] == {"torch": torch.__version__.split("+")[0], "onnx_opset": 17}


def test_neo_compiles_the_classifier_alone_and_the_package_keeps_the_lung_network() -> None:
    from model.deploy import neo_input, repack
    from model.package import pack

    original = {"model.pt": b"c", "model.onnx": b"o", "lungs.pt": b"l", "lungs.onnx": b"lo", "metadata.json": b"{}"}
    assert set(read_members(neo_input(original))) == {"model.pt", "metadata.json"}
    repacked = read_members(repack(pack({"compiled.pt": b"neo"}), original))
    assert {"compiled.pt", "lungs.pt", "lungs.onnx", "metadata.json"} <= set(repacked)
