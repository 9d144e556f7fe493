"""``make demo``: classify the bundled sample X-rays through the local SageMaker endpoint.

    python -m local_stack.demo --model build/model/model.tar.gz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import boto3
from botocore.config import Config

from model.serve import EndpointApp, LocalEndpoint, load_predictor

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def main(args: argparse.Namespace) -> int:
    predictor = load_predictor(args.model)
    with LocalEndpoint(EndpointApp(predictor)) as endpoint:
        runtime = boto3.client(
            "sagemaker-runtime", endpoint_url=endpoint.url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local", config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip
        print(f"model {predictor.meta.version} ({predictor.backend.name}) on {endpoint.url}\n")
        print(f"{'file':<22} {'outcome':<12} {'label':<12} probabilities")
        for path in sorted(args.samples.glob("*.png")):
            try:
                response = runtime.invoke_endpoint(EndpointName="local", Body=path.read_bytes(), ContentType="image/png")
                prediction = json.loads(response["Body"].read())["predictions"][0]
                probs = " ".join(f"{k}={v:.3f}" for k, v in prediction["probabilities"].items())
                print(f"{path.name:<22} {'classified':<12} {prediction['label']:<12} {probs}")
            except runtime.exceptions.ModelError as exc:
                reason = json.loads(exc.response["OriginalMessage"])["error"]["reason"]
                print(f"{path.name:<22} {'rejected':<12} {'-':<12} reason={reason}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz or its unpacked directory")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="folder of images (default: samples/)")
    sys.exit(main(parser.parse_args()))
