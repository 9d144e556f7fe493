"""Compile the model with SageMaker Neo for a GPU endpoint and print the template's parameters.

    python -m model.builder.deploy --model build/model/model.tar.gz --bucket BUCKET --role-arn ROLE_ARN
    python -m model.builder.deploy ... --dry-run        # every AWS request it would make, as JSON; calls nothing

Neo compiles PyTorch for cloud targets from TorchScript written by one of the framework versions it
lists (``NEO_PYTORCH_VERSIONS``, its "Supported Instance Types and Frameworks" page; 2.0 the newest),
and the compiled model runs in Neo's own inference image for that version. A package written by a
newer torch (``make model`` here: ``metadata.json`` ``exported_with.torch``) is therefore exported
again, inside AWS, by the torch Neo takes:

1. **export** (only where the package's TorchScript is not Neo's version): uploads the project's
   ``model/`` sources and the package's checkpoints (``--checkpoint``, ``--lungs``) and runs
   ``model.builder.neo_export`` as a SageMaker training job on the PyTorch 2.0 framework image
   (``DEFAULT_EXPORT_IMAGE``, CPU, minutes): the project's own export writes ``model.pt`` (the served
   graph: gate, maps, one pass per image with lung fields) into the job's ``model.tar.gz``, which is
   Neo's input as it is, and ``lungs.pt`` beside it;
2. **compile**: a Neo compilation job (framework PYTORCH ``--framework-version``, target
   ``ml_g4dn``, input shape ``{"input0": [1, 1, S, S]}`` from the package's ``metadata.json``);
3. **repack**: the compiled artifact with the package's ``code/``, ``metadata.json`` (its gate,
   calibration, operating point; ``exported_with`` set to the torch that wrote what Neo compiled) and
   the lung-field network (``lungs.pt`` from the export, which the image's torch can load; the
   lung network is not compiled: Neo takes one model);
4. prints ``ModelDataUrl`` and ``InferenceImage`` (DescribeCompilationJob's): the ``sam deploy``
   parameters.

Why this route rather than Neo's ONNX one: Neo compiles ONNX 1.7 for cloud targets, and its ONNX
inference image (``sagemaker-neo-onnx:1.5.0``) predates the Python the served code needs, while the
PyTorch 2.0 image runs Python 3.10, which ``code/`` supports (tests/unit/model/test_neo_export.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3

from model.builder.package import EXPORT_JOB_FLOORS, MODEL_DIR, floor_files, pack, read_members
from model.core.contract import (
    INT8_ONNX_FILE,
    LUNGS_ONNX_FILE,
    LUNGS_TORCHSCRIPT_FILE,
    METADATA_FILE,
    ONNX_FILE,
)
from model.core.errors import CompilationFailedError, ExportJobFailedError, NeoUnsupportedError
from model.serving.metadata import checkpoint_header

logger = logging.getLogger(__name__)

NEO_SKIP: Final = frozenset({ONNX_FILE, INT8_ONNX_FILE, LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE})
# What the compiled package takes back from the original: the lung-field network is not compiled
# (Neo takes one traced model), and runs beside the compiled classifier as TorchScript.
KEPT: Final = frozenset({METADATA_FILE, LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE})
TERMINAL: Final = frozenset({"COMPLETED", "FAILED", "STOPPED"})
TRAINING_TERMINAL: Final = frozenset({"Completed", "Failed", "Stopped"})
# https://docs.aws.amazon.com/sagemaker/latest/dg/neo-supported-cloud.html (checked 2026-12-03)
NEO_PYTORCH_VERSIONS: Final = ("1.4", "1.5", "1.6", "1.7", "1.8", "1.12", "1.13", "2.0")
NEO_FRAMEWORK_VERSION: Final = "2.0"
# The AWS Deep Learning Containers' PyTorch 2.0 training image (CPU, Python 3.10): the torch Neo compiles.
DEFAULT_EXPORT_IMAGE: Final = "763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.0.1-cpu-py310"
EXPORT_INSTANCE: Final = "ml.m5.large"
EXPORT_ENTRY: Final = (
    "from model.builder.neo_export import get_args_parser, main\n\nmain(get_args_parser().parse_known_args()[0])\n"
)
# The framework image holds torch; the export also reads safetensors checkpoints.
EXPORT_REQUIREMENTS: Final = "safetensors>=0.4\n"
EXPORT_OUTPUT: Final = "output.tar.gz"
CHECKPOINT_META_KEY: Final = "xray_metadata"
# Neo's page "Inference Container Images", PyTorch on CPU or GPU instance types: the image
# DescribeCompilationJob names (its InferenceImage), for the dry run, which cannot ask it.
NEO_IMAGE_TEMPLATE: Final = "ACCOUNT.dkr.ecr.{region}.amazonaws.com/sagemaker-inference-pytorch:{version}-gpu-py3"


@dataclass(frozen=True)
class DeployResult:
    model_data_url: str
    inference_image: str
    compilation_job: str
    export_job: str | None = None


@dataclass(frozen=True)
class Checkpoints:
    """The weights the export job rebuilds the package's graphs from."""

    model: Path
    lungs: Path | None = None


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _major_minor(version: str) -> str:
    return ".".join(version.split("+", maxsplit=1)[0].split(".")[:2])


