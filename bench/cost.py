"""What 1,000 images cost on AWS, at 100, 10,000 and 1,000,000 images a month, from measured times and
one price file.

    python -m bench.cost [--prices bench/aws_prices.json] [--inference runs/bench-inference.json]

Prices come from ``bench/aws_prices.json`` (region, date and source of each; ``official`` marks those
read on an AWS page): edit it for your region and rerun. The CPU time per image is the served path's
batch-1 figure from ``python -m bench.inference --model build/model/artifacts --json FILE`` when
``--inference`` is given (else ``--cpu-ms``), plus the decode; requests per image follow the code
(the price file's ``usage``). Prints, per monthly volume, each component's cost per 1,000 images and
the monthly total, for the two endpoint modes of template.yaml (``EndpointMode``): one real-time
``ml.g4dn.xlarge`` (billed every hour it exists, whatever the traffic: a plain SageMaker endpoint keeps
at least one instance, its autoscaling floor), and Serverless Inference (billed per GB-second of
inference and per GB processed, nothing while idle).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PRICES: Final = Path(__file__).resolve().parent / "aws_prices.json"
VOLUMES: Final = (100, 10_000, 1_000_000)
DECODE_MS: Final = 10.0  # the served decoder on a 1024 px PNG (bench.inference, preprocessing rows)


@dataclass(frozen=True)
class Costs:
    """USD a month for ``images`` images, by component."""

    images: int
    endpoint: float
    lambda_: float
    dynamodb: float
    sqs: float
    sns: float
    s3: float

    @property
    def total(self) -> float:
        return self.endpoint + self.lambda_ + self.dynamodb + self.sqs + self.sns + self.s3

    def per_thousand(self, value: float) -> float:
        return value * 1000 / self.images


def price(prices: dict[str, Any], name: str) -> float:
    return float(prices["prices"][name]["price"])


def monthly(prices: dict[str, Any], images: int, mode: str, cpu_ms: float) -> Costs:
    """The month's bill for ``images`` images with the endpoint in ``mode`` (``realtime`` or ``serverless``)."""
    use = prices["usage"]
    if mode == "realtime":
        endpoint = use["hours_per_month"] * price(prices, "sagemaker_realtime_g4dn_xlarge_hour")
        infer_ms = use["gpu_ms_per_image"]
    else:
        seconds = images * (cpu_ms + DECODE_MS) / 1000
        data_gb = images * (use["image_mb"] + use["answer_mb"]) / 1024
        endpoint = seconds * use["serverless_memory_gb"] * price(prices, "sagemaker_serverless_gb_second")
        endpoint += data_gb * price(prices, "sagemaker_serverless_data_gb")
        infer_ms = cpu_ms + DECODE_MS
    # The batch function waits for the endpoint: it is billed for the inference time too.
    lambda_seconds = images * (use["lambda_overhead_ms_per_image"] + infer_ms) / 1000
    invocations = images / use["batch_size"]
    lambda_ = lambda_seconds * use["lambda_memory_gb"] * price(prices, "lambda_gb_second")
    lambda_ += invocations * price(prices, "lambda_request")
    sqs_requests = images * use["sqs_requests_per_image"] + use["sqs_idle_requests_per_month"]
    s3 = images * (
        use["s3_puts_per_image"] * price(prices, "s3_put") + use["s3_gets_per_image"] * price(prices, "s3_get")
    )
    s3 += images * use["image_mb"] / 1024 * price(prices, "s3_storage_gb_month")
    return Costs(
        images,
        endpoint,
        lambda_,
        images * use["dynamodb_writes_per_image"] * price(prices, "dynamodb_write_request_unit"),
        sqs_requests * price(prices, "sqs_request"),
        images * use["sns_publishes_per_image"] * price(prices, "sns_publish"),
        s3,
    )


def served_ms(inference_json: Path) -> float:
    """The served path's batch-1 ms per image from ``bench.inference --json``."""
    rows = json.loads(inference_json.read_text())["rows"]
    [row] = [r for r in rows if r["served"] and r["batch"] == 1]
    return float(row["ms_per_img"])


def table(prices: dict[str, Any], cpu_ms: float) -> str:
    lines = [
        "| images a month | endpoint mode | endpoint | Lambda | DynamoDB | SQS | SNS | S3 "
        "| per 1,000 images | a month |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for images in VOLUMES:
        for mode in ("realtime", "serverless"):
            c = monthly(prices, images, mode, cpu_ms)
            cells = [c.per_thousand(v) for v in (c.endpoint, c.lambda_, c.dynamodb, c.sqs, c.sns, c.s3)]
            lines.append(
                f"| {images:,} | {'real-time ml.g4dn.xlarge' if mode == 'realtime' else 'serverless'} | "
                + " | ".join(f"${v:,.4f}" if v < 1 else f"${v:,.2f}" for v in cells)
                + f" | **${c.per_thousand(c.total):,.2f}** | ${c.total:,.2f} |"
            )
    return "\n".join(lines)


def sources(prices: dict[str, Any]) -> str:
    lines = ["| price | USD | per | read | source |", "| --- | ---: | --- | --- | --- |"]
    for name, p in prices["prices"].items():
        kind = "official" if p["official"] else "**third-party**"
        lines.append(f"| `{name}` | {p['price']:g} | {p['unit']} | {p['read']} | {kind}: {p['source']} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    prices = json.loads(args.prices.read_text())
    cpu_ms = served_ms(args.inference) if args.inference else args.cpu_ms
    print(f"region {prices['region']}; CPU inference {cpu_ms:.1f} ms + decode {DECODE_MS:.0f} ms per image\n")
    print(table(prices, cpu_ms))
    print()
    print(sources(prices))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prices", type=Path, default=PRICES, help="(default: %(default)s)")
    parser.add_argument("--inference", type=Path, default=None, help="bench.inference --json output (default: none)")
    parser.add_argument(
        "--cpu-ms", type=float, default=20.9, help="served CPU ms per image, without --inference (default: %(default)s)"
    )
    main(parser.parse_args())
