"""Compile the model with SageMaker Neo for a GPU endpoint and print the template's parameters.

    python -m model.deploy --model build/model/model.tar.gz --bucket MY-BUCKET --role-arn arn:aws:iam::...:role/Neo

1. uploads a TorchScript-only copy of ``model.tar.gz`` (Neo takes one traced model) to S3;
2. runs a Neo compilation job (framework PYTORCH, ``--framework-version``, target ``ml_g4dn``, input
   shape ``{"input0": [1, 1, S, S]}`` from the model's metadata.json) and waits for it;
3. repacks ``code/`` and ``metadata.json`` into the compiled artifact (SDK v3 no longer does this) and
   uploads it;
4. prints ``ModelDataUrl`` and ``InferenceImage``: the ``sam deploy`` parameters.

Neo compiles PyTorch only for the framework versions in ``NEO_PYTORCH_VERSIONS`` (its "supported
instance types and frameworks" page, cloud instances), and only TorchScript written by one of them
(the "model version"). Before anything is uploaded the command checks both against the package's
``metadata.json`` (``exported_with.torch``) and refuses with ``NeoUnsupportedError`` otherwise.
The fallback needs no compilation: deploy ``model.tar.gz`` itself (TorchScript and ONNX, with its
``code/`` handlers) on the SageMaker PyTorch inference container, README "Deploying to AWS".
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3

from model.contract import INT8_ONNX_FILE, LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE, METADATA_FILE, ONNX_FILE
from model.errors import CompilationFailedError, NeoUnsupportedError
from model.package import pack, read_members

logger = logging.getLogger(__name__)

NEO_SKIP: Final = frozenset({ONNX_FILE, INT8_ONNX_FILE, LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE})
# What the compiled package takes back from the original: the lung-field network is not compiled
# (Neo takes one traced model), and runs beside the compiled classifier as TorchScript.
KEPT: Final = frozenset({METADATA_FILE, LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE})
TERMINAL: Final = frozenset({"COMPLETED", "FAILED", "STOPPED"})
# https://docs.aws.amazon.com/sagemaker/latest/dg/neo-supported-cloud.html (checked 2026-11-27)
NEO_PYTORCH_VERSIONS: Final = ("1.4", "1.5", "1.6", "1.7", "1.8", "1.12", "1.13", "2.0")


@dataclass(frozen=True)
class DeployResult:
    model_data_url: str
    inference_image: str
    compilation_job: str


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _major_minor(version: str) -> str:
    return ".".join(version.split("+", maxsplit=1)[0].split(".")[:2])


def check_neo_compatible(meta: dict[str, Any], framework_version: str) -> None:
    """Raise ``NeoUnsupportedError`` unless Neo compiles this package's TorchScript for ``framework_version``."""
    fallback = (
        "deploy model.tar.gz itself on the SageMaker PyTorch inference container instead (no compilation; "
        "README, 'Deploying to AWS')"
    )
    if _major_minor(framework_version) not in NEO_PYTORCH_VERSIONS:
        raise NeoUnsupportedError(
            f"Neo compiles PyTorch {', '.join(NEO_PYTORCH_VERSIONS)} for cloud targets, not {framework_version}; "
            + fallback
        )
    exported = meta.get("exported_with", {}).get("torch")
    if exported is None:
        raise NeoUnsupportedError(f"the package does not say which torch wrote its TorchScript; {fallback}")
    if _major_minor(exported) != _major_minor(framework_version):
        raise NeoUnsupportedError(
            f"the TorchScript was written by torch {exported}; Neo's PyTorch {framework_version} compiles only "
            f"models written by torch {framework_version} (re-export with it, e.g. python -m model.build in an "
            f"environment with torch=={framework_version}.*), or {fallback}"
        )


def neo_input(members: dict[str, bytes]) -> bytes:
    return pack({k: v for k, v in members.items() if k not in NEO_SKIP and not k.startswith("code/")})


