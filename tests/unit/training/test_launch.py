"""The SageMaker training launcher, offline: moto for S3, a botocore Stubber for the exact request."""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from training.launch import hyperparameters, launch, source_tarball


def test_flags_become_hyperparameters() -> None:
    params = hyperparameters(["--arch", "resnet50", "--hflip", "--epochs", "40"], "s3://b/src.tar.gz")
    assert params == {
        "sagemaker_program": "sagemaker_entry.py",
        "sagemaker_submit_directory": "s3://b/src.tar.gz",
        "arch": "resnet50",
        "hflip": "",
        "epochs": "40",
    }


def test_source_tarball_holds_the_packages_and_entry_point() -> None:
    with tarfile.open(fileobj=io.BytesIO(source_tarball())) as tar:
        names = set(tar.getnames())
    assert {"sagemaker_entry.py", "requirements.txt", "training/train.py", "model/builder/architectures.py"} <= names
    assert not any(n.endswith(".safetensors") for n in names)


def test_launch_creates_a_spot_job_with_checkpoints(aws_credentials: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ml-bucket")
        sagemaker = boto3.client("sagemaker")
        expected = {
            "TrainingJobName": "job1",
            "RoleArn": "arn:aws:iam::123456789012:role/train",
            "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
            "HyperParameters": {
                "sagemaker_program": "sagemaker_entry.py",
                "sagemaker_submit_directory": "s3://ml-bucket/training/job1/source/sourcedir.tar.gz",
                "arch": "resnet50",
                "pretrained": "imagenet",
            },
            "InputDataConfig": ANY,
            "OutputDataConfig": {"S3OutputPath": "s3://ml-bucket/training/job1/output"},
            "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {
                "S3Uri": "s3://ml-bucket/training/job1/checkpoints",
                "LocalPath": "/opt/ml/checkpoints",
            },
        }
        with Stubber(sagemaker) as stub:
            stub.add_response(
                "create_training_job",
                {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job1"},
                expected,
            )
            request = launch(
                "job1",
                "arn:aws:iam::123456789012:role/train",
                "ml-bucket",
                "s3://ml-bucket/data/",
                ["--arch", "resnet50", "--pretrained", "imagenet"],
                "img:1",
                max_run_s=3600,
                s3=s3,
                sagemaker=sagemaker,
            )
            stub.assert_no_pending_responses()
        assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://ml-bucket/data/"
        assert s3.head_object(Bucket="ml-bucket", Key="training/job1/source/sourcedir.tar.gz")["ContentLength"] > 1000


@pytest.mark.parametrize("spot", [False])
def test_on_demand_has_no_wait_time(aws_credentials: None, spot: bool) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ml-bucket")
        sagemaker = boto3.client("sagemaker")
        with Stubber(sagemaker) as stub:
            stub.add_response(
                "create_training_job",
                {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job2"},
                None,
            )
            request = launch(
                "job2",
                "arn:aws:iam::123456789012:role/train",
                "ml-bucket",
                "s3://d/",
                [],
                "img",
                spot=spot,
                s3=s3,
                sagemaker=sagemaker,
            )
        assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
        assert request["EnableManagedSpotTraining"] is False


def test_the_adapt_entry_runs_training_adapt() -> None:
    with tarfile.open(fileobj=io.BytesIO(source_tarball("adapt"))) as tar:
        entry = tar.extractfile("sagemaker_entry.py")
        assert entry is not None
        assert b"from training.adapt import" in entry.read()


def test_adapt_without_a_starting_checkpoint_is_refused_before_anything_is_uploaded() -> None:
    with pytest.raises(SystemExit, match="needs --start"):
        launch("job2", "arn:role", "b", "s3://b/site/", [], "img:1", s3=object(), sagemaker=object(), entry="adapt")


def test_adapt_launches_with_the_site_and_the_starting_checkpoint_as_channels(aws_credentials: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ml-bucket")
        sagemaker = boto3.client("sagemaker")
        with Stubber(sagemaker) as stub:
            stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/a"})
            request = launch(
                "adapt1",
                "arn:aws:iam::123456789012:role/train",
                "ml-bucket",
                "s3://ml-bucket/sites/st-example/",
                ["--task", "binary", "--site-name", "St Example"],
                "img:1",
                s3=s3,
                sagemaker=sagemaker,
                entry="adapt",
                start_uri="s3://ml-bucket/models/model.safetensors",
            )
            stub.assert_no_pending_responses()
        channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
        assert channels == {
            "training": "s3://ml-bucket/sites/st-example/",
            "start": "s3://ml-bucket/models/model.safetensors",
        }
        assert request["HyperParameters"]["site-name"] == "St Example"
        assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
