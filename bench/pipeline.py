"""Pipeline benchmark on the local stack: upload-to-result throughput vs the endpoint's own, API latency.

    python bench/pipeline.py --model build/model/model.tar.gz [--images 200] [--api-calls 50]

In one run, on the same local endpoint and model:
1. the endpoint alone: the same images in batches of 10 via invoke_endpoint (what the Lambda does);
2. the pipeline: upload N images to the bucket, time until all N results are in DynamoDB, and, to
   separate moto's upload time from the pipeline's own work, each object's latency from its PUT
   returning to its result being stored (the result's ``created_at``) and the processing span from
   the first PUT returning to the last result stored;
3. API latency p50/p95 of POST /classify (gateway + Cognito check + Lambda + endpoint) next to a
   direct single-image invoke_endpoint.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import statistics
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from PIL import Image

from local_stack.stack import LocalDeployment
from model.preprocessing import downsize_png

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def images(n: int) -> list[bytes]:
    """N distinct X-ray PNGs: the bundled samples, slightly varied so every upload is a new object."""
    bases = [Image.open(p).convert("L") for p in sorted(SAMPLES.glob("*-*.png")) if p.name != "not-an-xray.png"]
    out = []
    for i in range(n):
        image = bases[i % len(bases)].point(lambda v, k=i: min(255, v + k % 7))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def time_pipeline(stack: LocalDeployment, data: list[bytes]) -> dict[str, Any]:
    """Upload every image to the bucket; the seconds until every result is stored, split as above."""
    table = stack.resource("dynamodb").Table(stack.template.ref("ResultsTable"))
    run = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    put_done: dict[str, dt.datetime] = {}
    for i, image in enumerate(data):
        key = stack.harness.key(f"bench-{run}/{i:04d}.png")
        stack.harness.upload(key, image)
        put_done[key] = dt.datetime.now(dt.UTC)
    upload_s = time.perf_counter() - t0
    while True:
        # Bench uploads are bucket drops: their results are in the shared scope.
        done = table.query(
            IndexName="ByOwnerStatus",
            KeyConditionExpression="owner_status = :s",
            Select="COUNT",
            ExpressionAttributeValues={":s": "shared#classified"},
        )["Count"]
        if done >= len(data) or time.perf_counter() - t0 > 600:
            break
        time.sleep(0.1)
    total_s = time.perf_counter() - t0
    stored = {key: dt.datetime.fromisoformat(stack.harness.results_for(key)[0]["created_at"]) for key in put_done}
    return {
        "total_s": total_s,
        "upload_s": upload_s,
        "processing_s": (max(stored.values()) - min(put_done.values())).total_seconds(),
        "latency_s": [(stored[key] - done).total_seconds() for key, done in put_done.items()],
    }


def main(args: argparse.Namespace) -> None:
    data = images(args.images)
    with LocalDeployment(args.model, batching_window_s=0.5, concurrency=args.concurrency) as stack:
        endpoint = boto3.client(
            "sagemaker-runtime",
            endpoint_url=stack.endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the local stack's dummy credentials
        )
        name = stack.template.get_att("XrayEndpoint", "EndpointName")

        # 1. the endpoint alone, fed as the Lambda feeds it (validated, downsized, 10 per request)
        t0 = time.perf_counter()
        for start in range(0, len(data), 10):
            chunk = [downsize_png(d) for d in data[start : start + 10]]
            body = json.dumps({"instances": [{"b64": base64.b64encode(c).decode()} for c in chunk]})
            endpoint.invoke_endpoint(EndpointName=name, Body=body, ContentType="application/json")["Body"].read()
        endpoint_s = time.perf_counter() - t0

        # 2. the pipeline: S3 -> SQS -> batch Lambda -> endpoint -> DynamoDB -> SNS
        pipeline = time_pipeline(stack, data)

        # 3. API latency vs a direct endpoint call, one image each
        token = stack.harness.id_token()
        api, direct = [], []
        for i in range(args.api_calls):
            image = data[i % len(data)]
            t = time.perf_counter()
            endpoint.invoke_endpoint(EndpointName=name, Body=image, ContentType="image/png")["Body"].read()
            direct.append(time.perf_counter() - t)
            request = urllib.request.Request(  # noqa: S310 - the local gateway's http URL
                f"{stack.api_url}/classify",
                data=image,
                method="POST",
                headers={"Content-Type": "image/png", "Authorization": token},
            )
            t = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local gateway
                response.read()
            api.append(time.perf_counter() - t)

    n = len(data)
    print(f"{n} images, model {args.model.name}, {args.concurrency} concurrent batch functions\n")
    print(f"{'path':<44} {'seconds':>8} {'img/s':>8}")
    print(f"{'endpoint alone (JSON batches of 10)':<44} {endpoint_s:>8.2f} {n / endpoint_s:>8.1f}")
    total_s, processing_s, latency = pipeline["total_s"], pipeline["processing_s"], pipeline["latency_s"]
    print(f"{'pipeline: upload -> result in DynamoDB':<44} {total_s:>8.2f} {n / total_s:>8.1f}")
    print(f"{'  of which uploading (S3 PUTs to moto)':<44} {pipeline['upload_s']:>8.2f}")
    print(f"{'processing: first PUT done -> last result':<44} {processing_s:>8.2f} {n / processing_s:>8.1f}")
    print(f"per object, PUT done -> result stored: p50 {pct(latency, 50):.2f} s, p95 {pct(latency, 95):.2f} s")
    print(f"pipeline overhead over the endpoint, uploads included: {total_s / endpoint_s - 1:+.0%}")
    print(f"pipeline overhead over the endpoint, processing only: {processing_s / endpoint_s - 1:+.0%}\n")
    print(f"{'single image':<44} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'direct invoke_endpoint':<44} {pct(direct, 50) * 1000:>8.1f} {pct(direct, 95) * 1000:>8.1f}")
    print(f"{'POST /classify (gateway, Cognito, Lambda)':<44} {pct(api, 50) * 1000:>8.1f} {pct(api, 95) * 1000:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument("--images", type=int, default=200, help="(default: %(default)s)")
    parser.add_argument("--api-calls", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=2, help="concurrent batch functions (default: %(default)s)")
    main(parser.parse_args())