def check_framework(framework_version: str) -> None:
    if _major_minor(framework_version) not in NEO_PYTORCH_VERSIONS:
        raise NeoUnsupportedError(
            f"Neo compiles PyTorch {', '.join(NEO_PYTORCH_VERSIONS)} for cloud targets, not {framework_version}; "
            "deploy model.tar.gz itself on the SageMaker PyTorch inference container instead (no compilation; "
            "docs/deploy.md)"
        )


def needs_export(meta: dict[str, Any], framework_version: str) -> bool:
    """Whether the package's TorchScript must be written again for Neo: it was not written by
    ``framework_version`` (or does not say by which torch)."""
    exported = meta.get("exported_with", {}).get("torch")
    return exported is None or _major_minor(exported) != _major_minor(framework_version)


def checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The model metadata a checkpoint carries, read without torch."""
    meta = checkpoint_header(path, CHECKPOINT_META_KEY)
    if meta is None:
        raise NeoUnsupportedError(f"{path.name} is not a model checkpoint of this project")
    return meta


def check_checkpoints(meta: dict[str, Any], checkpoints: Checkpoints | None) -> Checkpoints:
    """The checkpoints are the package's: same model name and version, and lungs where it has them."""
    if checkpoints is None:
        raise NeoUnsupportedError(
            "the package's TorchScript was not written by a torch Neo compiles, and the export job needs its "
            "weights: pass --checkpoint (the .safetensors it was built from) and --lungs"
        )
    own = checkpoint_metadata(checkpoints.model)
    if (own.get("name"), own.get("version")) != (meta.get("name"), meta.get("version")):
        raise NeoUnsupportedError(
            f"--checkpoint is {own.get('name')} {own.get('version')}, the package {meta.get('name')} "
            f"{meta.get('version')}: pass the checkpoint the package was built from"
        )
    if meta.get("lung_fields") and checkpoints.lungs is None:
        raise NeoUnsupportedError("the package has a lung-field network: pass --lungs (its .safetensors)")
    return checkpoints


def neo_input(members: dict[str, bytes]) -> bytes:
    return pack({k: v for k, v in members.items() if k not in NEO_SKIP and not k.startswith("code/")})


def export_modules() -> tuple[str, ...]:
    """The ``model/`` files the export job ships (it runs ``model.builder.neo_export``): every floor."""
    return floor_files(EXPORT_JOB_FLOORS)


def export_source() -> bytes:
    """The export job's ``sourcedir.tar.gz``: the ``model/`` modules it runs, the entry, requirements."""
    files = {f"model/{name}": (MODEL_DIR / name).read_bytes() for name in export_modules()}
    files["sagemaker_entry.py"] = EXPORT_ENTRY.encode()
    files["requirements.txt"] = EXPORT_REQUIREMENTS.encode()
    return pack(files)


