"""A fault-injected soak of the whole pipeline on the local stack, and its accounting.

Uploads real X-rays, hostile files and memory bombs, re-delivers some S3 events (duplicates) and
replays older versions' events after newer ones (out of order), with faults injected, then checks the
promise: every uploaded object version ends as exactly one final result (classified, rejected or
failed) with exactly one notification. ``bench/soak.py`` prints the table; a smaller run is a test.
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from PIL import Image

from functions.common.s3_events import ObjectRef
from local_stack.faults import FaultPlan
from local_stack.hostile import HTML, PDF, huge_declared_png, large_png
from local_stack.stack import LocalDeployment
from local_stack.template import StackContext

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FINAL = ("classified", "rejected", "failed")


def peak_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def corpus(count: int, seed: int) -> list[tuple[str, bytes]]:
    """(kind, bytes) for ``count`` uploads: 80 % real X-rays (each made distinct), 15 % hostile files,
    5 % 8000 x 8000 memory-bomb PNGs."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    xrays = [Image.open(p).convert("L") for p in sorted(SAMPLES.glob("*-*.png")) if p.name != "not-an-xray.png"]
    tiny = io.BytesIO()
    Image.new("L", (8, 8)).save(tiny, "PNG")
    hostile = [PDF, HTML, huge_declared_png(), tiny.getvalue(), (SAMPLES / "covid-1.png").read_bytes()[:5000]]
    bombs = [large_png(8000, 8000, kind) for kind in ("gray16", "rgba", "palette")]
    uploads = []
    for i in range(count):
        draw = rng.random()
        if draw < 0.05:
            uploads.append(("bomb", bombs[i % len(bombs)]))
        elif draw < 0.20:
            uploads.append(("hostile", hostile[i % len(hostile)]))
        else:
            image = xrays[i % len(xrays)].point(lambda v, k=i: min(255, v + k % 11))
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            uploads.append(("xray", buffer.getvalue()))
    return uploads


