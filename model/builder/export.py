"""Export a trained ``XrayNet`` into the served artifacts.

- ``model.pt``: traced TorchScript of ``ExportWrapper`` (SageMaker PyTorch container and Neo).
- ``model.onnx``: the same graph for ONNX Runtime, the fast torch-free CPU path.
- ``lungs.pt`` / ``lungs.onnx``: the lung-field network (``model.builder.lung_network``), where one is given;
  the classifier graph then runs each image once (the lung fields check orientation).
- ``metadata.json``: the model contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import torch

from model.builder.architectures import ExportWrapper, XrayNet
from model.builder.lung_network import LungNet, export_lungs
from model.core.contract import INPUT_NAME, ONNX_FILE, OUTPUT_NAMES, TORCHSCRIPT_FILE
from model.serving.metadata import ModelMetadata

FORMATS: Final = ("torchscript", "onnx")
ONNX_OPSET: Final = 17


def _example(meta: ModelMetadata) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(meta.input_shape, generator=generator)


def _wrapper(net: XrayNet, meta: ModelMetadata) -> ExportWrapper:
    return ExportWrapper(net, turned=not meta.has_lung_fields).eval()


def export_torchscript(net: XrayNet, meta: ModelMetadata, out_dir: Path) -> Path:
    wrapper = _wrapper(net, meta)
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, _example(meta), check_trace=False)  # type: ignore[no-untyped-call]
    path = out_dir / TORCHSCRIPT_FILE
    torch.jit.save(traced, str(path))
    return path


def export_onnx(net: XrayNet, meta: ModelMetadata, out_dir: Path) -> Path:
    wrapper = _wrapper(net, meta)
    path = out_dir / ONNX_FILE
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (_example(meta),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def export_model(
    net: XrayNet,
    meta: ModelMetadata,
    out_dir: Path,
    formats: Iterable[str] = FORMATS,
    lungs: tuple[LungNet, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write the requested artifacts and ``metadata.json`` into ``out_dir``; return their paths.
    ``lungs``: the lung-field network and its policy (``model.builder.lung_network.load_lung_checkpoint``)."""
    formats = tuple(formats)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    written = {}
    if lungs is not None:
        meta.lung_fields = lungs[1]
        written.update(export_lungs(lungs[0], out_dir, formats))
    elif meta.preset_needs_lungs:
        raise ValueError(f"preset {meta.preset} crops to the lung fields: export it with its lung-field network")
    exporters = {"torchscript": export_torchscript, "onnx": export_onnx}
    meta.exported_with = {"torch": torch.__version__.split("+")[0], "onnx_opset": ONNX_OPSET}
    for fmt in formats:
        if fmt not in exporters:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
        written[fmt] = exporters[fmt](net, meta, out_dir)
    written["metadata"] = meta.write(out_dir)
    return written
