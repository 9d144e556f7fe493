"""The layers: no import runs back up from a package to one above it, none inside ``model`` from a
floor to one above it (``core`` < ``serving`` < ``builder``), and no two modules import each other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.imports import ROOT, imported_modules, top_level_imports

LAYERS = ("model", "functions", "training", "local_stack", "bench", "tests")
FLOORS = ("core", "serving", "builder")
# What the core may import besides the standard library: the Lambdas' own requirements (the layer).
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"__future__"}
CORE_DISTRIBUTIONS = {"numpy", "PIL", "pydicom", "gdcm", "typing_extensions", "model"}


def _sources(folder: Path) -> list[str]:
    return [path.read_text() for path in folder.rglob("*.py")]


def _imported_layers(folder: str) -> set[str]:
    sources = _sources(ROOT / folder)
    return {layer for layer in LAYERS if any(imported_modules(source, layer) for source in sources)}


@pytest.mark.parametrize(
    ("folder", "allowed"),
    [
        ("model", {"model"}),
        ("functions", {"functions", "model"}),
        ("training", {"training", "model"}),
        ("local_stack", {"local_stack", "functions", "model"}),
    ],
)
def test_no_import_runs_back_up_the_layers(folder: str, allowed: set[str]) -> None:
    assert _imported_layers(folder) <= allowed


def _imported_floors(floor: str) -> set[str]:
    imported = set().union(*(imported_modules(s, "model") for s in _sources(ROOT / "model" / floor)))
    return {name.split(".")[0] for name in imported} & set(FLOORS)


@pytest.mark.parametrize("floor", FLOORS)
def test_no_floor_of_model_imports_one_above_it(floor: str) -> None:
    assert _imported_floors(floor) <= set(FLOORS[: FLOORS.index(floor) + 1])


def test_every_model_module_sits_on_a_floor() -> None:
    loose = {p.name for p in (ROOT / "model").glob("*.py")} - {"__init__.py"}
    assert loose == set()


def test_the_core_imports_no_torch_onnx_or_onnxruntime() -> None:
    imported = set().union(*(top_level_imports(s) for s in _sources(ROOT / "model" / "core")))
    assert imported.isdisjoint({"torch", "torchvision", "onnx", "onnxruntime", "safetensors", "boto3"})
    # Only what the Lambda layer installs (functions/requirements.txt) besides the standard library.
    assert imported - STANDARD_LIBRARY <= CORE_DISTRIBUTIONS


def _cycles(folder: str) -> list[tuple[str, str]]:
    """Pairs of modules of ``folder`` (at any depth) that import each other (type-checking imports too)."""
    package = ROOT / folder
    imports = {
        p.relative_to(package).with_suffix("").as_posix().replace("/", "."): imported_modules(p.read_text(), folder)
        for p in package.rglob("*.py")
    }
    return sorted((a, b) for a, targets in imports.items() for b in targets if a < b and a in imports.get(b, set()))


@pytest.mark.parametrize("folder", ["model", "local_stack", "training", "pacs"])
def test_no_two_modules_import_each_other(folder: str) -> None:
    assert _cycles(folder) == []
