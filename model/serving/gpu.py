"""The served TorchScript graph made fast on a GPU: half precision, channels-last, and a CUDA graph at
batch 1.

- **fp16, channels-last**: tensor cores take half-precision NHWC convolutions; the weights are cast
  once at load. Whether fp16 is served is ``model.builder.half``'s guard's verdict (``metadata.json``
  ``fp16``), the same rule as int8 on the CPU.
- **CUDA graph at batch 1**: one image is a few hundred small kernels, and launching them one by one
  from Python leaves the GPU waiting on the CPU; a captured graph launches them all with one call. It
  replays the kernels it captured on fixed buffers, so the answers are those of the module itself.

Imported only where torch is (the endpoint's container, ``model.builder.half``): never in a Lambda.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import torch

logger = logging.getLogger(__name__)

WARMUP_RUNS: Final = 3  # TorchScript's profiling executor settles its graph in the first runs


def half_precision(module: Any) -> Any:
    """``module`` (a TorchScript module) with fp16 weights in channels-last layout."""
    return module.half().to(memory_format=torch.channels_last)


def half_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.half().contiguous(memory_format=torch.channels_last)


class BatchOfOne:
    """``module`` for batches of one, replayed from a CUDA graph captured on the first call; where
    capture fails (an operation of this module, or this driver, that a graph cannot hold) it runs the
    module itself: slower, the same answers.

    The graph reads its input from, and writes its outputs to, buffers of its own: each call copies
    the input in and the outputs out under one lock, so concurrent callers never share a buffer, and
    no other thread's work on the GPU can break the capture (``thread_local`` capture mode).
    """

    def __init__(self, module: Any) -> None:
        self._module = module
        self._lock = threading.Lock()
        self._tried = False
        self.graph: torch.cuda.CUDAGraph | None = None

    def _capture(self, example: torch.Tensor) -> None:
        self._input = example.clone()
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._module(self._input)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._outputs = self._module(self._input)
        self.graph = graph

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    self._capture(batch)
                except RuntimeError:
                    logger.warning("CUDA graph capture failed: serving batch 1 without it", exc_info=True)
            if self.graph is None:
                return tuple(self._module(batch))
            self._input.copy_(batch)
            self.graph.replay()
            return tuple(output.clone() for output in self._outputs)
