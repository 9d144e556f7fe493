from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.faults import FaultSwitch
from local_stack.harness import Harness
from local_stack.stack import LocalDeployment
from model.builder.artifacts import DEFAULT_CHECKPOINT, DEFAULT_INT8, build
from model.serving.runtime import Predictor
from model.serving.serve import EndpointApp


@pytest.fixture(scope="session")
def bundled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled default model as ``make model`` ships it (ONNX, with its int8 recipe), by the
    project's own build command."""
    out = tmp_path_factory.mktemp("bundled")
    build(DEFAULT_CHECKPOINT, out, ("onnx",), int8=DEFAULT_INT8)
    return out / "artifacts"


@pytest.fixture(scope="session")
def faults(bundled_model: Path) -> FaultSwitch:
    return FaultSwitch(EndpointApp(Predictor.load(bundled_model)))


@pytest.fixture(scope="session")
def stack(bundled_model: Path, faults: FaultSwitch) -> Iterator[LocalDeployment]:
    with LocalDeployment(bundled_model, batching_window_s=0.3, retry_delay_s=0, endpoint_app=faults) as running:
        yield running


@pytest.fixture
def aws(stack: LocalDeployment) -> Harness:
    """The stack's harness, idle and with no leftover notifications."""
    stack.harness.wait_idle()
    stack.harness.drain_notifications()
    return stack.harness
