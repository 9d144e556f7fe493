"""``make demo``: the whole pipeline on this machine, on the bundled model and sample X-rays.

Starts the local stack (moto, the local SageMaker endpoint, the two Lambdas from template.yaml),
uploads every file of samples/ under the upload prefix, waits until each has a result, prints the
results read back from DynamoDB and the SNS notifications received, classifies one image through
the authenticated API, lists the results through it as the demo user (a member of the readers group,
so it sees these bucket drops), and exits 0 only if every upload is accounted for.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from local_stack.stack import LocalDeployment

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def classify_via_api(stack: LocalDeployment, image: Path) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the local gateway's http URL
        f"{stack.api_url}/classify",
        data=image.read_bytes(),
        method="POST",
        headers={"Content-Type": "image/png", "Authorization": stack.harness.id_token()},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local gateway URL
        return json.loads(response.read())  # type: ignore[no-any-return]


def list_via_api(stack: LocalDeployment) -> list[dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the local gateway's http URL
        f"{stack.api_url}/results?limit=100", headers={"Authorization": stack.harness.id_token()}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local gateway URL
        return json.loads(response.read())["items"]  # type: ignore[no-any-return]


def main(args: argparse.Namespace) -> int:
    files = sorted(p for p in args.samples.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".dcm"})
    started = time.monotonic()
    with LocalDeployment(args.model) as stack:
        print(
            f"local stack up in {time.monotonic() - started:.1f}s: moto {stack.aws_url}, "
            f"endpoint {stack.endpoint.url}, API {stack.api_url}"
        )
        keys = []
        t0 = time.monotonic()
        for path in files:
            key = stack.harness.key(f"demo/{path.name}")
            stack.harness.upload(key, path.read_bytes())
            keys.append(key)
        results = stack.harness.wait_for_results(keys, timeout_s=args.timeout)
        elapsed = time.monotonic() - t0
        print(f"\n{len(files)} uploads -> {len(results)} results in {elapsed:.1f}s (read back from DynamoDB)\n")
        print(f"{'object key':<34} {'status':<11} {'label':<12} {'p(covid)':>8} {'gate':>6}  {'confidence':<11} reason")
        for key in keys:
            item = results.get(key)
            if item is None:
                print(f"{key:<34} {'MISSING':<11}")
                continue
            probs = item.get("probabilities") or {}
            p_covid = f"{float(probs['covid']):.3f}" if "covid" in probs else "-"
            gate = f"{float(item['gate']['score']):.2f}" if item.get("gate") else "-"
            label, reason = item.get("label", "-"), item.get("reason", "")
            confidence = (item.get("confidence") or {}).get("level", "-")
            print(f"{key:<34} {item['status']:<11} {label:<12} {p_covid:>8} {gate:>6}  {confidence:<11} {reason}")
        notifications = stack.harness.drain_notifications()
        print(f"\n{len(notifications)} SNS notifications received (no object keys in them):")
        for note in notifications:
            print(f"  result {note['result_id'][:12]}…  status={note['status']:<10} label={note.get('label', '-')}")
        answer = classify_via_api(stack, files[0])
        print(
            f"\nPOST /classify {files[0].name} (Cognito token): {answer['label']} "
            f"{json.dumps({k: round(v, 3) for k, v in answer['probabilities'].items()})}"
        )
        listed = list_via_api(stack)
        shared = {i["result_id"] for i in listed if i["scope"] == "shared"}
        print(
            f"GET /results as {stack.outputs()['DemoUsername']} (readers group): {len(shared)} shared results "
            "(the bucket drops above, shown without their object keys)"
        )
    ok = (
        len(results) == len(files)
        and len(notifications) == len(files)
        and {r["result_id"] for r in results.values()} <= shared
    )
    print("\nall uploads accounted for" if ok else "\nSOME UPLOADS WERE NOT ACCOUNTED FOR")
    return 0 if ok else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz or its unpacked directory")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="folder of images to upload (default: samples/)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for results (default: %(default)s)"
    )
    sys.exit(main(parser.parse_args()))
