"""nginx as the L7 load balancer in front of asyncinfer servers, all real, on 127.0.0.1: the
shipped templates render into configs nginx accepts; a rolling restart under a steady siege
fails no call; a SIGKILLed backend fails only the calls it had; sequences stick to one backend.

Each siege lasts a few seconds at a rate two shared cores sustain with room to spare, so that
what is measured is the load balancing, not an overloaded machine.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from asyncinfer.client import AsyncClient, Constant, Method, Siege, SiegeResult
from asyncinfer.client.routing import SEQUENCE_HEADER
from asyncinfer.errors import RpcError
from asyncinfer.pb.inference import grpc_service_pb2 as pb

from ..._nginx import nginx_lb
from .conftest import Backends

INFER = Method.of(
    pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name["ModelInfer"]
)
RATE = 150.0  # calls/s

pytestmark = pytest.mark.timeout(120)


def simple_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.arange(16, dtype=np.int32).tobytes())
    return request


@dataclasses.dataclass(frozen=True)
class Call:
    started: float
    ended: float
    error: str | None


class RecordingClient(AsyncClient):
    """An AsyncClient that remembers when each call started and how it ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[Call] = []

    async def call(self, request: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        started = time.monotonic()
        try:
            reply = await super().call(request, timeout=timeout)
        except RpcError as exc:
            self.log.append(Call(started, time.monotonic(), f"{type(exc).__name__}: {exc}"))
            raise
        self.log.append(Call(started, time.monotonic(), None))
        return reply


async def siege(address: str, seconds: float, during: Any) -> tuple[SiegeResult, RecordingClient]:
    """A constant-rate siege through ``address`` while ``during()`` runs in a thread."""
    async with RecordingClient(address, INFER, timeout=10) as client:
        load = Siege(client, Constant(RATE), duration=seconds, on_progress=None)
        result, _ = await asyncio.gather(load.run(simple_request()), asyncio.to_thread(during))
    print(f"\n{result.report.line()} throttled={result.throttled}")
    return result, client


def test_the_shipped_templates_render_into_configs_nginx_accepts(
    nginx: str, tmp_path: Path
) -> None:
    site = nginx_lb.site(
        ["127.0.0.1:8101", "127.0.0.1:8102"],
        "127.0.0.1:18001",
        http_backends=["127.0.0.1:8201", "127.0.0.1:8202"],
        http_listen="127.0.0.1:18000",
        access_log=str(tmp_path / "access.log"),
        down=["127.0.0.1:8102"],
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_lb.render(nginx_lb.MAIN_TEMPLATE, PREFIX=str(tmp_path), SITES=site))
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    directives = [line.split("#")[0].strip() for line in site.splitlines()]
    assert "grpc_pass grpc://$asyncinfer_grpc_upstream;" in directives
    # Retries on connection errors only: never `non_idempotent`, so a sent call is not re-sent.
    assert "grpc_next_upstream error timeout;" in directives
    assert not any("non_idempotent" in line for line in directives)
    assert "server 127.0.0.1:8102 max_fails=1 fail_timeout=5s down;" in site


def test_a_render_without_a_field_or_a_backend_is_an_error() -> None:
    with pytest.raises(nginx_lb.NginxError, match=r"needs \['SITES'\]"):
        nginx_lb.render(nginx_lb.MAIN_TEMPLATE, PREFIX="/tmp")
    with pytest.raises(nginx_lb.NginxError, match="at least one backend"):
        nginx_lb.site([], "127.0.0.1:1")
    with pytest.raises(nginx_lb.NginxError, match="cannot mark"):
        nginx_lb.site(["127.0.0.1:1"], "127.0.0.1:2", down=["127.0.0.1:3"])


async def test_rolling_restart_of_two_backends_fails_no_call(
    nginx: str, backends: Backends, tmp_path: Path
) -> None:
    backends.start(2)
    with nginx_lb.Nginx(backends.addresses, folder=tmp_path / "nginx") as lb:
        codes = []

        def rolling_restart() -> None:
            time.sleep(1.0)
            for index, address in enumerate(backends.addresses):
                lb.drain(address)  # nginx stops sending it calls
                codes.append(backends.restart(index))  # SIGTERM: drains, exits; starts again
                lb.restore(address)
                time.sleep(1.0)

        result, client = await siege(lb.grpc_address, 5.0, rolling_restart)
        counts = lb.upstream_counts()
    assert codes == [0, 0]
    assert [c.error for c in client.log if c.error] == []
    assert result.report.ok == result.report.calls >= RATE * 4
    assert set(counts) == set(backends.addresses), counts  # both served, nginx answered none


async def test_sigkill_of_one_of_three_fails_only_its_calls_in_flight(
    nginx: str, backends: Backends, tmp_path: Path
) -> None:
    backends.start(3)
    killed_at: list[float] = []
    with nginx_lb.Nginx(backends.addresses, folder=tmp_path / "nginx", fail_timeout=2) as lb:

        def kill_one() -> None:
            time.sleep(1.5)
            killed_at.append(time.monotonic())
            backends.kill(1)

        result, client = await siege(lb.grpc_address, 4.0, kill_one)
        records = lb.records()
    (kill,) = killed_at
    failed = [c for c in client.log if c.error]
    # Failures are calls that were on their way to (or in) the killed backend when it died:
    # started before it died, ended as its connections broke. Every later call succeeded.
    assert all(c.started < kill + 0.2 and c.ended < kill + 1.0 for c in failed), failed
    assert all(c.error is None for c in client.log if c.started > kill + 0.2)
    assert all("UNAVAILABLE" in str(c.error).upper() for c in failed), failed
    assert len(failed) <= 10, failed
    assert result.report.ok >= result.report.calls - len(failed)
    answered = collections.Counter(r.answered_by for r in records)
    assert set(answered) - {""} == set(backends.addresses), answered
    print(f"per backend: {dict(answered)}; failed {len(failed)} (in flight at the kill)")


def _sequence_request(sequence: int, step: int, last: bool) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="simple_sequence")
    request.inputs.add(name="INPUT", datatype="INT32", shape=[1, 1])
    request.raw_input_contents.append(np.array([[step]], np.int32).tobytes())
    request.parameters["sequence_id"].int64_param = sequence
    request.parameters["sequence_start"].bool_param = step == 0
    request.parameters["sequence_end"].bool_param = last
    return request


