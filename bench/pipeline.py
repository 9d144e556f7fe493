"""Pipeline benchmark on the local stack: upload-to-result throughput vs the endpoint's own, API latency.

    python -m bench.pipeline --model build/model/model.tar.gz [--images 200] [--concurrency 1,2,4]

In one run, on the same model, for each number of concurrent batch functions (the SQS event source's
``MaximumConcurrency``; a fresh local stack each):
1. the endpoint alone: the same images in batches of 10 via invoke_endpoint (what the Lambda does);
2. the pipeline: upload N images to the bucket, time until all N results are in DynamoDB, and, to
   separate moto's upload time from the pipeline's own work, each object's latency from its PUT
   returning to its result being stored (the result's ``created_at``) and the processing span from
   the first PUT returning to the last result stored; "in endpoint" is the share of that span the
   endpoint's own work would fill;
3. once: API latency p50/p95 of POST /classify (gateway + Cognito check + Lambda + endpoint) next to
   a direct single-image invoke_endpoint.
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
from local_stack.template import StackContext
from model.core.downsize import downsize_png

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


def endpoint_alone(stack: LocalDeployment, data: list[bytes]) -> float:
    """Seconds for the endpoint alone, fed as the Lambda feeds it (validated, downsized, 10 per request)."""
    endpoint = _endpoint_client(stack)
    name = stack.template.get_att("XrayEndpoint", "EndpointName")
    t0 = time.perf_counter()
    for start in range(0, len(data), 10):
        chunk = [downsize_png(d) for d in data[start : start + 10]]
        body = json.dumps({"instances": [{"b64": base64.b64encode(c).decode()} for c in chunk]})
        endpoint.invoke_endpoint(EndpointName=name, Body=body, ContentType="application/json")["Body"].read()
    return time.perf_counter() - t0


def _endpoint_client(stack: LocalDeployment) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the local stack's dummy credentials
    )


def api_latency(stack: LocalDeployment, data: list[bytes], calls: int) -> tuple[list[float], list[float]]:
    """Seconds per single-image call: POST /classify (gateway + Cognito check + Lambda + endpoint) and
    a direct invoke_endpoint."""
    endpoint = _endpoint_client(stack)
    name = stack.template.get_att("XrayEndpoint", "EndpointName")
    token = stack.harness.id_token()
    api, direct = [], []
    for i in range(calls):
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
    return api, direct


def main(args: argparse.Namespace) -> None:
    data = images(args.images)
    n = len(data)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"{n} images, model {args.model.name}, batch functions at {', '.join(map(str, levels))}\n")
    print(
        f"{'batch functions':>15} {'endpoint alone s':>17} {'pipeline s':>11} {'img/s':>7} {'processing s':>13} "
        f"{'img/s':>7} {'in endpoint':>12} {'p50 s':>6} {'p95 s':>6}"
    )
    api: list[float] = []
    direct: list[float] = []
    for level in levels:
        # moto's state outlives one server in this process: each stack gets names of its own.
        context = StackContext(stack_name=f"xray-bench-{level}-{uuid.uuid4().hex[:6]}")
        with LocalDeployment(args.model, batching_window_s=0.5, concurrency=level, context=context) as stack:
            alone = endpoint_alone(stack, data)
            run = time_pipeline(stack, data)
            if not api:
                api, direct = api_latency(stack, data, args.api_calls)
        total, processing, latency = run["total_s"], run["processing_s"], run["latency_s"]
        # The share of the processing span the endpoint's own work would fill: the rest is the pipeline
        # (S3 GET, decode and downsize, DynamoDB writes, SNS, queue waits and polling).
        print(
            f"{level:>15} {alone:>17.2f} {total:>11.2f} {n / total:>7.1f} {processing:>13.2f} {n / processing:>7.1f} "
            f"{alone / processing:>11.0%} {pct(latency, 50):>6.2f} {pct(latency, 95):>6.2f}",
            flush=True,
        )
    print(f"\n{'single image':<44} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'direct invoke_endpoint':<44} {pct(direct, 50) * 1000:>8.1f} {pct(direct, 95) * 1000:>8.1f}")
    print(f"{'POST /classify (gateway, Cognito, Lambda)':<44} {pct(api, 50) * 1000:>8.1f} {pct(api, 95) * 1000:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument("--images", type=int, default=200, help="(default: %(default)s)")
    parser.add_argument("--api-calls", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument(
        "--concurrency", default="1,2,4", help="concurrent batch functions, one run each (default: %(default)s)"
    )
    main(parser.parse_args())
