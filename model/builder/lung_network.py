"""The lung-field network: a small U-Net with an orientation head, and its weights-only checkpoint.

Why this shape: lung fields are large, smooth regions whose outline is set by context (the
mediastinum, the diaphragm, the ribs' edge), so a U-Net at 128 px sees enough of the image (its
bottleneck spans the whole field) while its skips keep the outline sharp. Five levels of 8 to 128
channels: ~0.47 M parameters (0.9 MB in fp16, 1.9 MB as the fp32 export) and ~0.17 GMAC a pass, a
tenth of ResNet-18's at 224 px, so the gate's anatomy check costs far less than the three extra
backbone passes it replaces. The orientation head (global average pool of the bottleneck, one
linear layer) answers which way the image is turned from the same pass.

Input ``(N, 1, 128, 128)`` in [0, 1] (``model.core.lung_fields.lung_input``); outputs the lung-field logits
``(N, 1, 128, 128)`` and the turn logits ``(N, 4)`` (``model.core.lung_fields.TURNS``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.core.contract import LUNGS_ONNX_FILE, LUNGS_TORCHSCRIPT_FILE
from model.core.lung_fields import LUNG_SIZE, TURNS, LungFinder, LungRule
from model.serving.metadata import checkpoint_header

WIDTHS: Final = (8, 16, 32, 64, 128)
INPUT_NAME: Final = "lungs_input"
OUTPUT_NAMES: Final = ("lung_logits", "turn_logits")
_META_KEY: Final = "xray_lung_fields"
ONNX_OPSET: Final = 17


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class LungNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.down = nn.ModuleList([_block(1 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(len(widths) - 1))]
        )
        self.merge = nn.ModuleList([_block(2 * widths[i], widths[i]) for i in reversed(range(len(widths) - 1))])
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.turn = nn.Linear(widths[-1], len(TURNS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        turn = self.turn(x.mean(dim=(2, 3)))
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        mask: torch.Tensor = self.head(x)
        return mask, turn


def save_lung_checkpoint(net: LungNet, info: dict[str, Any], path: Path) -> Path:
    """fp16 weights (the network is trained in fp32; fp16 halves the file and moves no mask pixel that
    matters) and ``info`` (rule, figures) in the safetensors header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() else v).detach().contiguous().cpu() for k, v in net.state_dict().items()
    }
    save_file(state, str(path), metadata={_META_KEY: json.dumps(info, sort_keys=True)})
    return path


def read_lung_info(path: Path) -> dict[str, Any]:
    info = checkpoint_header(path, _META_KEY)
    if info is None:
        raise ValueError(f"{path} is not a lung-field checkpoint of this project (no {_META_KEY} header)")
    return info


def load_lung_checkpoint(path: Path) -> tuple[LungNet, dict[str, Any]]:
    info = read_lung_info(path)
    net = LungNet()
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    net.load_state_dict(state)
    return net.eval(), info


def torch_graph(net: LungNet) -> Any:
    """The network as a ``model.core.lung_fields.LungGraph`` (NumPy in and out), for training and tools."""
    import numpy as np

    device = next(net.parameters()).device

    @torch.no_grad()
    def run(batch: Any) -> tuple[Any, Any]:
        net.eval()
        mask, turn = net(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
        return mask.float().cpu().numpy(), turn.float().cpu().numpy()

    return run


def load_finder(path: Path) -> LungFinder:
    """The checkpoint's network and fitted rule, on the CPU, as training and the tools use it."""
    net, info = load_lung_checkpoint(path)
    return LungFinder(torch_graph(net), LungRule.from_dict(info.get("rule", {})))


def export_lungs(net: LungNet, out_dir: Path, formats: Iterable[str] = ("torchscript", "onnx")) -> dict[str, Path]:
    """``lungs.pt`` (TorchScript: the GPU and CPU torch paths; always, it is small and torch alone writes
    it) and, where ``formats`` has ``onnx``, ``lungs.onnx`` (ONNX Runtime; ``model.builder.neo_export`` runs on
    a torch whose ONNX exporter differs, and asks TorchScript only)."""
    net = net.eval().float()
    example = torch.rand(1, 1, LUNG_SIZE, LUNG_SIZE, generator=torch.Generator().manual_seed(0))
    script_path, onnx_path = out_dir / LUNGS_TORCHSCRIPT_FILE, out_dir / LUNGS_ONNX_FILE
    written = {}
    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(script_path))
        written["lungs_torchscript"] = script_path
        if "onnx" in formats:
            torch.onnx.export(
                net,
                (example,),
                str(onnx_path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
            written["lungs_onnx"] = onnx_path
    return written
