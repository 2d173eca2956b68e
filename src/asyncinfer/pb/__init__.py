"""Generated protobuf and gRPC modules, compiled from protos/asyncinfer/pb at build time."""
