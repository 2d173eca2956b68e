"""Regression test: a small gzip request that inflates past the receive limit is refused with
RESOURCE_EXHAUSTED, and the server never holds the inflated size. On main the inference
service's limit was 2 GiB, so a 256 MiB inflation was allocated in full (grpc core inflates up
to the limit, then refuses)."""

from __future__ import annotations

import pathlib
import re
import sys

import grpc

from asyncinfer.pb.inference import grpc_service_pb2 as pb
from asyncinfer.testing import ServerProcess

INFER = "/inference.GRPCInferenceService/ModelInfer"


def _peak_mib(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]


def test_a_compressed_request_inflating_past_the_limit(simple_repository: pathlib.Path) -> None:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve",
        "--model-repository", str(simple_repository), "--grpc-port", "0",
        "--allow-http", "false", "--allow-metrics", "false",
    ]  # fmt: skip
    with ServerProcess(argv) as proc:
        before = _peak_mib(proc.pid)
        request = pb.ModelInferRequest(model_name="simple")
        request.raw_input_contents.append(bytes(256 << 20))  # ~256 KiB once gzipped
        with grpc.insecure_channel(
            proc.address,
            options=[("grpc.max_send_message_length", 1 << 30)],
            compression=grpc.Compression.Gzip,
        ) as channel:
            call = channel.unary_unary(
                INFER,
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=None,
            )
            try:
                call(request, timeout=60)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details()
            else:
                raise AssertionError("a 256 MiB request was accepted")
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in (details or "")
            ready = channel.unary_unary(
                "/inference.GRPCInferenceService/ServerReady",
                request_serializer=pb.ServerReadyRequest.SerializeToString,
                response_deserializer=pb.ServerReadyResponse.FromString,
            )
            assert ready(pb.ServerReadyRequest(), timeout=10).ready  # still serving
        assert _peak_mib(proc.pid) - before < 128  # never held the 256 MiB
