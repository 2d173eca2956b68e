"""The gRPC wire codecs of the inference protocol: protobuf messages to the data plane's types and back."""
