"""Server reflection serves run-time loaded protos, imports included, to the `asyncinfer` CLI."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from asyncinfer import Resources, Server, UnaryContext, rpc_method
from asyncinfer.errors import InvalidArgument
from asyncinfer.protos import ProtoCache, load
from asyncinfer.testing import running


def _protos(root: Path) -> tuple[Path, str]:
    package = f"r{uuid.uuid4().hex[:12]}"  # the descriptor pool is process-wide: a fresh name
    (root / package).mkdir(parents=True)
    (root / package / "note.proto").write_text(
        f'syntax = "proto3";\npackage {package};\nmessage Note {{ string text = 1; }}\n'
    )
    service = root / package / "greeter.proto"
    service.write_text(
        f"""syntax = "proto3";
package {package};
import "{package}/note.proto";
import "google/protobuf/timestamp.proto";
import "asyncinfer/pb/tensor.proto";
service Greeter {{ rpc Greet(Hello) returns (Note); }}
message Hello {{ Note note = 1; google.protobuf.Timestamp at = 2; asyncinfer.Tensor x = 3; }}
"""
    )
    return service, package


async def test_cli_finds_and_calls_a_runtime_loaded_rpc_through_reflection(
    tmp_path: Path,
) -> None:
    service, package = _protos(tmp_path / "protos")
    pb2: Any = load(service, include=[tmp_path / "protos"], cache=ProtoCache(tmp_path / "cache"))

    class Greet(UnaryContext[Any, Any, Resources]):
        method = rpc_method(pb2, "Greeter", "Greet")

        async def execute(self, request: Any) -> Any:
            if not (request.note.text and request.at.seconds and request.x.shape):
                raise InvalidArgument(f"a field did not arrive: {request}")
            return type(request.note)(text=f"hello {request.note.text}")

    server = Server(port=0)
    server.add_service(Resources(), Greet)
    request = (
        '{"note": {"text": "world"}, "at": "2024-01-01T00:00:00Z", '
        '"x": {"datatype": "FP32", "shape": [1], "raw": "AACAPw=="}}'
    )
    async with running(server) as address:
        cli = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "asyncinfer.cli", "sync", address],
            *[f"/{package}.Greeter/Greet", "--request", request, "--count", "3"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), timeout=60)
    assert cli.returncode == 0, err.decode()
    assert "[sync] 3/3 ok" in out.decode(), out.decode()
