"""The model package's settings from the environment, read in one place.

- ``XRAY_BACKEND``: ``neo``, ``onnx`` or ``torchscript`` forces the served backend (``model.serving.runtime``);
  unset, the runtime picks the best one the model directory and the machine allow.
- ``XRAY_TORCH_THREADS``: threads each Spark worker's PyTorch uses (``training.spark``); default 1,
  because Spark already runs one worker per core.
"""

from __future__ import annotations

import os
from typing import Final, Literal, get_args

from model.core.errors import InvalidSettingError

Backend = Literal["neo", "onnx", "torchscript"]
BACKENDS: Final[tuple[Backend, ...]] = get_args(Backend)


def backend() -> Backend | None:
    value = os.environ.get("XRAY_BACKEND", "").strip().lower()
    if not value:
        return None
    for known in BACKENDS:
        if value == known:
            return known
    raise InvalidSettingError(f"XRAY_BACKEND={value!r}; expected one of {', '.join(BACKENDS)}")


def torch_threads() -> int:
    value = os.environ.get("XRAY_TORCH_THREADS", "1")
    try:
        threads = int(value)
    except ValueError as exc:
        raise InvalidSettingError(f"XRAY_TORCH_THREADS={value!r}; expected a positive integer") from exc
    if threads < 1:
        raise InvalidSettingError(f"XRAY_TORCH_THREADS={value!r}; expected a positive integer")
    return threads
