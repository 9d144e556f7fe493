"""A small fault-injected soak (the 1,000-upload one is bench/soak.py): nothing lost, nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.soak import run_soak

pytestmark = pytest.mark.integration


def test_every_upload_ends_as_one_notified_final_result_under_faults(bundled_model: Path) -> None:
    report = run_soak(bundled_model, uploads=100, faults="endpoint_5xx=0.2,s3_timeout=0.1,crash=0.05", seed=3)
    print(report.table())
    assert report.faults.get("crash", 0) > 0
    assert report.faults.get("s3_timeout", 0) > 0
    assert report.duplicate_deliveries > 0
    assert report.statuses["classified"] > 0
    assert report.statuses["rejected"] > 0
    assert (report.missing, report.duplicate_notifications, report.unnotified) == (0, 0, 0)
    assert sum(report.statuses.values()) == report.versions
