"""Chest X-ray classifier: labels, preprocessing, model contract and serving.

Importing this package has no side effects and does not import torch: the serving path
(ONNX Runtime) and the Lambdas use the torch-free modules only.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
