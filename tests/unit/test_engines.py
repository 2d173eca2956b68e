"""Engines: Python and ONNX Runtime engines behind one protocol, the two-level limiter, and the
TensorRT engine's error where TensorRT is missing."""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
from typing import Any

import numpy as np
import pytest

from asyncinfer.affinity import CpuSet
from asyncinfer.engines import (
    Engine,
    OnnxEngine,
    PythonEngine,
    TensorRTEngine,
    binding,
    compute_tokens,
    tensorrt_available,
)
from asyncinfer.errors import ConfigError, Internal, InvalidArgument, Unavailable, UsageError
from asyncinfer.memory import StackPool

NO_TRT = tensorrt_available()
F32 = np.float32


def doubler(**kwargs: Any) -> PythonEngine:
    return PythonEngine(
        "double",
        lambda x: {"y": x * 2},
        inputs=[binding("x", F32, (-1, 4))],
        outputs=[binding("y", F32, (-1, 4))],
        **kwargs,
    )


class Gate:
    """A model that blocks its thread until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = self.peak = self.calls = 0

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        return {"y": x}


async def wait_until(condition: Any) -> None:
    """Poll a condition set by a model thread (bounded: 10 s at most)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 10 s")


def gated(gate: Gate, name: str = "gated", **kwargs: Any) -> PythonEngine:
    return PythonEngine(
        name,
        gate,
        inputs=[binding("x", F32, (-1, 4))],
        outputs=[binding("y", F32, (-1, 4))],
        **kwargs,
    )


async def test_engines_satisfy_the_protocol(mlp: tuple[bytes, Any]) -> None:
    assert isinstance(doubler(), Engine)
    assert isinstance(OnnxEngine("m", mlp[0]), Engine)
    assert isinstance(TensorRTEngine("t", b""), Engine)


async def test_python_engine_runs_the_callable() -> None:
    engine = doubler()
    await engine.start()
    out = await engine.infer({"x": np.ones((2, 4), F32)})
    assert out["y"].tolist() == [[2.0] * 4] * 2
    assert engine.statistics()["calls"] == 1
    await engine.stop()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"x": np.ones((2, 4), F32), "z": np.ones(1, F32)},
            r"unexpected inference input 'z' for model 'double'; its inputs are \['x'\]",
        ),
        ({}, r"missing required input\(s\) \['x'\]"),
        (
            {"x": np.ones((2, 4), np.float64)},
            r"inference input 'x' data-type is 'FP64', but model 'double' expects 'FP32'",
        ),
        (
            {"x": np.ones((2, 5), F32)},
            r"unexpected shape for input 'x' for model 'double'. Expected \[-1, 4\], got \[2, 5\]",
        ),
        ({"x": [[1.0] * 4]}, r"input 'x' for model 'double' must be a numpy array, not list"),
        ({"x": np.ones((2, 4), ">f4")}, r"has numpy dtype >f4; FP32 inputs are float32 arrays"),
    ],
)
async def test_bad_inputs_name_the_binding(inputs: dict[str, Any], message: str) -> None:
    engine = doubler()
    await engine.start()
    with pytest.raises(InvalidArgument, match=message):
        await engine.infer(inputs)
    assert engine.statistics()["contexts"]["leased"] == 0


async def test_wrong_model_output_is_an_internal_error_naming_it() -> None:
    engine = PythonEngine(
        "liar",
        lambda x: {"y": x.astype(np.int64)},
        inputs=[binding("x", F32, (-1,))],
        outputs=[binding("y", F32, (-1,))],
    )
    await engine.start()
    with pytest.raises(Internal, match="output 'y' as int64"):
        await engine.infer({"x": np.ones(3, F32)})


async def test_not_started_engine_says_so() -> None:
    with pytest.raises(UsageError, match="not started"):
        await doubler().infer({"x": np.ones((1, 4), F32)})


async def test_instances_bound_concurrency() -> None:
    gate = Gate()
    engine = gated(gate, instances=2)
    await engine.start()
    tasks = [asyncio.create_task(engine.infer({"x": np.ones((1, 4), F32)})) for _ in range(6)]
    await wait_until(lambda: gate.running == 2)
    assert engine.statistics()["contexts"]["waiting"] == 4
    gate.release.set()
    await asyncio.gather(*tasks)
    assert gate.peak == 2 and gate.calls == 6


