"""Reliability scenarios against a real `asyncinfer serve` process, shared by bench/soak.py
(full counts, by hand) and tests/reliability/ (smaller counts, in CI).

Each scenario takes its counts as arguments and returns a dict of figures; none asserts
anything (the tests do, soak.py reports). The server always runs as its own process, so a crash
shows as its exit, and its descriptors, threads, memory and children are read from /proc.

- ``bad_inputs``: a corpus of malformed ModelInferRequests and hypothesis-fuzzed byte strings;
  every answer is classified by status (UNKNOWN or INTERNAL to a client mistake is a failure,
  DEADLINE_EXCEEDED is a hang, the server's exit a crash).
- ``overload``: capacity measured closed-loop, then an open-loop rate of ``factor`` times it
  with a deadline per call: late answers, statuses, peak RSS and the time to recover.
- ``idle_clients``: idle connections and idle streams held open while other calls are served.
- ``load_unload``: model load/unload cycles, resources before and after.
- ``worker_kill``: SIGKILL of one of two workers under load: which calls fail.
- ``cancellations``: calls cancelled by their clients, then every admission counter and queue
  read from the metrics endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import random
import resource
import shutil
import signal
import statistics
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
from _harness import ROOT, RunningServer, ServerSpec, python, start_server, triton_ready
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc

EXAMPLES = ROOT / "examples" / "model_repository"
#: The models the scenarios use (a small repository starts fast).
MODELS = ("simple", "simple_identity", "simple_string", "simple_dyna_sequence", "mlp_onnx")
INFER = "/inference.GRPCInferenceService/ModelInfer"
#: Statuses a client mistake may get; UNKNOWN and INTERNAL are failures, DEADLINE_EXCEEDED a hang.
CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
}
DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES", "", "INT33", "fp32",
)  # fmt: skip


def raise_fd_limit() -> None:
    """The soft descriptor limit raised to the hard one (servers started later inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def small_repository(folder: Path) -> Path:
    """A repository of :data:`MODELS` (and `simple_process`: `simple` on process instances)."""
    for name in MODELS:
        shutil.copytree(EXAMPLES / name, folder / name, symlinks=True)
    process = folder / "simple_process"
    shutil.copytree(EXAMPLES / "simple", process, symlinks=True)
    config = (process / "config.pbtxt").read_text().replace('"simple"', '"simple_process"')
    config += 'parameters { key: "instance_kind" value { string_value: "process" } }\n'
    (process / "config.pbtxt").write_text(config)
    return folder


def serve(
    repository: Path,
    log_dir: Path,
    *,
    name: str = "asyncinfer",
    workers: int = 1,
    explicit: bool = False,
    ready_models: Sequence[str] = ("simple",),
) -> RunningServer:
    """`asyncinfer serve` over ``repository`` on a free port, with a metrics port."""
    command = [
        str(Path(python()).parent / "asyncinfer"), "serve",
        "--model-repository", str(repository), "--grpc-port", "{port}",
        "--metrics-port", "{port_metrics}", "--workers", str(workers), "--allow-http", "false",
    ]  # fmt: skip
    if explicit:
        command += ["--model-control-mode", "explicit"]
    spec = ServerSpec(name, command, triton_ready(*ready_models), start_timeout=180)
    return start_server(spec, log_dir)


# -- requests -----------------------------------------------------------------------------


def simple_request(value: int = 1) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.full(16, value, np.int32).tobytes())
    return request


def mlp_request() -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="mlp_onnx")
    request.inputs.add(name="features", datatype="FP32", shape=[1, 256])
    request.raw_input_contents.append(np.ones(256, np.float32).tobytes())
    return request


