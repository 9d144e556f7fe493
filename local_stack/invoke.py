"""Replay an event file against a function of template.yaml, as ``sam local invoke`` does, without docker.

    python -m local_stack.invoke ClassifyBatchFunction -e events/sqs-s3-put.json --seed samples/no_findings-1.png
    python -m local_stack.invoke ApiFunction -e events/api-classify.json

Starts a fresh local stack (moto, the local endpoint serving --model), sets the function's environment
from the template, calls its handler with the event and prints the response. ``--seed FILE`` first
uploads FILE to every object an S3 (or SQS-wrapped S3) event names and puts the real version id and
ETag into the event, so the replay classifies an image instead of recording it as missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from local_stack.stack import LocalDeployment


def _s3_records(event: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]]:
    """(S3 record, enclosing SQS record or None, S3 event) for every S3 record, direct or in SQS."""
    found: list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = []
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:s3":
            found.append((record, None, event))
        elif record.get("eventSource") == "aws:sqs":
            body = json.loads(record["body"])
            found += [(inner, record, body) for inner in body.get("Records", [])]
    return found


def seed_objects(stack: LocalDeployment, event: dict[str, Any], image: Path) -> dict[str, Any]:
    event = copy.deepcopy(event)
    s3 = stack.client("s3")
    for record, sqs_record, body in _s3_records(event):
        obj = record["s3"]["object"]
        put = s3.put_object(
            Bucket=record["s3"]["bucket"]["name"], Key=unquote_plus(obj["key"]), Body=image.read_bytes()
        )
        obj.update({"eTag": put["ETag"].strip('"'), "size": image.stat().st_size})
        if put.get("VersionId"):
            obj["versionId"] = put["VersionId"]
        if sqs_record is not None:
            sqs_record["body"] = json.dumps(body)
    return event


def main(args: argparse.Namespace) -> int:
    event = json.loads(args.event.read_text())
    with LocalDeployment(args.model, with_poller=False) as stack:
        if args.seed is not None:
            event = seed_objects(stack, event, args.seed)
        response = stack.runner(args.function).invoke(event)
        print(json.dumps(response, indent=2, default=str))
        if args.function == "ClassifyBatchFunction":
            table = stack.resource("dynamodb").Table(stack.template.ref("ResultsTable"))
            for item in table.scan()["Items"]:
                print(json.dumps({k: item.get(k) for k in ("result_id", "status", "label", "reason")}, default=str))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("function", help="logical id in template.yaml, e.g. ClassifyBatchFunction or ApiFunction")
    parser.add_argument("-e", "--event", type=Path, required=True, help="event JSON file (see events/)")
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument("--seed", type=Path, default=None, help="image to upload to the objects an S3 event names")
    sys.exit(main(parser.parse_args()))
