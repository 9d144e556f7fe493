"""The bundled package serves the int8 graph its recipe describes, built here without any data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.builder.artifacts import DEFAULT_INT8
from model.builder.int8_recipe import Int8Recipe
from model.core.contract import ONNX_FILE
from model.core.preprocessing import prepare, to_batch
from model.core.presets import get_preset
from model.serving.backends import OnnxBackend
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_the_bundled_package_serves_int8_from_its_recipe(bundled_model: Path) -> None:
    assert Predictor.load(bundled_model).backend.name == "onnx-int8"
    assert ModelMetadata.read(bundled_model).int8["from_recipe"] == Int8Recipe.read(DEFAULT_INT8).provenance


def test_int8_labels_the_sample_xrays_as_fp32_does(bundled_model: Path) -> None:
    predictor = Predictor.load(bundled_model)
    preset = get_preset(predictor.meta.preset)
    xrays = [p for p in sorted(SAMPLES.glob("*.png")) if p.stem.rsplit("-", 1)[0] in predictor.meta.labels]
    assert len(xrays) == 6
    batch = to_batch([prepare(p.read_bytes(), preset) for p in xrays])
    int8 = predictor.backend.run(batch).logits.argmax(axis=1)
    fp32 = OnnxBackend(bundled_model / ONNX_FILE).run(batch).logits.argmax(axis=1)
    np.testing.assert_array_equal(int8, fp32)
