"""The torch-free floor: labels, the model contract, errors, settings, image decoding and the
model's input. The Lambdas ship this folder whole (``model.builder.package.LAMBDA_FLOORS``); nothing here
imports torch, ONNX or ONNX Runtime, or a module of another floor."""
