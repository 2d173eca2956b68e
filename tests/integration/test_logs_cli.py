"""`asyncinfer serve --log-verbose`: JSON log lines from the server and its workers, with the
error id a client saw in `internal error (id=...)`."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest

from asyncinfer.client import AsyncClient, Method
from asyncinfer.errors import Unknown
from asyncinfer.testing import ServerProcess
from tests.protos import ping_pb2

ROOT = pathlib.Path(__file__).parents[2]
PING = Method.of(ping_pb2.DESCRIPTOR.services_by_name["Ping"].methods_by_name["Ping"])


def records(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_internal_error_is_logged_as_json_with_the_id_the_client_saw(
    workers: int,
) -> None:
    argv = [
        sys.executable, "-m", "asyncinfer.cli", "serve", "--app", "tests.services:build",
        "--port", "0", "--workers", str(workers), "--log-verbose", "1",
    ]  # fmt: skip
    with ServerProcess(argv, workers=workers, cwd=str(ROOT)) as proc:
        async with AsyncClient(proc.address, PING) as client:
            with pytest.raises(Unknown, match=r"internal error \(id=\w+\)") as caught:
                await client.call(ping_pb2.PingRequest(payload=b"raise"))
        match = re.search(r"id=(\w+)", caught.value.message)
        assert match is not None
        error_id = match.group(1)
        proc.wait_for(
            lambda: any(r.get("error_id") == error_id for r in records(proc.lines)), "the record"
        )
        (record,) = [r for r in records(proc.lines) if r.get("error_id") == error_id]
        assert record["level"] == "error"
        assert record["where"] == "/asyncinfer.examples.Ping/Ping"
        assert "secret detail" in str(record["exc"])  # in the log, never sent to the client
        assert "secret detail" not in caught.value.message
        assert proc.stop() == 0
