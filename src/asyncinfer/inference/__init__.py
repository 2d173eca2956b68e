"""The Triton-compatible inference service: protocol, tensors, model repository, Python models."""