def repack(compiled: bytes, original: dict[str, bytes], exported: dict[str, bytes] | None = None) -> bytes:
    """The compiled artifact plus ``code/``, ``metadata.json`` and the lung-field network from the
    original package; ``exported``: the export job's ``lungs.pt`` and ``exported_with.json``, which
    replace the original's."""
    from model.builder.neo_export import EXPORTED_WITH_FILE

    members = read_members(compiled)
    members.update({k: v for k, v in original.items() if k.startswith("code/") or k in KEPT})
    if exported:
        if LUNGS_TORCHSCRIPT_FILE in exported:
            members[LUNGS_TORCHSCRIPT_FILE] = exported[LUNGS_TORCHSCRIPT_FILE]
        meta = json.loads(members[METADATA_FILE])
        meta["exported_with"] = {**json.loads(exported[EXPORTED_WITH_FILE]), "by": "model.builder.neo_export"}
        members[METADATA_FILE] = json.dumps(meta, indent=2).encode()
    return pack(members)


@dataclass
class Waiter:
    poll_seconds: float = 30.0
    timeout_seconds: int = 3600
    sleep: Callable[[float], None] = field(default=time.sleep)

    def until(self, describe: Callable[[], dict[str, Any]], key: str, terminal: frozenset[str]) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            job = describe()
            logger.info("%s: %s", key, job[key])
            if job[key] in terminal or time.monotonic() > deadline:
                return job
            self.sleep(self.poll_seconds)


