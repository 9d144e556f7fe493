"""The CI entry point itself: a script that does not parse fails CI before a single test runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[3] / ".ci" / "run"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_ci_script_parses() -> None:
    checked = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_ci_script_runs_make_test_last_after_strict_mode() -> None:
    lines = [line for line in CI_RUN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "set -euo pipefail"
    assert lines[-1] == "make test"
