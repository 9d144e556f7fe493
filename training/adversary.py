"""A source adversary: a linear head that predicts the source (hospital, collection) from the pooled
features through a gradient reversal layer (Ganin et al. 2016, domain-adversarial training).

The head learns to tell sources apart; the reversed gradient teaches the backbone to make that hard,
which is the source probe of ``training.sources`` turned into a training signal. The head is dropped
after training: the served graph never sees it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient times ``-weight`` backward."""
    out: torch.Tensor = _Reverse.apply(x, weight)
    return out


class SourceAdversary(nn.Module):
    def __init__(self, num_features: int, num_sources: int) -> None:
        super().__init__()
        self.head = nn.Linear(num_features, num_sources)

    def forward(self, pooled: torch.Tensor, weight: float) -> torch.Tensor:
        logits: torch.Tensor = self.head(reverse_gradient(pooled, weight))
        return logits
