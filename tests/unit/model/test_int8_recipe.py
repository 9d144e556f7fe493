"""The int8 recipe: what ``model.builder.quantize`` measured once, applied by ``model.builder`` without data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.builder.int8_recipe import Int8Recipe, fingerprint, from_run
from model.builder.quantize import apply_recipe, convolutions, guard, plan_name, quantize
from model.core.contract import INT8_ONNX_FILE, ONNX_FILE
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor
from tests import images

PROVENANCE = {"data": "synthetic", "measured": "2026-12-03"}


@pytest.fixture(scope="module")
def measured(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A quantized copy of the tiny model (first convolution kept fp32) and its recipe file."""
    root = tmp_path_factory.mktemp("measured")
    artifacts = root / "artifacts"
    shutil.copytree(tiny_model_dirs["multiclass"], artifacts)
    size = ModelMetadata.read(artifacts).input_size
    chest = np.stack([images.chest(size, seed=s) for s in range(8)])
    cache, kept = root / "ranges.json", convolutions(artifacts / ONNX_FILE)[:1]
    quantize(artifacts, chest, keep_fp32=kept, cache=cache)
    verdict = {"plan": plan_name(1), "fp32": kept, **guard(artifacts, chest[:4], ["covid"] * 4)}
    return artifacts, from_run(artifacts, cache, verdict, PROVENANCE).write(root / "int8.json")


def _fresh(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> Path:
    """The fp32 export the recipe was measured on, as ``model.builder`` writes it: no int8 yet."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_model_dirs["multiclass"], artifacts)
    (artifacts / INT8_ONNX_FILE).unlink(missing_ok=True)
    return artifacts


def test_the_recipe_rebuilds_the_guarded_int8_graph_byte_for_byte(
    measured: tuple[Path, Path], tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    guarded, recipe = measured
    artifacts = _fresh(tiny_model_dirs, tmp_path)
    assert apply_recipe(artifacts, Int8Recipe.read(recipe))
    assert (artifacts / INT8_ONNX_FILE).read_bytes() == (guarded / INT8_ONNX_FILE).read_bytes()


def test_the_recipe_records_its_verdict_and_provenance(
    measured: tuple[Path, Path], tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    _, recipe = measured
    artifacts = _fresh(tiny_model_dirs, tmp_path)
    apply_recipe(artifacts, Int8Recipe.read(recipe))
    int8 = ModelMetadata.read(artifacts).int8
    assert int8["served"] == json.loads(recipe.read_text())["verdict"]["served"]
    assert int8["from_recipe"] == PROVENANCE
    assert int8["fp32"] == Int8Recipe.read(recipe).keep_fp32


@pytest.mark.parametrize("served", [True, False])
def test_the_runtime_serves_the_recipes_int8_only_where_its_guard_passed(
    measured: tuple[Path, Path], tiny_model_dirs: dict[str, Path], tmp_path: Path, served: bool
) -> None:
    recipe = Int8Recipe.read(measured[1])
    recipe.verdict["served"] = served
    artifacts = _fresh(tiny_model_dirs, tmp_path)
    apply_recipe(artifacts, recipe)
    assert Predictor.load(artifacts, "onnx").backend.name == ("onnx-int8" if served else "onnx")


def _rewrite(path: Path, weights_scale: float = 1.0, producer: str | None = None) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    if producer is not None:
        model.producer_version = producer
    first = model.graph.initializer[0]
    first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * weights_scale, first.name))
    onnx.save(model, str(path))


def test_a_recipe_for_other_weights_is_not_applied(
    measured: tuple[Path, Path], tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    artifacts = _fresh(tiny_model_dirs, tmp_path)
    _rewrite(artifacts / ONNX_FILE, weights_scale=1.01)
    assert not apply_recipe(artifacts, Int8Recipe.read(measured[1]))
    assert not (artifacts / INT8_ONNX_FILE).exists()
    assert ModelMetadata.read(artifacts).int8 == {}


def test_the_fingerprint_ignores_what_the_exporter_says_about_itself(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    artifacts = _fresh(tiny_model_dirs, tmp_path)
    before = fingerprint(artifacts / ONNX_FILE)
    _rewrite(artifacts / ONNX_FILE, producer="9.9.9")
    assert fingerprint(artifacts / ONNX_FILE) == before
