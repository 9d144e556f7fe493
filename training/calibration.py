"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits by NLL."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> float:
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    # Bounded so that a degenerate validation split cannot produce an absurd calibration.
    return float(log_t.exp().clamp(0.05, 20.0).item())
