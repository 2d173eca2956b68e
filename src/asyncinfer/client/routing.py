"""Sticky routing of sequence requests: the header a load balancer hashes so that every request
of one sequence reaches the same backend.

Our clients add ``asyncinfer-sequence-id: <id>`` to every ModelInfer request that carries a
``sequence_id`` parameter; deploy/nginx hashes on it. tritonclient users set the same header
themselves: ``client.infer(..., sequence_id=42, headers={"asyncinfer-sequence-id": "42"})``.
"""

from __future__ import annotations

from ..pb.inference import grpc_service_pb2 as pb

__all__ = ["SEQUENCE_HEADER", "Metadata", "routing_metadata"]

SEQUENCE_HEADER = "asyncinfer-sequence-id"

Metadata = tuple[tuple[str, str], ...]


def routing_metadata(request: object) -> Metadata | None:
    """The sequence header for a ModelInfer request of a sequence; None for anything else."""
    if not isinstance(request, pb.ModelInferRequest) or "sequence_id" not in request.parameters:
        return None
    parameter = request.parameters["sequence_id"]
    kind = parameter.WhichOneof("parameter_choice")
    value = getattr(parameter, kind) if kind is not None else None
    if value is None or value == 0 or value == "":
        return None  # 0 / "": not part of a sequence (Triton's convention)
    return ((SEQUENCE_HEADER, str(value)),)
