"""The serving floor: what the SageMaker endpoint runs on top of the core (backends, the decision
policy, the handlers, the local endpoint). Torch only lazily, for the TorchScript and Neo backends."""
