"""Chest X-ray classifier: the model's code in three floors, each importing only the ones below it.

- ``model.core``: torch-free; labels, the model contract, errors, image decoding, the model's input.
  The Lambdas ship this floor.
- ``model.serving``: the endpoint's runtime on top of the core (backends, decision policy, handlers).
  ``model.tar.gz`` ships the core and this floor.
- ``model.builder``: networks, checkpoints, export, quantization, packaging, deployment (torch, boto3).

Importing this package has no side effects and does not import torch.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
