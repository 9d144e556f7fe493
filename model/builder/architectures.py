"""Network definitions: torchvision backbones behind one gray-input, CAM-capable contract.

Every network takes ``(N, 1, H, W)`` float input in [0, 1], expands it to three channels and applies
its preprocessing preset's normalisation inside the graph, then ends in global average pooling and a
single linear layer. That last property makes a class activation map (CAM) a linear function of the
last convolutional features, so the exported graph can return it from the same forward pass.

The same pooled features feed the out-of-distribution gate (``FeatureGate``): a Mahalanobis distance
to the nearest training class, part of the exported graph so every backend (Neo included) computes it.

No side effects at import; nothing is downloaded unless ``pretrained="imagenet"`` is asked for.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
import torchvision
from torch import nn

from model.core import errors
from model.core.labels import labels_for
from model.core.presets import Preset, get_preset


@dataclass(frozen=True)
class ArchSpec:
    name: str
    preset: str
    num_features: int
    imagenet_weights: str


ARCHS: Final[dict[str, ArchSpec]] = {
    s.name: s
    for s in (
        ArchSpec("resnet50", "xray-gray-224-v1", 2048, "ResNet50_Weights.IMAGENET1K_V2"),
        ArchSpec("inception_v3", "xray-gray-299-v1", 2048, "Inception_V3_Weights.IMAGENET1K_V1"),
        ArchSpec("resnet18", "xray-gray-224-v1", 512, "ResNet18_Weights.IMAGENET1K_V1"),
        ArchSpec("mobilenet_v3_small", "xray-gray-224-v1", 576, "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
    )
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHS[name]
    except KeyError as exc:
        raise ValueError(f"unknown arch {name!r}; expected one of {', '.join(ARCHS)}") from exc


class _Backbone(nn.Module):
    """Returns the last conv feature map and, for InceptionV3, the input of the auxiliary head."""

    def __init__(self, body: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = self.body(x)
        if self.head is None:
            return mid, mid
        return self.head(mid), mid


class FeatureGate(nn.Module):
    """Squared Mahalanobis distance of pooled features to the nearest class mean, per feature.

    With a shared covariance ``S`` (fitted by ``training.gate``), ``whiten`` is ``W`` with
    ``W W^T = S^-1`` and ``centers[k] = mean_k @ W``, so the distance is one matrix product and a
    minimum. It is divided by the feature count: in-distribution images score about 1. Until it is
    fitted the gate is the identity around the origin and ``ModelMetadata.gate`` is empty, so nothing
    is refused.
    """

    whiten: torch.Tensor
    centers: torch.Tensor

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("whiten", torch.eye(num_features))
        self.register_buffer("centers", torch.zeros(num_classes, num_features))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        z = pooled @ self.whiten
        distances = ((z.unsqueeze(1) - self.centers.unsqueeze(0)) ** 2).mean(dim=2)
        score: torch.Tensor = distances.min(dim=1).values
        return score


class XrayNet(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        backbone: _Backbone,
        num_features: int,
        num_classes: int,
        preset: Preset,
        aux_head: nn.Module | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_features, num_classes)
        self.gate = FeatureGate(num_features, num_classes)
        self.aux_head = aux_head
        self.register_buffer("mean", torch.tensor(preset.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preset.std).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        feats, mid = self.backbone(x)
        return feats, mid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self.features(x)
        logits: torch.Tensor = self.classifier(self.dropout(feats.mean(dim=(2, 3))))
        return logits

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled last features: the classifier's and the gate's input."""
        feats, _ = self.features(x)
        return feats.mean(dim=(2, 3))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Logits, auxiliary logits (InceptionV3 in training mode only) and the pooled features."""
        feats, mid = self.features(x)
        pooled = feats.mean(dim=(2, 3))
        logits = self.classifier(self.dropout(pooled))
        aux = self.aux_head(mid) if self.aux_head is not None and self.training else None
        return logits, aux, pooled


class ExportWrapper(nn.Module):
    """The served graph: ``input0`` -> ``logits`` (N, K), ``cam`` (N, K, h, w), ``gate_score`` (N,) and
    ``turned_gate_score`` (N,).

    ``cam[n, k]`` is the classifier weight of class k applied to each spatial position of the last
    feature map, so ``cam.mean((2, 3)) + bias == logits``. ``gate_score`` is ``FeatureGate``'s
    distance; ``turned_gate_score`` is the lowest distance of the image turned by 90, 180 or 270
    degrees. A chest X-ray on its side scores lower turned than as it is, which is how the service
    tells it (``not_upright``) from an image that is no chest X-ray at all. The four orientations run
    as one batch. With ``turned=False`` (a package whose lung-field network checks orientation:
    ``model.core.lung_fields``) the image runs once and ``turned_gate_score`` repeats ``gate_score``, which
    the served rule never reads as turned.
    """

    def __init__(self, net: XrayNet, turned: bool = True) -> None:
        super().__init__()
        self.net = net
        self.turned = turned

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.turned:
            feats, _ = self.net.features(x)
            pooled = feats.mean(dim=(2, 3))
            cam = torch.einsum("kc,nchw->nkhw", self.net.classifier.weight, feats)
            score = self.net.gate(pooled)
            return self.net.classifier(pooled), cam, score, score
        n = x.shape[0]
        # torch.rot90 by flips and a transpose: ONNX has no rot90 operator.
        turned = torch.cat([x, x.flip(3).transpose(2, 3), x.flip(2).flip(3), x.transpose(2, 3).flip(3)])
        feats, _ = self.net.features(turned)
        pooled = feats.mean(dim=(2, 3))
        logits = self.net.classifier(pooled[:n])
        cam = torch.einsum("kc,nchw->nkhw", self.net.classifier.weight, feats[:n])
        scores = self.net.gate(pooled).reshape(4, -1)
        return logits, cam, scores[0], scores[1:].min(dim=0).values


def _torchvision_model(arch: ArchSpec, weights: str | None) -> nn.Module:
    if arch.name == "inception_v3":
        # transform_input stays off: the xray-gray-299 preset already scales to [-1, 1].
        inception: nn.Module = torchvision.models.inception_v3(
            weights=weights, aux_logits=True, transform_input=False, init_weights=weights is None
        )
        return inception
    model: nn.Module = torchvision.models.get_model(arch.name, weights=weights)
    return model


def _load_imagenet(arch: ArchSpec) -> nn.Module:
    try:
        return _torchvision_model(arch, arch.imagenet_weights)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise errors.PretrainedWeightsUnavailableError(
            f"could not load ImageNet weights {arch.imagenet_weights} (offline?). Download the .pth file "
            f"where there is network access and pass it with --pretrained PATH instead"
        ) from exc


def _split(arch: ArchSpec, net: Any, num_classes: int) -> tuple[_Backbone, nn.Module | None]:
    if arch.name.startswith("resnet"):
        body = nn.Sequential(*list(net.children())[:-2])
        return _Backbone(body), None
    if arch.name == "mobilenet_v3_small":
        return _Backbone(net.features), None
    if arch.name == "inception_v3":
        n = net  # torchvision's Inception3: its layers are attributes, typed loosely
        body = nn.Sequential(
            n.Conv2d_1a_3x3,
            n.Conv2d_2a_3x3,
            n.Conv2d_2b_3x3,
            n.maxpool1,
            n.Conv2d_3b_1x1,
            n.Conv2d_4a_3x3,
            n.maxpool2,
            n.Mixed_5b,
            n.Mixed_5c,
            n.Mixed_5d,
            n.Mixed_6a,
            n.Mixed_6b,
            n.Mixed_6c,
            n.Mixed_6d,
            n.Mixed_6e,
        )
        head = nn.Sequential(n.Mixed_7a, n.Mixed_7b, n.Mixed_7c)
        aux = n.AuxLogits
        aux.fc = nn.Linear(aux.fc.in_features, num_classes)
        return _Backbone(body, head), aux
    raise ValueError(f"no backbone split for {arch.name}")


def build_model(arch: str, task: str, pretrained: str = "none", preset: str | None = None) -> XrayNet:
    """Build an ``XrayNet`` for the preprocessing preset ``preset`` (default: the arch's own).

    ``pretrained``: ``"none"`` (random init), ``"imagenet"`` (torchvision's weights API; needs network
    or a warm torch hub cache) or a PATH to a torchvision ImageNet ``.pth`` state dict for the backbone.
    """
    spec = get_arch(arch)
    num_classes = len(labels_for(task))
    if pretrained == "none":
        base = _torchvision_model(spec, None)
    elif pretrained == "imagenet":
        base = _load_imagenet(spec)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise errors.PretrainedWeightsUnavailableError(
                f"--pretrained {pretrained!r} is neither 'imagenet', 'none' nor an existing weights file"
            )
        base = _torchvision_model(spec, None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, _ = base.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith(("fc.", "classifier.", "AuxLogits.fc"))]:
            raise errors.PretrainedWeightsUnavailableError(f"{path} does not hold {arch} backbone weights")
    backbone, aux = _split(spec, base, num_classes)
    return XrayNet(backbone, spec.num_features, num_classes, get_preset(preset or spec.preset), aux_head=aux)