def _strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def corpus() -> list[tuple[str, bytes]]:
    """Malformed requests, named: every kind of client mistake the protocol allows."""
    cases: list[tuple[str, bytes]] = []

    def add(name: str, request: service_pb2.ModelInferRequest) -> None:
        cases.append((name, request.SerializeToString()))

    for model in ("", "nope", "simple\0", "../simple", "s" * 5000, "simple_process"):
        request = simple_request()
        request.model_name = model
        add(f"model {model[:12]!r}", request)
    for version in ("x", "-1", "0", "99", "1.0", "9" * 40, " 1"):
        request = simple_request()
        request.model_version = version
        add(f"version {version[:12]!r}", request)
    for datatype in DATATYPES:
        request = simple_request()
        request.inputs[0].datatype = datatype
        add(f"datatype {datatype!r}", request)
    for shape in ([], [16], [1, 15], [1, -16], [0, 16], [9, 16], [1, 16, 1], [2**62, 16],
                  [1, 2**40], [-(2**63), 16], [2**31, 2**31]):  # fmt: skip
        request = simple_request()
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend(shape)
        add(f"shape {shape}", request)
    for datatype in DATATYPES:
        request = mlp_request()
        request.inputs[0].datatype = datatype
        add(f"mlp_onnx datatype {datatype!r}", request)
    for shape in ([], [256], [1, 255], [33, 256], [0, 256], [1, 256, 1], [2**40, 256]):
        request = mlp_request()
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend(shape)
        add(f"mlp_onnx shape {shape}", request)
    for size in (0, 1, 63, 65, 128, 4096):
        request = simple_request()
        request.raw_input_contents[0] = b"\1" * size
        add(f"raw size {size}", request)
    for count in (0, 1, 3):
        request = simple_request()
        del request.raw_input_contents[:]
        request.raw_input_contents.extend([b"\0" * 64] * count)
        add(f"raw contents x{count}", request)
    for name in ("", "INPUT0", "INPUT2", "input0", "\0"):
        request = simple_request()
        request.inputs[1].name = name
        add(f"input name {name!r}", request)
    for kind in ("int", "int64", "uint", "fp32", "bytes", "bool"):
        request = simple_request()
        del request.raw_input_contents[:]
        for tensor in request.inputs:
            contents = tensor.contents
            if kind == "int":
                contents.int_contents.extend([2**31 - 1] * 15)
            elif kind == "int64":
                contents.int64_contents.extend([2**62] * 16)
            elif kind == "uint":
                contents.uint_contents.extend([1] * 16)
            elif kind == "fp32":
                contents.fp32_contents.extend([1.5] * 16)
            elif kind == "bytes":
                contents.bytes_contents.extend([b"1"] * 16)
            else:
                contents.bool_contents.extend([True] * 16)
        add(f"typed {kind}", request)
    mixed = simple_request()
    mixed.inputs[0].contents.int_contents.extend(range(16))
    add("raw and typed mixed", mixed)
    for payload in (b"", b"\1\0\0", b"\xff\xff\xff\xff", _strings(b"x") * 15,
                    _strings(b"x") * 17, b"\5\0\0\0ab", _strings(b"\xff\xfe") * 16):  # fmt: skip
        for model, shape in (("simple_string", [1, 16]), ("simple_identity", [1, 2**40])):
            request = service_pb2.ModelInferRequest(model_name=model)
            for name in ("INPUT0", "INPUT1") if model == "simple_string" else ("INPUT0",):
                request.inputs.add(name=name, datatype="BYTES", shape=shape)
                request.raw_input_contents.append(payload)
            add(f"bytes {model} {payload[:6]!r}", request)
    for outputs in (["NOPE"], ["OUTPUT0", "OUTPUT0"], [""], ["OUTPUT0"] * 30_000,
                    [f"O{i}" for i in range(3000)]):  # fmt: skip
        request = simple_request()
        for output in outputs:
            request.outputs.add(name=output)
        add(f"outputs {outputs[:2]} x{len(outputs)}", request)
    for value in (0, -1, 2**31, "3", 1.5, True):
        request = simple_request()
        output = request.outputs.add(name="OUTPUT0")
        _set_parameter(output.parameters["classification"], value)
        add(f"class_count {value!r}", request)
    for key in ("priority", "timeout", "sequence_id", "sequence_start", "sequence_end",
                "binary_data_output", "shared_memory_region"):  # fmt: skip
        for value in (-1, 2**63 + 1, "false", "", 1.5, True, 0):
            request = simple_request()
            _set_parameter(request.parameters[key], value)
            add(f"parameter {key}={value!r}", request)
    for region, offset, size in (("nope", 0, 64), ("", 0, 64), ("r", -1, 64), ("r", 0, -1),
                                 ("r", 2**63 - 1, 64)):  # fmt: skip
        request = simple_request()
        del request.raw_input_contents[:]
        for tensor in request.inputs:
            _set_parameter(tensor.parameters["shared_memory_region"], region)
            _set_parameter(tensor.parameters["shared_memory_offset"], offset)
            _set_parameter(tensor.parameters["shared_memory_byte_size"], size)
        add(f"shm {region!r} {offset} {size}", request)
        request = simple_request()
        output = request.outputs.add(name="OUTPUT0")
        _set_parameter(output.parameters["shared_memory_region"], region)
        _set_parameter(output.parameters["shared_memory_byte_size"], size)
        add(f"shm output {region!r} {size}", request)
    for sequence_id in (-1, 2**63, 2**64 - 1, "x" * 300, 0, ""):
        for start in (True, "false", 1):
            request = service_pb2.ModelInferRequest(model_name="simple_dyna_sequence")
            request.inputs.add(name="INPUT", datatype="INT32", shape=[1, 1])
            request.raw_input_contents.append(np.ones(1, np.int32).tobytes())
            _set_parameter(request.parameters["sequence_id"], sequence_id)
            _set_parameter(request.parameters["sequence_start"], start)
            add(f"sequence {str(sequence_id)[:8]} start={start!r}", request)
    valid = simple_request().SerializeToString()
    for cut in (1, 2, 5, 10, 50, len(valid) - 1):
        cases.append((f"truncated at {cut}", valid[:cut]))
    rng = random.Random(15)
    for index in range(12):
        cases.append((f"garbage {index}", rng.randbytes(rng.randint(1, 400))))
    return cases


