"""The model contract that travels with every artifact as ``metadata.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.core.contract import INPUT_NAME, METADATA_FILE, OUTPUT_NAMES


@dataclass
class ModelMetadata:
    name: str
    version: str
    arch: str
    task: str
    labels: list[str]
    input_size: int
    preset: str
    temperature: float = 1.0
    input_name: str = INPUT_NAME
    output_names: list[str] = field(default_factory=lambda: list(OUTPUT_NAMES))
    # The out-of-distribution gate's policy (``training.gate``): threshold, method, how it was fitted.
    # Empty: the gate was never fitted and refuses nothing.
    gate: dict[str, Any] = field(default_factory=dict)
    # The lung-field network's policy (``model.core.lung_fields.policy``, from ``model.builder.lung_network``'s
    # checkpoint): its plausibility rule, input size and how it was measured. Empty: the package has no
    # lung-field network, and the gate checks orientation with turned copies instead.
    lung_fields: dict[str, Any] = field(default_factory=dict)
    # The COVID operating point (``training.operating_point``): call covid at p(covid) >= threshold,
    # chosen on validation data for a target sensitivity. Empty: the most probable label wins.
    operating_point: dict[str, Any] = field(default_factory=dict)
    # How the model did on sources (hospitals) it never saw, from ``training.loso``, and whether that
    # met the project's goal. Empty or unmet: every answer says its confidence is low.
    validation: dict[str, Any] = field(default_factory=dict)
    # How the model did on one site's own labelled images, by patient-grouped cross-validation of its
    # fine-tuning there (``training.adapt``): site name, n, figures with intervals, and whether they met
    # the goal. Met: the answers' confidence rests on that site's evidence instead.
    site_validation: dict[str, Any] = field(default_factory=dict)
    # What wrote the served artifacts ({"torch": "2.14.1", "onnx_opset": 17}): SageMaker Neo compiles
    # only TorchScript written by the framework versions it supports (``model.builder.deploy``).
    exported_with: dict[str, Any] = field(default_factory=dict)
    # The int8 graph's guard (``model.builder.quantize``): figures against fp32 and whether int8 is served.
    int8: dict[str, Any] = field(default_factory=dict)
    # The fp16 GPU path's guard (``model.builder.half``): figures against fp32 and whether fp16 is served.
    fp16: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def gate_threshold(self) -> float | None:
        threshold = self.gate.get("threshold")
        return float(threshold) if threshold is not None else None

    @property
    def gate_upright_threshold(self) -> float | None:
        threshold = self.gate.get("upright_threshold")
        return float(threshold) if threshold is not None else None

    @property
    def has_lung_fields(self) -> bool:
        return bool(self.lung_fields)

    @property
    def preset_needs_lungs(self) -> bool:
        from model.core.presets import get_preset

        return bool(get_preset(self.preset).lungs)

    @property
    def covid_threshold(self) -> float | None:
        threshold = self.operating_point.get("threshold")
        return float(threshold) if threshold is not None else None

    @property
    def int8_served(self) -> bool:
        return self.int8.get("served") is True

    @property
    def fp16_served(self) -> bool:
        return self.fp16.get("served") is True

    @property
    def validated_on_unseen_sources(self) -> bool:
        return self.validation.get("meets_goal") is True

    @property
    def validated_on_site(self) -> bool:
        return self.site_validation.get("meets_goal") is True

    @property
    def input_shape(self) -> list[int]:
        """Batch-1 shape recorded for tracing and for SageMaker Neo's DataInputConfig."""
        return [1, 1, self.input_size, self.input_size]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = self.input_shape
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, directory: Path) -> ModelMetadata:
        return cls.from_dict(json.loads((directory / METADATA_FILE).read_text()))

    def write(self, directory: Path) -> Path:
        path = directory / METADATA_FILE
        path.write_text(self.to_json() + "\n")
        return path


def checkpoint_header(path: Path, key: str) -> dict[str, Any] | None:
    """The JSON this project stores under ``key`` in a safetensors file's header, or None where there is
    none; read without torch (``model.builder.checkpoint``, ``model.builder.lung_network``,
    ``model.builder.deploy``)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        header = handle.metadata() or {}
    if key not in header:
        return None
    value: dict[str, Any] = json.loads(header[key])
    return value
