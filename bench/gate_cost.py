"""What the out-of-distribution gate costs at inference: the served graph against two lighter ones.

    python -m bench.gate_cost [--seconds 3] [--archs resnet18,resnet50] [--batch 8]

Side by side in one run, ONNX Runtime on this machine (sessions made as served,
``model.serving.backends.onnx_session``): (a) logits and CAM only, as before the gate;
(b) plus the gate score of the image as it is; (c) the graph served without a lung-field network,
which also scores the image turned by 90, 180 and 270 degrees in the same batch (for
``not_upright``); (d) what a package with the lung-field network serves: that network at 128 px,
its NumPy reading (``model.core.lung_fields.analyse``: mask, orientation, shape measures), then the
classifier graph once (``ExportWrapper(turned=False)``). Prints ms per image and the ratios to (a).
Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from bench.inference import timeit
from model.builder.architectures import ARCHS, ExportWrapper, XrayNet, build_model
from model.builder.lung_network import LungNet
from model.core.lung_fields import LUNG_SIZE, LungRule, analyse
from model.core.presets import get_preset
from model.serving.backends import onnx_session


class NoGate(nn.Module):
    def __init__(self, net: XrayNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, _ = self.net.features(x)
        cam = torch.einsum("kc,nchw->nkhw", self.net.classifier.weight, feats)
        return self.net.classifier(feats.mean(dim=(2, 3))), cam


class UprightOnly(NoGate):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        feats, _ = self.net.features(x)
        pooled = feats.mean(dim=(2, 3))
        return self.net.classifier(pooled), self.net.gate(pooled)


def session(module: nn.Module, size: int, path: Path) -> ort.InferenceSession:
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            (torch.rand(1, 1, size, size),),
            str(path),
            input_names=["input0"],
            dynamic_axes={"input0": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return onnx_session(path, providers=["CPUExecutionProvider"])


def with_lungs(lungs: ort.InferenceSession, served: ort.InferenceSession, x: np.ndarray, small: np.ndarray) -> None:
    """(d): the lung-field network and its reading, then the classifier once."""
    masks, turns = lungs.run(None, {"input0": small})
    rule = LungRule()
    for mask, turn in zip(masks, turns, strict=True):
        analyse(mask, turn, rule)
    served.run(None, {"input0": x})


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    header = f"{'arch':<10} {'batch':>5} {'(a) no gate':>12} {'(b) gate':>10} {'(c) turned':>11} {'(d) lungs':>10}"
    print(f"{header} {'b/a':>6} {'c/a':>6} {'d/a':>6}")
    rng = np.random.default_rng(0)
    for arch in args.archs.split(","):
        size = get_preset(ARCHS[arch].preset).size
        net = build_model(arch, "multiclass").eval()
        x = rng.random((args.batch, 1, size, size), dtype=np.float32)
        small = rng.random((args.batch, 1, LUNG_SIZE, LUNG_SIZE), dtype=np.float32)
        per_image = []
        with tempfile.TemporaryDirectory() as tmp:
            variants = (("a", NoGate(net)), ("b", UprightOnly(net)), ("c", ExportWrapper(net)))
            for name, module in variants:
                s = session(module, size, Path(tmp) / f"{name}.onnx")
                per_image.append(1000 * timeit(lambda s=s, x=x: s.run(None, {"input0": x}), args.seconds) / args.batch)
            lungs = session(LungNet(), LUNG_SIZE, Path(tmp) / "lungs.onnx")
            served = session(ExportWrapper(net, turned=False), size, Path(tmp) / "d.onnx")
            run_d = functools.partial(with_lungs, lungs, served, x, small)
            per_image.append(1000 * timeit(run_d, args.seconds) / args.batch)
        a, b, c, d = per_image
        print(
            f"{arch:<10} {args.batch:>5} {a:>9.1f} ms {b:>7.1f} ms {c:>8.1f} ms {d:>7.1f} ms "
            f"{b / a:>6.2f} {c / a:>6.2f} {d / a:>6.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per variant (default: %(default)s)")
    parser.add_argument("--archs", default="resnet18,resnet50", help="(default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="images per call (default: %(default)s)")
    main(parser.parse_args())
