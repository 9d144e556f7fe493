"""What ships: the model modules in ``model.tar.gz`` and in each Lambda are every module their code imports."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from model import dicom, errors
from model.package import CONTAINER_WHEELS, code_files, imported_modules, module_closure, runtime_modules
from tests import dicoms, images

ROOT = Path(__file__).resolve().parents[2]


def _lambda_model_files() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^LAMBDA_MODEL_FILES := (.+)$", makefile, re.MULTILINE)
    assert match is not None
    return {Path(p).name for p in match.group(1).split()}


def test_imports_are_found_at_any_depth_and_in_every_spelling() -> None:
    source = (
        "import os\nfrom model import errors, labels\nimport model.metadata\n"
        "def f():\n    from model.dicom import read\n    from modelling import x\n"
    )
    assert imported_modules(source) == {"errors.py", "labels.py", "metadata.py", "dicom.py"}


def test_the_model_package_ships_every_module_the_handlers_import() -> None:
    shipped = {name.removeprefix("code/model/") for name in code_files() if name.startswith("code/model/")}
    assert shipped == set(runtime_modules())
    assert {"inference.py", "runtime.py", "preprocessing.py", "dicom.py"} <= shipped
    assert "architectures.py" not in shipped  # torch stays out of the served code


def test_each_lambda_ships_every_model_module_the_functions_import() -> None:
    used: set[str] = set()
    for path in (ROOT / "functions").rglob("*.py"):
        used |= imported_modules(path.read_text())
    assert _lambda_model_files() == set(module_closure(used))


def test_without_pydicom_a_dicom_is_refused_as_unsupported_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as in the SageMaker container
    data = dicoms.dicom(images.chest(64))
    with pytest.raises(errors.UnsupportedImageTypeError, match="no DICOM decoder"):
        dicom.read(data)


LAYERS = ("model", "functions", "training", "local_stack", "bench", "tests")


def _imported_layers(folder: str) -> set[str]:
    sources = [path.read_text() for path in (ROOT / folder).rglob("*.py")]
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


def test_wheels_ride_in_the_package_and_install_without_an_index(tmp_path: Path) -> None:
    wheel = tmp_path / "onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"wheel bytes")
    files = code_files([wheel])
    assert files["code/wheels/" + wheel.name] == b"wheel bytes"
    lines = files["code/requirements.txt"].decode().splitlines()
    # The endpoint has no network: pip must take the package's wheels and the image's own packages.
    assert lines[:2] == ["--no-index", f"--find-links {CONTAINER_WHEELS}"]
    assert "onnxruntime" in lines


def test_without_wheels_the_requirements_are_what_the_image_holds() -> None:
    assert code_files()["code/requirements.txt"].decode().split() == ["numpy", "pillow"]
    assert not any(name.startswith("code/wheels/") for name in code_files())


def _cycles(folder: str) -> list[tuple[str, str]]:
    """Pairs of top-level modules of ``folder`` that import each other (type-checking imports too)."""
    package = ROOT / folder
    imports = {p.name: imported_modules(p.read_text(), folder) for p in package.glob("*.py")}
    return sorted((a, b) for a, targets in imports.items() for b in targets if a < b and a in imports.get(b, set()))


@pytest.mark.parametrize("folder", ["model", "local_stack", "training", "pacs"])
def test_no_two_modules_import_each_other(folder: str) -> None:
    assert _cycles(folder) == []