def export_job_request(
    job_name: str, role_arn: str, bucket: str, base: str, image: str, source_uri: str, checkpoint_uri: str
) -> dict[str, Any]:
    return {
        "TrainingJobName": job_name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": "sagemaker_entry.py", "sagemaker_submit_directory": source_uri},
        "InputDataConfig": [
            {
                "ChannelName": "checkpoint",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": checkpoint_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{base}/job"},
        "ResourceConfig": {"InstanceType": EXPORT_INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    }


def run_export(
    s3: Any,
    sagemaker: Any,
    waiter: Waiter,
    checkpoints: Checkpoints,
    job_name: str,
    role_arn: str,
    bucket: str,
    base: str,
    image: str,
) -> tuple[str, dict[str, bytes]]:
    """Run ``model.builder.neo_export`` in AWS as ``job_name``, its files under ``s3://bucket/base/``; return
    the S3 URI of its ``model.tar.gz`` (Neo's input) and the members of its ``output.tar.gz``."""
    source_key = f"{base}/source/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=source_key, Body=export_source())
    for path, name in ((checkpoints.model, "model.safetensors"), (checkpoints.lungs, "lungs.safetensors")):
        if path is not None:
            s3.put_object(Bucket=bucket, Key=f"{base}/checkpoint/{name}", Body=path.read_bytes())
    request = export_job_request(
        job_name, role_arn, bucket, base, image, f"s3://{bucket}/{source_key}", f"s3://{bucket}/{base}/checkpoint/"
    )
    sagemaker.create_training_job(**request)
    job = waiter.until(
        lambda: sagemaker.describe_training_job(TrainingJobName=job_name), "TrainingJobStatus", TRAINING_TERMINAL
    )
    if job["TrainingJobStatus"] != "Completed":
        raise ExportJobFailedError(
            f"export job {job_name} {job['TrainingJobStatus']}: {job.get('FailureReason', 'no reason given')}"
        )
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    out_bucket, out_key = _split_s3(model_uri.rsplit("/", 1)[0] + f"/{EXPORT_OUTPUT}")
    output = read_members(s3.get_object(Bucket=out_bucket, Key=out_key)["Body"].read())
    return model_uri, output


def compile_and_repack(
    model: Path,
    bucket: str,
    prefix: str,
    role_arn: str,
    job_name: str,
    framework_version: str = NEO_FRAMEWORK_VERSION,
    target: str = "ml_g4dn",
    poll_seconds: float = 30.0,
    timeout_seconds: int = 3600,
    s3: Any = None,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    checkpoints: Checkpoints | None = None,
    export_image: str | None = None,
) -> DeployResult:
    s3 = s3 or boto3.client("s3")
    sagemaker = sagemaker or boto3.client("sagemaker")
    waiter = Waiter(poll_seconds, timeout_seconds, sleep)
    original = read_members(model.read_bytes())
    meta = json.loads(original[METADATA_FILE])
    check_framework(framework_version)
    export_job, exported = None, None
    if needs_export(meta, framework_version):
        checkpoints = check_checkpoints(meta, checkpoints)
        if _major_minor(framework_version) != NEO_FRAMEWORK_VERSION:
            raise NeoUnsupportedError(f"the export job writes TorchScript with torch {NEO_FRAMEWORK_VERSION} only")
        export_job = f"{job_name}-export"
        image = export_image or DEFAULT_EXPORT_IMAGE.format(region=sagemaker.meta.region_name)
        base = f"{prefix}/{job_name}/export"
        input_uri, exported = run_export(s3, sagemaker, waiter, checkpoints, export_job, role_arn, bucket, base, image)
    else:
        input_key = f"{prefix}/{job_name}/input/model.tar.gz"
        s3.put_object(Bucket=bucket, Key=input_key, Body=neo_input(original))
        input_uri = f"s3://{bucket}/{input_key}"
    sagemaker.create_compilation_job(
        CompilationJobName=job_name,
        RoleArn=role_arn,
        InputConfig={
            "S3Uri": input_uri,
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
    job = waiter.until(
        lambda: sagemaker.describe_compilation_job(CompilationJobName=job_name), "CompilationJobStatus", TERMINAL
    )
    status = job["CompilationJobStatus"]
    if status not in TERMINAL:
        raise CompilationFailedError(f"{job_name} still {status} after {timeout_seconds}s")
    if status != "COMPLETED":
        raise CompilationFailedError(f"{job_name} {status}: {job.get('FailureReason', 'no reason given')}")
    compiled_bucket, compiled_key = _split_s3(job["ModelArtifacts"]["S3ModelArtifacts"])
    compiled = s3.get_object(Bucket=compiled_bucket, Key=compiled_key)["Body"].read()
    output_key = f"{prefix}/{job_name}/model-neo-{target}.tar.gz"
    s3.put_object(Bucket=bucket, Key=output_key, Body=repack(compiled, original, exported))
    return DeployResult(f"s3://{bucket}/{output_key}", job["InferenceImage"], job_name, export_job)


class _Meta:
    def __init__(self, region: str) -> None:
        self.region_name = region


class DryRun:
    """Stands in for the S3 and SageMaker clients: records each request, calls nothing, and answers as
    a successful run would, so ``compile_and_repack`` takes its real path. Bodies are shown by size and
    tar members; what AWS would have produced (the export, the compiled model) is a stand-in."""

    def __init__(self, region: str, framework_version: str = NEO_FRAMEWORK_VERSION) -> None:
        self.meta = _Meta(region)
        self.requests: list[dict[str, Any]] = []
        self._version = framework_version
        self._lungs = False  # the export job was given a lung-field network, so its output holds lungs.pt

    def _record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        self.requests.append({"service": service, "operation": operation, "params": params})

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        shown: dict[str, Any] = {"Bucket": Bucket, "Key": Key, "ContentLength": len(Body)}
        if Key.endswith(".tar.gz"):
            shown["Members"] = sorted(read_members(Body))
        self._lungs = self._lungs or Key.endswith("/lungs.safetensors")
        self._record("s3", "PutObject", shown)
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self._record("s3", "GetObject", {"Bucket": Bucket, "Key": Key})
        from model.builder.neo_export import EXPORTED_WITH_FILE

        if Key.endswith(EXPORT_OUTPUT):
            stand_in = {EXPORTED_WITH_FILE: json.dumps({"torch": f"{self._version}.1"}).encode()}
            if self._lungs:
                stand_in[LUNGS_TORCHSCRIPT_FILE] = b"(dry run)"
        else:
            stand_in = {"compiled.params": b"(dry run)"}
        return {"Body": _Body(pack(stand_in))}

    def create_training_job(self, **request: Any) -> dict[str, Any]:
        self._record("sagemaker", "CreateTrainingJob", request)
        self._training = request
        return {}

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        out = self._training["OutputDataConfig"]["S3OutputPath"]
        return {
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"{out}/{TrainingJobName}/output/model.tar.gz"},
        }

    def create_compilation_job(self, **request: Any) -> dict[str, Any]:
        self._record("sagemaker", "CreateCompilationJob", request)
        self._compilation = request
        return {}

    def describe_compilation_job(self, CompilationJobName: str) -> dict[str, Any]:
        out = self._compilation["OutputConfig"]
        image = NEO_IMAGE_TEMPLATE.format(region=self.meta.region_name, version=_major_minor(self._version))
        return {
            "CompilationJobStatus": "COMPLETED",
            "ModelArtifacts": {"S3ModelArtifacts": f"{out['S3OutputLocation']}model-{out['TargetDevice']}.tar.gz"},
            "InferenceImage": image,
        }


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=MODEL_DIR / "default" / "model.safetensors",
        help="the weights the package was built from, for the export job (default: the bundled model's)",
    )
    parser.add_argument(
        "--lungs",
        type=Path,
        default=MODEL_DIR / "default" / "lungs.safetensors",
        help="its lung-field network (default: the bundled one)",
    )
    parser.add_argument("--bucket", required=True, help="S3 bucket for the artifacts")
    parser.add_argument("--prefix", default="models", help="S3 key prefix (default: %(default)s)")
    parser.add_argument(
        "--role-arn", required=True, help="IAM role SageMaker assumes for the export and compilation (S3 read/write)"
    )
    parser.add_argument("--job-name", default=None, help="compilation job name (default: xray-neo-TIMESTAMP)")
    parser.add_argument(
        "--framework-version",
        default=NEO_FRAMEWORK_VERSION,
        help="PyTorch version Neo compiles for (default: %(default)s)",
    )
    parser.add_argument("--target", default="ml_g4dn", help="Neo target device (default: %(default)s)")
    parser.add_argument(
        "--export-image", default=None, help=f"the export job's image (default: {DEFAULT_EXPORT_IMAGE})"
    )
    parser.add_argument("--region", default=None, help="(default: the AWS configuration's)")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print every AWS request as JSON; call nothing")
    return parser


def main(args: argparse.Namespace) -> DeployResult:
    job_name = args.job_name or f"xray-neo-{time.strftime('%Y%m%d-%H%M%S')}"
    region = args.region or boto3.session.Session().region_name or "us-east-1"
    lungs = args.lungs if args.lungs.is_file() else None
    checkpoints = Checkpoints(args.checkpoint, lungs) if args.checkpoint.is_file() else None
    dry = DryRun(region, args.framework_version) if args.dry_run else None
    s3 = dry or boto3.client("s3", region_name=region)
    sagemaker = dry or boto3.client("sagemaker", region_name=region)
    result = compile_and_repack(
        args.model,
        args.bucket,
        args.prefix,
        args.role_arn,
        job_name,
        args.framework_version,
        args.target,
        args.poll_seconds,
        s3=s3,
        sagemaker=sagemaker,
        sleep=(lambda _seconds: None) if dry else time.sleep,
        checkpoints=checkpoints,
        export_image=args.export_image,
    )
    if dry is not None:
        print(json.dumps({"requests": dry.requests, "InferenceImage": result.inference_image}, indent=2))  # noqa: T201
        return result
    print(f"ModelDataUrl={result.model_data_url}")  # noqa: T201
    print(f"InferenceImage={result.inference_image}")  # noqa: T201
    print(  # noqa: T201
        f"sam deploy --parameter-overrides ModelDataUrl={result.model_data_url} InferenceImage={result.inference_image}"
    )
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
