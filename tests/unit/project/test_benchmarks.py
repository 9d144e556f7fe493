"""docs/benchmarks.md's generated sections are the benchmarks' own JSON, rendered (bench.tables)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import tables

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "benchmarks.md"


def test_every_generated_section_is_its_json_rendered() -> None:
    doc = DOC.read_text()
    assert doc == tables.rewrite(doc), "stale: run `python -m bench.tables` after a benchmark's --json run"


def test_every_result_file_has_its_section() -> None:
    names = {match["name"] for match in tables.SECTION.finditer(DOC.read_text())}
    assert names == {path.stem for path in (ROOT / "bench" / "results").glob("*.json")}


def test_a_section_shows_each_row_with_its_command_and_date(tmp_path: Path) -> None:
    row = {"arch": "resnet50", "batch": 1, "path": "onnx", "served": True, "ms_per_img": 12.34, "vs_eager": 2.5}
    row |= {"of_peak": 0.5, "max_dlogit": 1e-7, "agreement": 1.0}
    run = {"command": "python -m bench.inference --seconds 2", "date": "2026-12-04", "machine": {}, "rows": [row]}
    (tmp_path / "x.json").write_text(json.dumps(run))
    out = tables.rewrite("<!-- bench:x -->\nold\n<!-- /bench:x -->\n", tmp_path)
    assert "`python -m bench.inference --seconds 2`, 2026-12-04" in out
    assert "| resnet50 | 1 | ONNX Runtime fp32 (served) | 12.3 | 2.50x | 50% | 1.0e-07 | 100% |" in out
    assert "old" not in out
