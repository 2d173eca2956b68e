"""Model backends: one module per way of running a model (python, onnxruntime, tensorrt)."""
