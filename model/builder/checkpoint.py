"""Weights-only checkpoints (safetensors) that rebuild their model alone.

The file stores the network's state dict and the ``ModelMetadata`` JSON in its header, so
``load_checkpoint(path)`` needs nothing else: the bundled default model is one such file.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from model.builder.architectures import XrayNet, build_model
from model.serving.metadata import ModelMetadata, checkpoint_header

_META_KEY = "xray_metadata"
GATE_PREFIX = "gate."


def save_checkpoint(net: XrayNet, meta: ModelMetadata, path: Path, half: bool = False) -> Path:
    """``half`` stores floating tensors as fp16 (load_checkpoint restores fp32 parameters)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    if half:
        # The gate's whitening matrix keeps fp32: its distances square any rounding.
        state = {
            k: v.half() if v.is_floating_point() and not k.startswith(GATE_PREFIX) else v for k, v in state.items()
        }
    save_file(state, str(path), metadata={_META_KEY: meta.to_json()})
    return path


def read_checkpoint_metadata(path: Path) -> ModelMetadata:
    header = checkpoint_header(path, _META_KEY)
    if header is None:
        raise ValueError(f"{path} is not a model checkpoint of this project (no {_META_KEY} header)")
    return ModelMetadata.from_dict(header)


def load_checkpoint(path: Path) -> tuple[XrayNet, ModelMetadata]:
    meta = read_checkpoint_metadata(path)
    net = build_model(meta.arch, meta.task, pretrained="none", preset=meta.preset)
    missing, unexpected = net.load_state_dict(load_file(str(path)), strict=False)
    # A checkpoint from before the gate existed has no gate tensors: it loads with an unfitted gate.
    if unexpected or [k for k in missing if not k.startswith(GATE_PREFIX)]:
        raise ValueError(f"{path} does not match {meta.arch}: missing {missing}, unexpected {unexpected}")
    if missing and meta.gate:
        raise ValueError(f"{path} has a gate policy but no gate tensors")
    return net.eval(), meta