async def test_shared_workspaces_cap_compute_across_engines() -> None:
    gate = Gate()
    tokens = compute_tokens(1, name="global")
    engines = [gated(gate, f"m{i}", instances=2, workspaces=tokens) for i in range(2)]
    for engine in engines:
        await engine.start()
    tasks = [asyncio.create_task(e.infer({"x": np.ones((1, 4), F32)})) for e in engines * 2]
    await wait_until(lambda: gate.running == 1 and tokens.statistics().waiting == 3)
    # four contexts are leased (two per engine) but only one computes: one workspace token
    assert sum(e.statistics()["contexts"]["leased"] for e in engines) == 4
    assert tokens.statistics().waiting == 3 and gate.running == 1
    gate.release.set()
    await asyncio.gather(*tasks)
    assert gate.peak == 1


async def test_cancelled_call_keeps_its_instance_until_the_thread_ends() -> None:
    gate = Gate()
    engine = gated(gate)
    await engine.start()
    first = asyncio.create_task(engine.infer({"x": np.ones((1, 4), F32)}))
    await wait_until(lambda: gate.running == 1)
    first.cancel()
    second = asyncio.create_task(engine.infer({"x": np.ones((1, 4), F32)}))
    await asyncio.sleep(0.05)
    # the thread still runs on the only instance: the second call must not have it yet
    assert gate.calls == 1 and engine.statistics()["contexts"]["leased"] == 1
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert gate.peak == 1 and engine.statistics()["contexts"]["idle"] == 1


async def test_onnx_engine_matches_reference_and_describes_bindings(mlp: tuple[bytes, Any]) -> None:
    model, reference = mlp
    engine = OnnxEngine("mlp", model, instances=2, cpus=CpuSet.current())
    await engine.start()
    assert engine.input_bindings()["features"] == binding("features", F32, (-1, 16))
    assert engine.output_bindings()["scores"] == binding("scores", F32, (-1, 4))
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(F32)
    out = await engine.infer({"features": x})
    np.testing.assert_allclose(out["scores"], reference(x), rtol=1e-4, atol=1e-4)
    await engine.stop()


async def test_onnx_outputs_land_in_the_memory_lease(mlp: tuple[bytes, Any]) -> None:
    model, reference = mlp
    engine = OnnxEngine("mlp", model, cpus=CpuSet.of([min(CpuSet.current())]))
    await engine.start()
    stacks = StackPool(count=1, host_bytes=1 << 16, name="onnx-test")
    stacks.open()
    x = np.random.default_rng(2).standard_normal((16, 32)).astype(F32)[:, ::2]  # strided
    async with stacks.acquire() as lease:
        out = await engine.infer({"features": x}, memory=lease.item)
        assert lease.item.host.owns(out["scores"])
        np.testing.assert_allclose(out["scores"], reference(x), rtol=1e-4, atol=1e-4)
        del out
    assert engine.statistics()["outputs_in_place"] == 1
    stacks.close()
    await engine.stop()


async def test_onnx_rejection_is_invalid_argument_and_releases_everything(add_onnx: bytes) -> None:
    engine = OnnxEngine("add", add_onnx)
    await engine.start()
    stacks = StackPool(count=1, host_bytes=1 << 16, name="reject")
    stacks.open()
    bad = {"a": np.ones((2, 4), F32), "b": np.ones((3, 4), F32)}  # batch disagrees
    for memory in (False, True):
        with pytest.raises(
            InvalidArgument, match="inputs 'a' and 'b' disagree on dimension 'batch'"
        ):
            async with stacks.acquire() as lease:
                await engine.infer(bad, memory=lease.item if memory else None)
    stats = stacks.statistics()
    assert (stats["leased"], stats["retired"], stats["idle"]) == (0, 0, 1)
    assert engine.statistics()["contexts"]["idle"] == 1
    stacks.close()
    await engine.stop()


async def test_onnx_bad_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot load its model"):
        await OnnxEngine("junk", b"not a model").start()


@pytest.mark.skipif(NO_TRT is None, reason="TensorRT is installed here; this checks the error path")
async def test_tensorrt_engine_says_tensorrt_is_not_installed() -> None:
    with pytest.raises(ConfigError, match="TensorRT is not installed"):
        await TensorRTEngine("plan", b"\0").start()


