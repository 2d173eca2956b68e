"""The gRPC front end of the inference service: one Context per RPC."""
