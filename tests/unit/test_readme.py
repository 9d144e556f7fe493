"""The README is the user's manual: what it points at exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_file_and_folder_where_things_are_names_exists() -> None:
    paths = re.findall(r"`([a-z_]+/[A-Za-z0-9_./]*)`", _section("Where things are"))
    assert len(paths) > 30
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_every_model_module_is_placed_in_the_table() -> None:
    section = _section("Where things are")
    modules = [p.name for p in (ROOT / "model").glob("*.py") if p.name != "__init__.py"]
    assert [m for m in modules if f"model/{m}" not in section] == []
