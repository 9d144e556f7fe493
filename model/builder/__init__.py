"""The builder floor: networks, checkpoints, export, quantization, packaging and deployment (torch,
ONNX, boto3). ``python -m model.builder`` builds the served artifacts (``model.builder.artifacts``)."""
