"""``make redrive``: move parked dead letters back to the ingest queue, on the local stack.

On AWS the same is ``aws sqs start-message-move-task --source-arn <ParkedQueueArn> --destination-arn
<IngestQueueArn>`` (moto has no message move tasks, so locally the messages are received, sent and
deleted one by one). Each redriven object is processed again and ends as one final result.

    python -m local_stack.redrive            # reads .local/outputs.json of a running `make local`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import boto3

from local_stack.stack import CREDENTIALS, OUTPUTS


def queue_url(sqs: Any, arn: str) -> str:
    return str(sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"])


def redrive(sqs: Any, source_url: str, destination_url: str) -> int:
    """Move every visible message from ``source_url`` to ``destination_url``; returns how many."""
    moved = 0
    while True:
        messages = sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=destination_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def main(args: argparse.Namespace) -> None:
    outputs = json.loads(args.outputs.read_text())
    sqs = boto3.client(
        "sqs",
        endpoint_url=outputs["AwsEndpointUrl"],
        region_name=outputs["Region"],
        aws_access_key_id=CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )
    moved = redrive(sqs, queue_url(sqs, outputs["ParkedQueueArn"]), outputs["IngestQueueUrl"])
    print(f"redrove {moved} parked message(s) to the ingest queue")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--outputs", type=Path, default=OUTPUTS, help="outputs of the running local stack (default: %(default)s)"
    )
    main(parser.parse_args())
