from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.config import ApiSettings, Settings
from functions.common.errors import ConfigurationError
from local_stack.template import Template
from model.core import settings
from model.core.errors import InvalidSettingError
from model.serving.runtime import Predictor


def test_xray_backend_forces_the_served_backend(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY_BACKEND", "TorchScript")
    assert Predictor.load(tiny_model_dir).backend.name == "torchscript"


def test_an_unknown_backend_fails_at_load_naming_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY_BACKEND", "tensorrt")
    with pytest.raises(InvalidSettingError, match="neo, onnx, torchscript"):
        settings.backend()


@pytest.mark.parametrize("value", ["0", "two"])
def test_torch_threads_must_be_a_positive_integer(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY_TORCH_THREADS", value)
    with pytest.raises(InvalidSettingError):
        settings.torch_threads()


def _function_environment(function: str) -> dict[str, str]:
    template = Template(parameters={"AllowedOrigin": "https://client.example.org"})
    for name in ("ResultsTable", "ResultsTopic", "UploadBucket", "ParkedQueue", "PageTokenSecret"):
        template.register(name, name.lower())
    template.register("XrayEndpoint", "endpoint", EndpointName="endpoint")
    return template.function_environment(function)


def test_the_functions_read_their_settings_from_what_the_template_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _function_environment("ApiFunction").items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().max_receive_count == 5
    assert ApiSettings.from_env().sync_max_image_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize("missing", ["MAX_RECEIVE_COUNT", "RESULT_RETENTION_DAYS", "RESULTS_TABLE"])
def test_a_setting_the_template_provides_is_required(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _function_environment("ClassifyBatchFunction").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=missing):
        Settings.from_env()