def _set_parameter(parameter: service_pb2.InferParameter, value: object) -> None:
    if isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int) and value >= 2**63:
        parameter.uint64_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = str(value)


def _infer_call(channel: grpc.aio.Channel) -> Any:
    """ModelInfer on an asyncio channel, taking and giving bytes."""
    return channel.unary_unary(INFER, request_serializer=None, response_deserializer=None)


def _raw_infer(channel: grpc.Channel) -> Callable[..., bytes]:
    """ModelInfer taking and giving bytes: any byte string reaches the server as sent."""
    call: Callable[..., bytes] = channel.unary_unary(
        INFER, request_serializer=None, response_deserializer=None
    )
    return call


def _outcome(call: Callable[..., bytes], data: bytes, timeout: float) -> grpc.StatusCode:
    try:
        call(data, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def bad_inputs(server: RunningServer, *, fuzz_count: int, timeout: float = 10.0) -> dict[str, Any]:
    """The corpus, then ``fuzz_count`` fuzzed byte strings; outcomes counted by status."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    failures: list[str] = []
    counts: collections.Counter[str] = collections.Counter()

    def record(name: str, code: grpc.StatusCode) -> None:
        counts[code.name] += 1
        if code not in CLIENT_ERRORS and len(failures) < 20:
            failures.append(f"{name}: {code.name}")

    with grpc.insecure_channel(server.address) as channel:
        call = _raw_infer(channel)
        cases = corpus()
        for name, data in cases:
            record(name, _outcome(call, data, timeout))
        fuzzed = 0

        @settings(
            max_examples=fuzz_count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.one_of(_messages(st), _mutations(st), st.binary(max_size=512)))
        def fuzz(data: bytes) -> None:
            nonlocal fuzzed
            fuzzed += 1
            record(f"fuzz {data[:24]!r}", _outcome(call, data, timeout))

        fuzz()
    alive = server.process.poll() is None
    bad = sum(n for code, n in counts.items() if grpc.StatusCode[code] not in CLIENT_ERRORS)
    hangs = counts.get("DEADLINE_EXCEEDED", 0)
    return {
        "corpus_cases": len(cases),
        "fuzzed": fuzzed,
        "crashes": 0 if alive else 1,
        "hangs": hangs,
        "unknown_or_internal": counts.get("UNKNOWN", 0) + counts.get("INTERNAL", 0),
        "other_bad_statuses": bad - hangs - counts.get("UNKNOWN", 0) - counts.get("INTERNAL", 0),
        "statuses": dict(sorted(counts.items())),
        "first_failures": failures,
    }


def _messages(st: Any) -> Any:
    """Structurally valid ModelInferRequests with random names, datatypes, shapes, contents
    and parameters."""
    names = st.sampled_from(["INPUT0", "INPUT1", "INPUT", "features", "", "X", "OUTPUT0"])
    values = st.one_of(
        st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=8), st.floats()
    )
    parameters = st.dictionaries(
        st.sampled_from(["priority", "timeout", "sequence_id", "sequence_start", "sequence_end",
                         "classification", "shared_memory_region", "binary_data", "x"]),
        values,
        max_size=3,
    )  # fmt: skip
    tensor = st.fixed_dictionaries(
        {
            "name": names,
            "datatype": st.sampled_from(DATATYPES),
            "shape": st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-2, 40), max_size=4),
            "parameters": parameters,
        }
    )

    def build(fields: dict[str, Any]) -> bytes:
        request = service_pb2.ModelInferRequest(
            model_name=fields["model"], model_version=fields["version"]
        )
        for spec in fields["inputs"]:
            tensor = request.inputs.add(
                name=spec["name"], datatype=spec["datatype"], shape=spec["shape"]
            )
            for key, value in spec["parameters"].items():
                _set_parameter(tensor.parameters[key], value)
        for key, value in fields["parameters"].items():
            _set_parameter(request.parameters[key], value)
        for name in fields["outputs"]:
            request.outputs.add(name=name)
        request.raw_input_contents.extend(fields["raw"])
        return bytes(request.SerializeToString())

    return st.builds(
        build,
        st.fixed_dictionaries(
            {
                "model": st.sampled_from([*MODELS, "simple_process", "", "none"]),
                "version": st.sampled_from(["", "1", "2", "x"]),
                "inputs": st.lists(tensor, max_size=3),
                "parameters": parameters,
                "outputs": st.lists(names, max_size=3),
                "raw": st.lists(st.binary(max_size=80), max_size=3),
            }
        ),
    )


def _mutations(st: Any) -> Any:
    """A valid request with bytes flipped, cut or inserted."""
    valid = simple_request().SerializeToString()

    def mutate(edits: list[tuple[int, int]]) -> bytes:
        data = bytearray(valid)
        for position, byte in edits:
            index = position % (len(data) + 1)
            if byte < 256 and data:
                data[index % len(data)] = byte
            elif byte < 300:
                del data[index:]
            else:
                data.insert(index, byte % 256)
        return bytes(data)

    return st.builds(
        mutate, st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 400)), max_size=6)
    )


# -- process figures ----------------------------------------------------------------------


def resources_of(pid: int) -> dict[str, int]:
    """Descriptors, threads, RSS (bytes), live children and /dev/shm entries of ``pid``."""
    process = psutil.Process(pid)
    with process.oneshot():
        figures = {
            "fds": process.num_fds(),
            "threads": process.num_threads(),
            "rss": process.memory_info().rss,
        }
    figures["children"] = len(process.children(recursive=True))
    figures["dev_shm"] = sum(
        1 for entry in os.listdir("/dev/shm") if entry.startswith(f"asyncinfer-{pid}-")
    )
    return figures


@contextlib.contextmanager
def rss_sampler(pid: int, interval: float = 0.1) -> Iterator[list[int]]:
    """RSS samples of ``pid`` (bytes) taken in a thread while the block runs."""
    samples: list[int] = []
    done = threading.Event()
    process = psutil.Process(pid)

    def sample() -> None:
        while not done.wait(interval):
            with contextlib.suppress(psutil.Error):
                samples.append(process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join(5)


def metrics(server: RunningServer) -> dict[str, float]:
    """Every sample of the server's metrics endpoint, summed over labels, by sample name."""
    url = f"http://127.0.0.1:{server.ports['port_metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] += sample.value
    return dict(sums)


# -- overload -----------------------------------------------------------------------------


async def _capacity(address: str, request: bytes, seconds: float, concurrency: int) -> float:
    """Calls per second answered OK, closed loop at ``concurrency``."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = _infer_call(channel)
        until = time.monotonic() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < until:
                await call(request, timeout=10)
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - start)


#: Recovery's probes, and the baseline they are compared with, are one call every this many
#: seconds: a call after an idle pause costs about three times one sent right behind another
#: (both event loops sleep in between), so both sides must be paced alike.
PROBE_PAUSE_S = 0.01
#: Recovery: the last this many probes all answered OK, their median within twice the baseline.
RECOVERY_WINDOW = 9


async def _latency(call: Any, request: bytes, count: int, pause: float = 0.0) -> float:
    """Median seconds of ``count`` calls one at a time, each followed by ``pause`` idle."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await call(request, timeout=10)
        times.append(time.perf_counter() - start)
        if pause:
            await asyncio.sleep(pause)
    return statistics.median(times)


async def _open_loop(
    address: str, request: bytes, rate: float, seconds: float, deadline: float, outstanding: int
) -> tuple[list[tuple[float, grpc.StatusCode]], float, int]:
    """Calls started at ``rate`` per second for ``seconds`` (each with ``deadline``): each
    call's answer time and status, the rate actually offered, and the calls not sent because
    ``outstanding`` were already waiting (so that the client's own loop keeps up)."""
    results: list[tuple[float, grpc.StatusCode]] = []
    skipped = 0
    async with grpc.aio.insecure_channel(address) as channel:
        call = _infer_call(channel)

        async def one() -> None:
            start = time.monotonic()
            try:
                await call(request, timeout=deadline)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            results.append((time.monotonic() - start, code))

        tasks: set[asyncio.Task[None]] = set()
        begin = time.monotonic()
        sent = 0
        while (now := time.monotonic()) < begin + seconds:
            due = int((now - begin) * rate)
            for _ in range(due - sent):
                if len(tasks) >= outstanding:
                    skipped += 1
                    continue
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent = max(sent, due)
            await asyncio.sleep(0.005)
        offered = (sent - skipped) / (time.monotonic() - begin)
        await asyncio.gather(*tasks)
    return results, offered, skipped


async def _recovery(
    address: str,
    request: bytes,
    baseline: float,
    limit: float,
    *,
    window: int = RECOVERY_WINDOW,
    probe_timeout: float = 10.0,
) -> float:
    """Seconds until the service is back: the last ``window`` probes (one every
    :data:`PROBE_PAUSE_S`, on a new channel) all answered OK and took, in the median, at most
    twice ``baseline`` (the same probes' median before the load; 1 ms floor). inf if that does
    not happen within ``limit`` seconds. A median, not every probe: one probe descheduled on a
    shared machine is noise, not a server still busy."""
    bound = max(2 * baseline, 0.001)
    last: collections.deque[float] = collections.deque(maxlen=window)
    async with grpc.aio.insecure_channel(address) as channel:
        call = _infer_call(channel)
        start = time.monotonic()
        while time.monotonic() - start < limit:
            begin = time.perf_counter()
            try:
                await call(request, timeout=probe_timeout)
                last.append(time.perf_counter() - begin)
            except grpc.aio.AioRpcError:
                last.append(math.inf)
            if len(last) == window and statistics.median(last) <= bound and math.inf not in last:
                return time.monotonic() - start
            await asyncio.sleep(PROBE_PAUSE_S)
        return math.inf


def overload(
    server: RunningServer,
    request: service_pb2.ModelInferRequest,
    *,
    measure_s: float,
    overload_s: float,
    factor: float = 5.0,
    deadline_s: float = 1.0,
    late_bound_s: float = 0.5,
    outstanding: int = 2048,
) -> dict[str, Any]:
    """Capacity, then ``factor`` times it open-loop; how every call was answered."""
    data = request.SerializeToString()

    async def run() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(server.address) as channel:
            baseline = await _latency(_infer_call(channel), data, 50, PROBE_PAUSE_S)
        capacity = await _capacity(server.address, data, measure_s, concurrency=16)
        rss_before = psutil.Process(server.process.pid).memory_info().rss
        served_before = metrics(server).get("nv_inference_request_success", 0.0)
        begin = time.monotonic()
        with rss_sampler(server.process.pid) as samples:
            results, offered, skipped = await _open_loop(
                server.address, data, capacity * factor, overload_s, deadline_s, outstanding
            )
        served = metrics(server).get("nv_inference_request_success", 0.0) - served_before
        served_rate = served / (time.monotonic() - begin)
        recovery = await _recovery(server.address, data, baseline, 60)
        codes = collections.Counter(code.name for _, code in results)
        late = sum(1 for took, _ in results if took > deadline_s + late_bound_s)
        return {
            "capacity_per_s": round(capacity, 1),
            "offered_per_s": round(offered, 1),
            "not_sent_client_busy": skipped,
            "server_ok_per_s": round(served_rate, 1),
            "calls": len(results),
            "statuses": dict(sorted(codes.items())),
            "answered_late": late,
            "max_answer_s": round(max((t for t, _ in results), default=0.0), 3),
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_peak_mb": round(max(samples, default=rss_before) / 2**20, 1),
            "recovery_s": round(recovery, 3),
            "baseline_p50_ms": round(baseline * 1e3, 3),
        }

    return asyncio.run(run())


# -- idle clients -------------------------------------------------------------------------


def idle_clients(
    server: RunningServer, *, connections: int, streams: int, probes: int = 100
) -> dict[str, Any]:
    """Latency of `simple` alone, then with idle connections and idle streams held open."""
    data = simple_request().SerializeToString()
    local = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel

    async def run() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = _infer_call(channel)
            alone = await _latency(call, data, probes)
            idle = [
                grpc.aio.insecure_channel(server.address, options=local) for _ in range(connections)
            ]
            try:
                for start in range(0, len(idle), 200):
                    await asyncio.gather(*(c.channel_ready() for c in idle[start : start + 200]))
                held = []
                for index in range(streams):
                    stub = service_pb2_grpc.GRPCInferenceServiceStub(idle[index % len(idle)])
                    stream = stub.ModelStreamInfer()
                    await stream.wait_for_connection()
                    held.append(stream)
                busy = await _latency(call, data, probes)
                # One more stream is still served while the others sit idle.
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                extra = stub.ModelStreamInfer()
                await extra.write(simple_request())
                reply = await extra.read()
                await extra.done_writing()
                served = not reply.error_message
                for stream in held:
                    stream.cancel()
                connections_now = psutil.Process(server.process.pid).num_fds()
            finally:
                await asyncio.gather(*(c.close(None) for c in idle))
            return {
                "idle_connections": len(idle),
                "idle_streams": len(held),
                "server_fds_with_idle": connections_now,
                "p50_alone_ms": round(alone * 1e3, 3),
                "p50_with_idle_ms": round(busy * 1e3, 3),
                "latency_ratio": round(busy / alone, 2),
                "another_stream_served": served,
            }

    return asyncio.run(run())


# -- load / unload ------------------------------------------------------------------------


def load_unload(server: RunningServer, *, cycles: int, process_every: int = 10) -> dict[str, Any]:
    """``cycles`` loads and unloads (`simple`; `simple_process` every ``process_every``th),
    each load answering one call; resources after the first cycle and after the last."""
    import tritonclient.grpc as grpcclient

    pid = server.process.pid
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = grpcclient.InferInput(name, [1, 16], "INT32")
        tensor.set_data_from_numpy(np.ones((1, 16), np.int32))
        inputs.append(tensor)
    with grpcclient.InferenceServerClient(server.address) as client:

        def cycle(index: int) -> None:
            model = "simple_process" if process_every and index % process_every == 0 else "simple"
            client.load_model(model)
            client.infer(model, inputs)
            client.unload_model(model)

        cycle(1)
        cycle(process_every)
        time.sleep(0.5)
        before = resources_of(pid)
        for index in range(2, cycles):
            cycle(index)
        time.sleep(1.0)  # unloaded process instances are reaped
        after = resources_of(pid)
    return {
        "cycles": cycles,
        "before": before,
        "after": after,
        "rss_growth_mb": round((after["rss"] - before["rss"]) / 2**20, 1),
    }


# -- workers ------------------------------------------------------------------------------


def _workers(server: RunningServer, *, expected: int) -> list[psutil.Process]:
    """The supervisor's spawned workers (not multiprocessing's resource tracker), once
    ``expected`` of them run and serve (the readiness check saw only one of them answer)."""
    supervisor = psutil.Process(server.process.pid)
    for _ in range(300):  # bounded: 30 s
        workers = [c for c in supervisor.children() if "spawn_main" in " ".join(c.cmdline())]
        if len(workers) >= expected:
            time.sleep(1.0)  # the last one binds its port
            return workers
        time.sleep(0.1)
    return workers


def worker_kill(
    server: RunningServer, *, concurrency: int, seconds: float, grace_s: float = 0.25
) -> dict[str, Any]:
    """Load over ``concurrency`` connections to a 2-worker server; one worker SIGKILLed
    halfway. Which calls fail: only those in flight on it (they started before the kill)."""
    data = simple_request().SerializeToString()
    local = [("grpc.use_local_subchannel_pool", 1)]
    workers = _workers(server, expected=2)

    async def run() -> dict[str, Any]:
        channels = [grpc.aio.insecure_channel(server.address, options=local)
                    for _ in range(concurrency)]  # fmt: skip
        failed: list[float] = []  # start times of failed calls
        ok = 0
        killed_at = 0.0
        until = time.monotonic() + seconds

        async def client(channel: grpc.aio.Channel) -> None:
            nonlocal ok
            call = _infer_call(channel)
            while time.monotonic() < until:
                start = time.monotonic()
                try:
                    await call(data, timeout=10, wait_for_ready=True)
                    ok += 1
                except grpc.aio.AioRpcError:
                    failed.append(start)

        async def killer() -> None:
            nonlocal killed_at
            await asyncio.sleep(seconds / 2)
            killed_at = time.monotonic()
            os.kill(workers[0].pid, signal.SIGKILL)

        try:
            await asyncio.gather(killer(), *(client(c) for c in channels))
        finally:
            await asyncio.gather(*(c.close(None) for c in channels))
        return {
            "workers": len(workers),
            "concurrency": concurrency,
            "ok": ok,
            "failed": len(failed),
            # A call sent in the moment after the kill, before the client saw its connection
            # close, was sent to the dead worker too: only later ones must all succeed.
            "failed_started_after_kill": sum(1 for s in failed if s > killed_at),
            "failed_started_after_kill_grace": sum(1 for s in failed if s > killed_at + grace_s),
        }

    return asyncio.run(run())


# -- cancellations ------------------------------------------------------------------------


def cancellations(server: RunningServer, *, count: int, concurrency: int = 64) -> dict[str, Any]:
    """``count`` calls cancelled by their clients a random moment after they start (on
    `simple` and the batched `mlp_onnx`), then the server's admission counters and queues."""
    requests = [simple_request().SerializeToString(), mlp_request().SerializeToString()]
    rng = random.Random(15)

    async def run() -> int:
        cancelled = 0
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = _infer_call(channel)

            async def worker(share: int) -> None:
                nonlocal cancelled
                for index in range(share):
                    pending = call(requests[index % 2], timeout=10)
                    await asyncio.sleep(rng.random() * 0.002)
                    if pending.cancel():
                        cancelled += 1
                    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                        await pending

            share = count // concurrency
            await asyncio.gather(*(worker(share) for _ in range(concurrency)))
        return cancelled

    cancelled = asyncio.run(run())
    time.sleep(1.0)  # cancellations reach the server's handlers
    figures = metrics(server)
    with grpc.insecure_channel(server.address) as channel:
        after = _outcome(_raw_infer(channel), simple_request().SerializeToString(), 10)
    return {
        "calls": count // concurrency * concurrency,
        "cancelled": cancelled,
        "in_flight": figures.get("asyncinfer_rpc_in_flight", -1),
        "waiting": figures.get("asyncinfer_rpc_waiting", -1),
        "pending_requests": figures.get("nv_inference_pending_request_count", -1),
        "queue_depth": figures.get("asyncinfer_inference_queue_depth", -1),
        "served_after": after.name,
    }
