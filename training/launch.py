"""Start ``training/train.py`` (or ``training/adapt.py``) as a SageMaker training job (PyTorch
framework container, spot capacity).

    python -m training.launch --role-arn arn:aws:iam::ACCOUNT:role/SageMakerTraining --bucket MY-BUCKET \\
        --data s3://MY-BUCKET/datasets/ozturk-3class/ -- --arch resnet50 --pretrained imagenet --epochs 40

    # a site's thousands of images: training.adapt, starting from a checkpoint on S3
    python -m training.launch --entry adapt --start s3://MY-BUCKET/models/model.safetensors ... \\
        --data s3://MY-BUCKET/sites/st-example/ -- --task binary --site-name "St Example"

Packs ``model/`` and ``training/`` with a two-line entry script into ``sourcedir.tar.gz`` on S3, then
calls CreateTrainingJob: the framework container downloads it, installs ``requirements.txt`` and runs
``python sagemaker_entry.py --arch ... `` with the hyperparameters as flags; the data arrives in
SM_CHANNEL_TRAINING, checkpoints sync to ``--checkpoint-s3`` (spot interruptions resume from there)
and SM_MODEL_DIR becomes ``model.tar.gz`` in the serving layout. With ``--entry adapt`` the starting
checkpoint arrives in SM_CHANNEL_START, the adaptation's fold runs live under the synced checkpoint
folder (a spot interruption resumes them), the report lands in ``output.tar.gz`` and the adapted,
stamped model in ``model.tar.gz``, ready for ``sam deploy`` (``ModelDataUrl``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Final

import boto3

from model.builder.package import pack

ROOT: Final = Path(__file__).resolve().parent.parent
ENTRIES: Final = {
    name: f"from training.{name} import get_args_parser, main\n\nmain(get_args_parser().parse_args())\n"
    for name in ("train", "adapt")
}
ENTRY: Final = ENTRIES["train"]
REQUIREMENTS: Final = "safetensors>=0.4\nonnx>=1.16\nscikit-learn>=1.4\nimagehash>=4.3\ntqdm>=4.66\nmatplotlib>=3.8\n"
# The PyTorch training image of the SageMaker Python SDK's image_uris for py3.11 GPU; pass --image to change.
DEFAULT_IMAGE: Final = "763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.5.1-gpu-py311"


def source_tarball(entry: str = "train") -> bytes:
    """model/ and training/ (sources only) plus the entry script and requirements, deterministic."""
    files = {"sagemaker_entry.py": ENTRIES[entry].encode(), "requirements.txt": REQUIREMENTS.encode()}
    for package in ("model", "training"):
        for path in sorted((ROOT / package).rglob("*.py")):
            files[str(path.relative_to(ROOT))] = path.read_bytes()
    return pack(files)


def hyperparameters(train_args: list[str], source_uri: str) -> dict[str, str]:
    """``--flag value`` pairs (and bare ``--flag`` switches) as SageMaker hyperparameters."""
    params: dict[str, str] = {"sagemaker_program": "sagemaker_entry.py", "sagemaker_submit_directory": source_uri}
    i = 0
    while i < len(train_args):
        flag = train_args[i].removeprefix("--")
        if i + 1 < len(train_args) and not train_args[i + 1].startswith("--"):
            params[flag] = train_args[i + 1]
            i += 2
        else:
            params[flag] = ""  # a switch such as --hflip
            i += 1
    return params


def launch(
    job_name: str,
    role_arn: str,
    bucket: str,
    data_uri: str,
    train_args: list[str],
    image: str,
    instance_type: str = "ml.g4dn.xlarge",
    spot: bool = True,
    max_run_s: int = 4 * 3600,
    s3: Any = None,
    sagemaker: Any = None,
    entry: str = "train",
    start_uri: str | None = None,
) -> dict[str, Any]:
    """``entry`` ``adapt`` needs ``start_uri``, the s3:// URI of the checkpoint to start from."""
    if entry == "adapt" and not start_uri:
        raise SystemExit("--entry adapt needs --start s3://.../model.safetensors, the model to adapt")
    s3 = s3 or boto3.client("s3")
    sagemaker = sagemaker or boto3.client("sagemaker")
    source_key = f"training/{job_name}/source/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=source_key, Body=source_tarball(entry))
    channels = [("training", data_uri)] + ([("start", start_uri)] if start_uri else [])
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters(train_args, f"s3://{bucket}/{source_key}"),
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, uri in channels
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training/{job_name}/output"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {
            "MaxRuntimeInSeconds": max_run_s,
            **({"MaxWaitTimeInSeconds": 2 * max_run_s} if spot else {}),
        },
        "EnableManagedSpotTraining": spot,
        "CheckpointConfig": {
            "S3Uri": f"s3://{bucket}/training/{job_name}/checkpoints",
            "LocalPath": "/opt/ml/checkpoints",
        },
    }
    sagemaker.create_training_job(**request)
    return request


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role-arn", required=True, help="execution role SageMaker assumes")
    parser.add_argument("--bucket", required=True, help="bucket for the source, checkpoints and outputs")
    parser.add_argument("--data", required=True, help="s3:// prefix of the dataset (any layout training.data reads)")
    parser.add_argument("--job-name", default=None, help="(default: xray-ENTRY-TIMESTAMP)")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge", help="(default: %(default)s)")
    parser.add_argument("--region", default=None, help="(default: the AWS configuration's)")
    parser.add_argument("--image", default=None, help=f"training image (default: {DEFAULT_IMAGE})")
    parser.add_argument("--no-spot", action="store_true", help="on-demand instead of managed spot training")
    parser.add_argument("--max-run-hours", type=float, default=4.0, help="(default: %(default)s)")
    parser.add_argument("--entry", default="train", choices=sorted(ENTRIES), help="(default: %(default)s)")
    parser.add_argument("--start", default=None, help="with --entry adapt: s3:// URI of the checkpoint to adapt")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = get_args_parser()
    args, train_args = parser.parse_known_args(argv)
    train_args = [a for a in train_args if a != "--"]
    region = args.region or boto3.session.Session().region_name or "us-east-1"
    job_name = args.job_name or f"xray-{args.entry}-{time.strftime('%Y%m%d-%H%M%S')}"
    image = args.image or DEFAULT_IMAGE.format(region=region)
    request = launch(
        job_name,
        args.role_arn,
        args.bucket,
        args.data,
        train_args,
        image,
        args.instance_type,
        not args.no_spot,
        int(args.max_run_hours * 3600),
        entry=args.entry,
        start_uri=args.start,
    )
    print(json.dumps({"TrainingJobName": job_name, "HyperParameters": request["HyperParameters"]}, indent=2))


if __name__ == "__main__":
    main()
