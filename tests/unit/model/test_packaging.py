"""What ships: the model modules in ``model.tar.gz`` and in each Lambda are every module their code imports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from model.builder.package import CONTAINER_WHEELS, LAMBDA_FLOORS, SERVED_FLOORS, code_files, copy_floors, floor_files
from model.core import dicom, errors
from tests import dicoms, images
from tests.imports import closure, imported_modules

ROOT = Path(__file__).resolve().parents[3]


def test_imports_are_found_at_any_depth_and_in_every_spelling() -> None:
    source = (
        "import os\nfrom model.core import errors, labels\nimport model.serving.metadata\n"
        "def f():\n    from model.core.dicom import read\n    from modelling import x\n"
    )
    assert imported_modules(source, "model") >= {"core.errors", "core.labels", "serving.metadata", "core.dicom"}
    assert not any(name.startswith("modelling") for name in imported_modules(source, "model"))


def test_the_model_package_ships_the_core_and_serving_floors() -> None:
    shipped = {name.removeprefix("code/model/") for name in code_files() if name.startswith("code/model/")}
    assert shipped == set(floor_files(SERVED_FLOORS))
    assert {"serving/inference.py", "serving/runtime.py", "core/preprocessing.py", "core/dicom.py"} <= shipped
    assert not any(name.startswith("builder/") for name in shipped)  # torch stays out of the served code


def test_the_served_code_holds_every_module_the_handlers_import() -> None:
    needed = closure([ROOT / "model" / "serving" / "inference.py"])
    assert needed <= set(floor_files(SERVED_FLOORS))


def test_each_lambda_holds_every_model_module_the_functions_import() -> None:
    needed = closure((ROOT / "functions").rglob("*.py"))
    assert needed <= set(floor_files(LAMBDA_FLOORS))
    assert {"core/decoding.py", "core/downsize.py"} <= needed


def test_the_lambda_build_copies_the_lambda_floors(tmp_path: Path) -> None:
    copy_floors(LAMBDA_FLOORS, tmp_path)
    copied = {p.relative_to(tmp_path / "model").as_posix() for p in (tmp_path / "model").rglob("*.py")}
    assert copied == set(floor_files(LAMBDA_FLOORS))
    assert "-m model.builder.package" in (ROOT / "Makefile").read_text()


def test_without_pydicom_a_dicom_is_refused_as_unsupported_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as in the SageMaker container
    data = dicoms.dicom(images.chest(64))
    with pytest.raises(errors.UnsupportedImageTypeError, match="no DICOM decoder"):
        dicom.read(data)


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
