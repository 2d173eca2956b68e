"""The gRPC wire codecs: protobuf messages to the data plane's types and back."""
