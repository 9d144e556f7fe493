"""The README and docs/ are the user's manual: what they point at exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
TOP_LEVEL = ("functions", "model", "training", "local_stack", "tests", "bench", "tools", "client", "pacs", "docs")
TOP_LEVEL += ("events", "samples")


def _section(page: Path, title: str) -> str:
    text = page.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,4} (.*)$", page.read_text(), flags=re.MULTILINE)}


def _names(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_file_and_folder_where_things_are_names_exists() -> None:
    paths = re.findall(r"`([a-z_]+/[A-Za-z0-9_./]*)`", _section(ROOT / "docs" / "architecture.md", "Where things are"))
    assert len(paths) > 30
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_every_model_module_is_placed_in_the_table() -> None:
    section = _section(ROOT / "docs" / "architecture.md", "Where things are")
    modules = [p.name for p in (ROOT / "model").glob("*.py") if p.name != "__init__.py"]
    assert [m for m in modules if f"model/{m}" not in section] == []


@pytest.mark.parametrize("page", MANUAL, ids=_names)
def test_every_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", MANUAL, ids=_names)
def test_every_repository_path_named_exists(page: Path) -> None:
    named = re.findall(rf"`((?:{'|'.join(TOP_LEVEL)})/[A-Za-z0-9_./-]*)`", page.read_text())
    # What a command creates (the client's build, archives) and placeholders are not in a fresh clone.
    made_by_commands = ("client/dist", "build/")
    missing = [
        p
        for p in named
        if "<" not in p and not p.startswith(made_by_commands) and not p.endswith(".tar.gz") and not (ROOT / p).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("page", MANUAL, ids=_names)
def test_every_make_target_and_python_module_named_exists(page: Path) -> None:
    text = page.read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    made = set(re.findall(r"`(?:[A-Z_]+=\S+ )*make ([a-z][\w-]*)", text))
    modules = set(re.findall(r"python -m ([a-z_][\w.]*)", text))
    missing_modules = [
        m
        for m in modules
        if not (ROOT / (m.replace(".", "/") + ".py")).exists()
        and not (ROOT / m.replace(".", "/") / "__main__.py").exists()
        and m.split(".")[0] in {"functions", "model", "training", "local_stack", "bench", "tools", "pacs", "tests"}
    ]
    assert (sorted(made - targets), missing_modules) == ([], [])
