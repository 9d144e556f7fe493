"""The Lambdas' dependency layer as `sam build` makes it (pip, then tools/prune_layer.py) still decodes
every format an upload may have, with nothing but the function's own code and the layer on the path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.core.downsize import downsize_png
from tests import dicoms
from tools.prune_layer import runtime_site

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "covid-2.png"
THIRD_PARTY = (
    "aws_lambda_powertools.event_handler.openapi.params",
    "aws_lambda_powertools.logging.formatter",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_xray_sdk.core",
    "pydantic",
    "PIL.Image",
    "numpy",
    "pydicom",
    "gdcm",
    "highdicom.sr",
)
DECODE = """
import sys
from pathlib import Path
from model.core.downsize import downsize_png
for path in Path(sys.argv[1]).glob("*.in"):
    path.with_suffix(".png").write_bytes(downsize_png(path.read_bytes()))
"""


def _uploads() -> dict[str, bytes]:
    pixels = np.asarray(Image.open(SAMPLE).convert("L"))
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, "JPEG", quality=90)
    return {
        "png": SAMPLE.read_bytes(),
        "jpeg": jpeg.getvalue(),
        **{f"dicom_{name}": build() for name, build in dicoms.variants(pixels).items()},
    }


def _make(target: str, artifacts: Path) -> None:
    artifacts.mkdir(parents=True)
    done = subprocess.run(
        ["make", "-s", target, f"ARTIFACTS_DIR={artifacts}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The batch function's folder and the layer's python/ folder, built by the Makefile targets sam runs."""
    root = tmp_path_factory.mktemp("sam")
    _make("build-ClassifyBatchFunction", root / "function")
    _make("build-DependenciesLayer", root / "layer")
    return root / "function", root / "layer" / "python"


def test_every_package_the_functions_import_loads_from_the_layer_and_the_runtime(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    path = [*built, runtime_site(tmp_path)]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(map(str, path))}
    code = "; ".join(f"import {module}" for module in THIRD_PARTY)
    done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_layer_keeps_one_file_of_each_shared_library(built: tuple[Path, Path]) -> None:
    gdcm = sorted(p.name for p in (built[1] / "_gdcm").glob("libgdcmMSFF.so*"))
    assert gdcm == ["libgdcmMSFF.so.3.0"]


def test_the_function_and_the_layer_ship_bytecode_python_uses_without_checking_the_sources(
    built: tuple[Path, Path],
) -> None:
    for compiled in (
        built[0] / "functions" / "classify_batch" / "__pycache__" / f"app.{sys.implementation.cache_tag}.pyc",
        built[1] / "numpy" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc",
    ):
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, compiled  # PEP 552: hash-based, source not checked


def test_every_accepted_format_decodes_with_only_the_function_and_the_layer(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    uploads = _uploads()
    for name, data in uploads.items():
        (tmp_path / f"{name}.in").write_bytes(data)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(map(str, built))}
    # -S: no site-packages, so nothing from this virtual environment can stand in for the layer.
    done = subprocess.run(
        [sys.executable, "-S", "-c", DECODE, str(tmp_path)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, data in uploads.items():
        here = np.asarray(Image.open(io.BytesIO(downsize_png(data))))
        there = np.asarray(Image.open(tmp_path / f"{name}.png"))
        assert np.array_equal(here, there), name
