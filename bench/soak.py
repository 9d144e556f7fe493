"""Soak the local stack with faults and print the accounting of every upload.

    python bench/soak.py --model build/model/model.tar.gz --uploads 1000 \
        --faults endpoint_5xx=0.2,s3_timeout=0.1,crash=0.05 --seed 1

Real X-rays, hostile files and 8000 x 8000 memory-bomb PNGs are uploaded; some S3 events are delivered
twice and some older versions' events arrive after newer ones. The promise under test: every object
version ends as exactly one final result (classified, rejected or failed) with exactly one
notification. Exits 1 if it does not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from local_stack.soak import run_soak


def main(args: argparse.Namespace) -> int:
    report = run_soak(
        args.model, args.uploads, args.faults, args.seed, args.visibility_timeout, concurrency=args.concurrency
    )
    print(report.table())
    print("\nevery upload accounted for, each notified once" if report.kept_the_promise else "\nTHE PROMISE WAS BROKEN")
    return 0 if report.kept_the_promise else 1


if __name__ == "__main__":
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # The functions run inside this process here; give it the malloc setting template.yaml gives them.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})  # noqa: S606
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/model/model.tar.gz"), help="(default: %(default)s)")
    parser.add_argument("--uploads", type=int, default=1000, help="objects to upload (default: %(default)s)")
    parser.add_argument(
        "--faults",
        default="endpoint_5xx=0.2,s3_timeout=0.1,crash=0.05",
        help="name=probability,... (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="(default: %(default)s)")
    parser.add_argument("--visibility-timeout", type=int, default=2, help="seconds (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=2, help="batch functions at once (default: %(default)s)")
    sys.exit(main(parser.parse_args()))