def repack(compiled: bytes, original: dict[str, bytes]) -> bytes:
    """The compiled artifact plus ``code/``, ``metadata.json`` and the lung-field network from the
    original package."""
    members = read_members(compiled)
    members.update({k: v for k, v in original.items() if k.startswith("code/") or k in KEPT})
    return pack(members)


def compile_and_repack(
    model: Path,
    bucket: str,
    prefix: str,
    role_arn: str,
    job_name: str,
    framework_version: str = "2.0",
    target: str = "ml_g4dn",
    poll_seconds: float = 30.0,
    timeout_seconds: int = 3600,
    s3: Any = None,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    s3 = s3 or boto3.client("s3")
    sagemaker = sagemaker or boto3.client("sagemaker")
    original = read_members(model.read_bytes())
    meta = json.loads(original[METADATA_FILE])
    check_neo_compatible(meta, framework_version)
    input_key = f"{prefix}/{job_name}/input/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=input_key, Body=neo_input(original))
    sagemaker.create_compilation_job(
        CompilationJobName=job_name,
        RoleArn=role_arn,
        InputConfig={
            "S3Uri": f"s3://{bucket}/{input_key}",
            "DataInputConfig": json.dumps({meta["input_name"]: meta["input_shape"]}),
            "Framework": "PYTORCH",
            "FrameworkVersion": framework_version,
        },
        OutputConfig={
            "S3OutputLocation": f"s3://{bucket}/{prefix}/{job_name}/compiled/",
            "TargetDevice": target,
        },
        StoppingCondition={"MaxRuntimeInSeconds": timeout_seconds},
    )
    deadline = time.monotonic() + timeout_seconds
    while True:
        job = sagemaker.describe_compilation_job(CompilationJobName=job_name)
        status = job["CompilationJobStatus"]
        logger.info("compilation job %s: %s", job_name, status)
        if status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise CompilationFailedError(f"{job_name} still {status} after {timeout_seconds}s")
        sleep(poll_seconds)
    if status != "COMPLETED":
        raise CompilationFailedError(f"{job_name} {status}: {job.get('FailureReason', 'no reason given')}")
    compiled_bucket, compiled_key = _split_s3(job["ModelArtifacts"]["S3ModelArtifacts"])
    compiled = s3.get_object(Bucket=compiled_bucket, Key=compiled_key)["Body"].read()
    output_key = f"{prefix}/{job_name}/model-neo-{target}.tar.gz"
    s3.put_object(Bucket=bucket, Key=output_key, Body=repack(compiled, original))
    return DeployResult(f"s3://{bucket}/{output_key}", job["InferenceImage"], job_name)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument("--bucket", required=True, help="S3 bucket for the artifacts")
    parser.add_argument("--prefix", default="models", help="S3 key prefix (default: %(default)s)")
    parser.add_argument("--role-arn", required=True, help="IAM role SageMaker Neo assumes (S3 read/write)")
    parser.add_argument("--job-name", default=None, help="compilation job name (default: xray-neo-TIMESTAMP)")
    parser.add_argument(
        "--framework-version", default="2.0", help="PyTorch version Neo compiles for (default: %(default)s)"
    )
    parser.add_argument("--target", default="ml_g4dn", help="Neo target device (default: %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="(default: %(default)s)")
    return parser


def main(args: argparse.Namespace) -> None:
    job_name = args.job_name or f"xray-neo-{time.strftime('%Y%m%d-%H%M%S')}"
    result = compile_and_repack(
        args.model,
        args.bucket,
        args.prefix,
        args.role_arn,
        job_name,
        args.framework_version,
        args.target,
        args.poll_seconds,
    )
    print(f"ModelDataUrl={result.model_data_url}")  # noqa: T201
    print(f"InferenceImage={result.inference_image}")  # noqa: T201
    print(  # noqa: T201
        f"sam deploy --parameter-overrides ModelDataUrl={result.model_data_url} InferenceImage={result.inference_image}"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