def s3_event(bucket: str, key: str, size: int, etag: str) -> str:
    """The body of an ObjectCreated notification as the local S3 (moto) sends it: no version id, no
    sequencer, so a repeated event is the same event."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key), "size": size, "eTag": etag},
        },
    }
    return json.dumps({"Records": [record]})


@dataclass
class SoakReport:
    uploads: int = 0
    versions: int = 0
    duplicate_deliveries: int = 0
    out_of_order_deliveries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    missing: int = 0
    notifications: int = 0
    duplicate_notifications: int = 0
    unnotified: int = 0
    parked: int = 0
    wall_s: float = 0.0
    peak_memory_mb: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    crashes: int = 0
    problems: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("uploads (objects)", self.uploads),
            ("object versions", self.versions),
            ("duplicate deliveries sent", self.duplicate_deliveries),
            ("out-of-order deliveries sent", self.out_of_order_deliveries),
            ("classified", self.statuses["classified"]),
            ("rejected", self.statuses["rejected"]),
            ("failed", self.statuses["failed"]),
            ("  of which dead-lettered and parked", self.parked),
            ("notifications", self.notifications),
            ("duplicate notifications", self.duplicate_notifications),
            ("final results never notified", self.unnotified),
            ("missing (no final result)", self.missing),
            ("faults injected", ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"),
            ("batch function crashes", self.crashes),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("peak memory (whole local stack)", f"{self.peak_memory_mb:.0f} MB"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join([*(f"{name:<{width}}  {value}" for name, value in rows), *self.problems])

    @property
    def kept_the_promise(self) -> bool:
        return (
            self.missing == 0
            and self.duplicate_notifications == 0
            and self.unnotified == 0
            and sum(self.statuses.values()) == self.versions
        )


def run_soak(
    model: Path,
    uploads: int,
    faults: str,
    seed: int = 1,
    visibility_timeout_s: int = 2,
    timeout_s: float = 900,
    concurrency: int = 2,
) -> SoakReport:
    plan = FaultPlan.parse(faults, seed)
    report = SoakReport(uploads=uploads)
    rng = random.Random(seed + 1)  # noqa: S311 - which deliveries to repeat (not the corpus's draws)
    started = time.monotonic()
    # A stack name of its own: moto keeps one set of resources per process, shared with any other stack.
    context = StackContext(stack_name=f"xray-soak-{uuid.uuid4().hex[:8]}")
    with LocalDeployment(
        model,
        batching_window_s=0.3,
        faults=plan,
        visibility_timeout_s=visibility_timeout_s,
        concurrency=concurrency,
        context=context,
    ) as stack:
        harness = stack.harness
        sqs, bucket = harness.sqs, harness.bucket
        ingest = stack.template.ref("IngestQueue")
        versions: list[ObjectRef] = []
        replays: list[str] = []
        for i, (kind, data) in enumerate(corpus(uploads, seed)):
            key = harness.key(f"soak/{kind}-{i:05d}.png")
            etag = harness.put(key, data)
            ref = ObjectRef(bucket, key, None, etag, len(data), "", "")
            versions.append(ref)
            draw = rng.random()
            if draw < 0.10:  # the same event delivered twice
                sqs.send_message(QueueUrl=ingest, MessageBody=s3_event(bucket, key, len(data), etag))
                report.duplicate_deliveries += 1
            elif draw < 0.15 and kind == "xray":  # a second version, then the first one's event again, late
                newer = data + b"\0"  # a trailing byte: the same image, another version
                newer_etag = harness.put(key, newer)
                versions.append(ObjectRef(bucket, key, None, newer_etag, len(newer), "", ""))
                replays.append(s3_event(bucket, key, len(data), etag))
        for body in replays:
            sqs.send_message(QueueUrl=ingest, MessageBody=body)
            report.out_of_order_deliveries += 1
        report.versions = len(versions)
        notes = _settle(stack, versions, timeout_s)
        table = stack.resource("dynamodb").Table(stack.template.ref("ResultsTable"))
        stored = {v.result_id: table.get_item(Key={"pk": v.result_id}).get("Item") for v in versions}
        for version in versions:
            item = stored[version.result_id]
            if item is None or item["status"] not in FINAL:
                report.missing += 1
                report.problems.append(f"missing: {version.key} ({version.etag}): {item}")
            else:
                report.statuses[item["status"]] += 1
        per_result = Counter((n["result_id"], n["status"]) for n in notes)
        report.notifications = len(notes)
        report.duplicate_notifications = sum(count - 1 for count in per_result.values())
        for rid, item in stored.items():
            if item is not None and item["status"] in FINAL and (rid, item["status"]) not in per_result:
                report.unnotified += 1
                report.problems.append(f"not notified: {item.get('object_ref')} {item}")
        report.problems += [f"notified {count}x: {key}" for key, count in per_result.items() if count > 1]
        report.parked = _in_queue(stack, "ParkedQueue")
        report.faults = dict(plan.injected)
        report.crashes = sum(p.crashes for p in stack.pollers)
    report.wall_s = time.monotonic() - started
    report.peak_memory_mb = peak_memory_mb()
    return report


def _in_queue(stack: LocalDeployment, queue: str) -> int:
    """Messages in a queue of the template (by logical id), visible or in flight."""
    sqs, url = stack.client("sqs"), stack.template.ref(queue)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


def _settle(stack: LocalDeployment, versions: list[ObjectRef], timeout_s: float) -> list[dict[str, Any]]:
    """Wait until every version has a notified final result and the queues are quiet; the notifications."""
    table = stack.resource("dynamodb").Table(stack.template.ref("ResultsTable"))
    notes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    pending = {v.result_id for v in versions}
    while time.monotonic() < deadline:
        notes += stack.harness.drain_notifications()
        for rid in list(pending):
            item = table.get_item(Key={"pk": rid}).get("Item")
            if item is not None and item["status"] in FINAL and "notified_at" in item:
                pending.discard(rid)
        if (
            not pending
            and not stack.pollers_busy()
            and all(_in_queue(stack, q) == 0 for q in ("IngestQueue", "DeadLetterQueue"))
        ):
            break
        time.sleep(0.5)
    time.sleep(1.0)  # late duplicates, if any, would arrive now
    return notes + stack.harness.drain_notifications()