def build_plan(onnx_model: bytes) -> bytes:
    """A TensorRT 10 plan of ``onnx_model`` with a batch profile 1..8."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_model), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("features", (1, 16), (4, 16), (8, 16))
    config.add_optimization_profile(profile)
    return bytes(builder.build_serialized_network(network, config))


@pytest.mark.skipif(NO_TRT is not None, reason=f"needs TensorRT and a GPU: {NO_TRT}")
@pytest.mark.parametrize("unified_weights", [False, True])
async def test_tensorrt_engine_runs_a_plan(mlp: tuple[bytes, Any], unified_weights: bool) -> None:
    model, reference = mlp
    engine = TensorRTEngine(
        "mlp", build_plan(model), contexts=2, workspaces=1, unified_weights=unified_weights
    )
    await engine.start()
    stacks = StackPool(count=2, host_bytes=1 << 16, device_bytes=1 << 16, name="trt")
    stacks.open()
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(F32)
    async with stacks.acquire() as lease:
        out = await engine.infer({"features": x}, memory=lease.item)
        np.testing.assert_allclose(out["scores"], reference(x), rtol=1e-2, atol=1e-2)
        del out
    assert engine.statistics()["workspaces"]["idle"] == 1
    stacks.close()
    await engine.stop()


def thread_masks(tasks: set[str]) -> list[CpuSet]:
    """The CPUs each of ``tasks`` (thread ids of this process) may run on, read from /proc."""
    masks = []
    for task in tasks:
        status = pathlib.Path(f"/proc/self/task/{task}/status").read_text()
        (line,) = [x for x in status.splitlines() if x.startswith("Cpus_allowed_list")]
        masks.append(CpuSet.parse(line.split(":")[1]))
    return masks


@pytest.mark.skipif(len(CpuSet.current()) < 2, reason="needs at least 2 usable CPUs")
async def test_onnx_intra_op_threads_are_pinned_to_the_cpu_set(mlp: tuple[bytes, Any]) -> None:
    cpus = CpuSet.of(sorted(CpuSet.current())[:2])
    before = set(os.listdir("/proc/self/task"))
    engine = OnnxEngine("pinned", mlp[0], cpus=cpus)
    await engine.start()
    await engine.infer({"features": np.ones((64, 16), F32)})

    def pinned() -> bool:
        # Our calling thread runs on the whole set; ORT's one extra intra-op thread on the 2nd
        # CPU. ORT's thread pins itself once it first runs, which on a busy machine can come
        # after the call above returned (the calling thread may do all of a small call's work).
        masks = thread_masks(set(os.listdir("/proc/self/task")) - before)
        return cpus in masks and CpuSet.of([max(cpus)]) in masks

    try:
        await wait_until(pinned)
    finally:
        await engine.stop()


async def test_stop_drains_the_calls_in_flight_and_keeps_the_loop_running() -> None:
    gate = Gate()
    engine = gated(gate, instances=1)
    await engine.start()
    running = asyncio.create_task(engine.infer({"x": np.ones((1, 4), F32)}))
    queued = asyncio.create_task(engine.infer({"x": np.ones((1, 4), F32)}))
    await wait_until(lambda: gate.running == 1)
    stopping = asyncio.create_task(engine.stop())
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="closed"):
        await engine.infer({"x": np.ones((1, 4), F32)})  # refused once stop has begun
    # stop waits for the call on the thread without blocking the loop: this task still runs
    ticks = 0
    while ticks < 5:
        await asyncio.sleep(0.01)
        ticks += 1
    assert not stopping.done() and gate.running == 1
    gate.release.set()
    results = await asyncio.gather(running, queued)  # both admitted calls completed
    await asyncio.wait_for(stopping, 10)
    assert [r["y"].shape for r in results] == [(1, 4), (1, 4)] and gate.calls == 2
    assert not any(t.name.startswith("gated-py") for t in threading.enumerate())


def test_bindings_use_the_one_datatype_table() -> None:
    import ml_dtypes

    from asyncinfer.datatypes import DATATYPES, datatype_of

    for wire, datatype in DATATYPES.items():
        assert binding("x", datatype.dtype, (1,)).datatype == wire
        if wire != "BYTES":
            assert datatype_of(datatype.dtype, fixed_size=True) == wire
    assert binding("x", ml_dtypes.bfloat16, (2,)).datatype == "BF16"  # missing before
