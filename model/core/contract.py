"""The model contract: what a model package holds and what its endpoint is asked and answers.

One definition shared by the server (``model.serving.inference``, ``model.serving.runtime``,
``model.serving.serve``), the package's writers (``model.builder.export``, ``model.builder.quantize``,
``model.builder.deploy``) and its client, the Lambdas' ``functions.common.endpoint``.
Plain Python only: this module ships to the Lambdas and the container.

model.tar.gz
├── model.onnx          ONNX_FILE          fp32 graph: INPUT_NAME -> OUTPUT_NAMES
├── model.int8.onnx     INT8_ONNX_FILE     int8 graph (model.builder.quantize), served only if its guard passed
├── model.pt            TORCHSCRIPT_FILE   the same graph as TorchScript (GPU, Neo's input)
├── *compiled*.pt       NEO_GLOBS          what Neo wrote, where it compiled
├── lungs.onnx          LUNGS_ONNX_FILE    the lung-field network (model.builder.lung_network): the gate's
├── lungs.pt            LUNGS_TORCHSCRIPT_FILE  anatomy and orientation check, preset v3's crop
├── metadata.json       METADATA_FILE      labels, preset, calibration, gate, validation (model.serving.metadata)
└── code/                                  the handlers and the modules they import (model.builder.package)

A request is one image (``IMAGE_TYPES``, the raw bytes) or ``Request`` as ``JSON_TYPE``; the answer
is a ``Response``: one ``Prediction`` or ``Refusal`` per image, in order.
"""

from __future__ import annotations

import sys
from typing import Final, Literal, TypedDict, final, get_args

# Neo's PyTorch 2.0 images (the TorchScript export job, the compiled endpoint) run Python 3.10.
if sys.version_info >= (3, 11):  # noqa: UP036
    from typing import NotRequired  # novermin
else:
    from typing_extensions import NotRequired  # noqa: UP035

ONNX_FILE: Final = "model.onnx"
INT8_ONNX_FILE: Final = "model.int8.onnx"
TORCHSCRIPT_FILE: Final = "model.pt"
LUNGS_ONNX_FILE: Final = "lungs.onnx"
LUNGS_TORCHSCRIPT_FILE: Final = "lungs.pt"
METADATA_FILE: Final = "metadata.json"
# The compiled artifact's name has changed between Neo releases (compiled.pt, model_compiled.pt, ...).
NEO_GLOBS: Final = ("*compiled*.pt", "*compiled*.pth", "*_neo*.pt", "*_neo*.pth")

INPUT_NAME: Final = "input0"
OUTPUT_NAMES: Final = ("logits", "cam", "gate_score", "turned_gate_score")

IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "application/dicom", "application/x-image"})
JSON_TYPE: Final = "application/json"
# SageMaker's real-time invocation payload limit (6 MB). A raw image is a whole body, so it is also the
# largest image anything in the project accepts.
MAX_BODY_BYTES: Final = 6_291_456
# The server refuses a JSON request with more images than this.
MAX_INSTANCES: Final = 64
# What the server runs through the network at once, and so what its clients send per request: one
# request is one forward pass. Within MAX_INSTANCES.
BATCH: Final = 16

ConfidenceLevel = Literal["low", "normal"]
CONFIDENCE_LEVELS: Final[tuple[ConfidenceLevel, ...]] = get_args(ConfidenceLevel)


class Instance(TypedDict):
    b64: str


class Request(TypedDict):
    instances: list[Instance]
    explain: NotRequired[bool]


class Gate(TypedDict):
    """The input gate's score and the threshold over which it refuses (None: a gate never fitted)."""

    score: float
    threshold: float | None


class Confidence(TypedDict):
    level: ConfidenceLevel
    reasons: list[str]
    # The site whose own images validated the model (training.adapt), when that is what the level rests on.
    validated_on: NotRequired[str]


class Explanation(TypedDict):
    type: Literal["cam"]
    format: Literal["png"]
    b64: str  # the predicted label's class activation map


@final  # so that ``"error" in answer`` tells a Refusal from a Prediction
class Prediction(TypedDict):
    label: str
    probabilities: dict[str, float]
    gate: Gate
    confidence: Confidence
    explanation: NotRequired[Explanation]


class InstanceError(TypedDict):
    instance: int | None  # None: the request as a whole
    reason: str  # machine-readable (model.core.errors: ``reason``)
    message: str
    gate: NotRequired[Gate]  # where the gate refused the image


@final
class Refusal(TypedDict):
    error: InstanceError


class ModelInfo(TypedDict):
    name: str
    version: str
    task: str
    labels: list[str]
    covid_threshold: NotRequired[float]  # the operating point, where one was chosen
    site_validation: NotRequired[str]  # the site whose own images validated the model (training.adapt)


class Response(TypedDict):
    model: ModelInfo
    predictions: list[Prediction | Refusal]
