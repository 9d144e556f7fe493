"""What the int8 graph needs, kept beside a checkpoint, so that ``make model`` builds it without data.

    python -m model.builder.quantize ... --recipe model/default/int8.json     # once, with the training data
    python -m model.builder                                              # then anywhere: int8 from the recipe

``model.builder.quantize`` calibrates activation ranges on training images and guards each plan on the test
fold; both need the data, which a new user, CI and a container build do not have. The recipe records
the outcome once: the ranges (ONNX Runtime's calibration cache), the convolutions the served plan keeps
fp32, the guard's verdict with its figures, and where and when it was measured.
``model.builder.quantize.apply_recipe`` quantizes a freshly exported graph with those ranges and that plan (no
calibration runs) and records the verdict in ``metadata.json``, so the runtime serves int8 exactly
where the guard passed it.

A recipe belongs to one set of weights and one exported graph: ``fingerprint`` hashes the fp32 graph's
node names and initializers, and a recipe whose fingerprint differs (other weights, another export of
the graph) is not applied: the package then serves fp32, and says why in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from model.core.contract import ONNX_FILE

logger = logging.getLogger(__name__)

RECIPE_VERSION: Final = 1


def fingerprint(onnx_path: Path) -> str:
    """sha256 of the graph's node names and op types, then each initializer's name and bytes, in order:
    the same for two exports of the same weights through the same graph, whatever the exporter's
    metadata (producer version, doc strings)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    digest = hashlib.sha256()
    for node in graph.node:
        digest.update(f"{node.name}\0{node.op_type}\0".encode())
    for init in sorted(graph.initializer, key=lambda t: t.name):
        digest.update(init.name.encode() + b"\0")
        digest.update(numpy_helper.to_array(init).tobytes())
    return digest.hexdigest()


@dataclass
class Int8Recipe:
    fingerprint: str
    # ONNX Runtime's calibration cache as JSON (``quantize_static(calibration_cache_path=...)``).
    ranges: dict[str, Any]
    # The convolutions the served plan keeps fp32 (``model.builder.quantize.FP32_LADDER``).
    keep_fp32: list[str]
    # ``model.builder.quantize``'s verdict: figures against fp32, ``served``, every attempt.
    verdict: dict[str, Any]
    # Where and when the ranges were calibrated and the plan guarded.
    provenance: dict[str, Any] = field(default_factory=dict)
    version: int = RECIPE_VERSION

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> Int8Recipe:
        raw = json.loads(path.read_text())
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def from_run(artifacts: Path, ranges: Path, verdict: dict[str, Any], provenance: dict[str, Any]) -> Int8Recipe:
    """The recipe of a ``model.builder.quantize`` run on ``artifacts``: its ranges file and its verdict."""
    figures = {k: v for k, v in verdict.items() if k != "fp32"}
    return Int8Recipe(
        fingerprint(artifacts / ONNX_FILE),
        json.loads(ranges.read_text()),
        list(verdict.get("fp32", [])),
        figures,
        provenance,
    )