async def test_sequences_stick_to_one_backend_by_the_header_our_clients_set(
    nginx: str, backends: Backends, tmp_path: Path
) -> None:
    backends.start(3)
    sequences, steps = range(1001, 1013), 4
    with nginx_lb.Nginx(backends.addresses, folder=tmp_path / "nginx") as lb:
        async with AsyncClient(lb.grpc_address, INFER, timeout=10) as client:
            for step in range(steps):  # interleaved: every sequence advances one step per round
                replies = await asyncio.gather(
                    *(client.call(_sequence_request(s, step, step == steps - 1)) for s in sequences)
                )
                for reply in replies:
                    (value,) = np.frombuffer(reply.raw_output_contents[0], np.int32)
                    assert value == step + (step == 0)  # (INPUT + START) * READY
        records = lb.records()
    by_sequence: dict[str, set[str]] = collections.defaultdict(set)
    for record in records:
        by_sequence[record.sequence].add(record.answered_by)
    assert sorted(by_sequence) == sorted(str(s) for s in sequences)
    assert all(len(answered) == 1 for answered in by_sequence.values()), by_sequence
    assert len(set().union(*by_sequence.values())) >= 2  # sequences still spread over backends


def test_tritonclient_users_set_the_header_themselves(
    nginx: str, backends: Backends, tmp_path: Path
) -> None:
    backends.start(3)

    def run_sequence(client: grpcclient.InferenceServerClient, sequence: int, sticky: bool) -> None:
        headers = {SEQUENCE_HEADER: str(sequence)} if sticky else None
        for step in range(3):
            tensor = grpcclient.InferInput("INPUT", [1, 1], "INT32")
            tensor.set_data_from_numpy(np.array([[step]], np.int32))
            client.infer(
                "simple_sequence", [tensor], sequence_id=sequence, headers=headers,
                sequence_start=step == 0, sequence_end=step == 2,
            )  # fmt: skip

    with (
        nginx_lb.Nginx(backends.addresses, folder=tmp_path / "nginx") as lb,
        grpcclient.InferenceServerClient(lb.grpc_address) as client,
    ):
        for sequence in range(1, 7):
            run_sequence(client, sequence, sticky=True)
        # Without the header nginx round-robins, and the second request of a sequence
        # reaches a backend that never saw its start.
        with pytest.raises(InferenceServerException, match="must specify the START flag"):
            run_sequence(client, 99, sticky=False)


def test_access_log_records_name_the_backend_that_answered() -> None:
    retried = nginx_lb.parse_record(
        't upstream="127.0.0.1:1, 127.0.0.1:2" status=200 upstream_status="502, 200" '
        'grpc_status="0" sequence="-" request_time=0.001'
    )
    assert (retried.answered_by, retried.grpc_status, retried.sequence) == ("127.0.0.1:2", "0", "")
    refused = nginx_lb.parse_record(
        't upstream="127.0.0.1:1 : asyncinfer_grpc" status=204 upstream_status="502 : 502" '
        'grpc_status="-" sequence="7" request_time=0.000'
    )
    assert (refused.answered_by, refused.upstreams, refused.sequence) == (
        "",
        ("127.0.0.1:1", "asyncinfer_grpc"),
        "7",
    )
