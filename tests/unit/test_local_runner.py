"""LocalManager: the InferRunner API over in-process engines, with memory stacks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import onnxruntime
import pytest

from asyncinfer.client.local import LocalManager
from asyncinfer.engines import OnnxEngine, PythonEngine, binding
from asyncinfer.errors import ConfigError, InvalidArgument, NotFound, ResourceExhausted, UsageError
from asyncinfer.runner import InferRunner, Manager

F32 = np.float32


def engines(model: bytes) -> list[Any]:
    negate = PythonEngine(
        "negate",
        lambda x: {"y": -x},
        inputs=[binding("x", np.int32, (-1,))],
        outputs=[binding("y", np.int32, (-1,))],
    )
    return [OnnxEngine("mlp", model, instances=2), negate]


async def test_manager_api(mlp: tuple[bytes, Any]) -> None:
    async with LocalManager(engines(mlp[0])) as local:
        manager: Manager = local  # the Protocols are static: mypy checks these two lines
        assert manager.get_models() == ["mlp", "negate"]
        runner: InferRunner = manager.infer_runner("mlp")
        assert list(runner.input_bindings()) == ["features"]
        assert runner.output_bindings()["scores"].datatype == "FP32"
        with pytest.raises(
            NotFound, match=r"model 'nope' is not loaded here; models: \['mlp', 'negate'\]"
        ):
            manager.infer_runner("nope")
        with pytest.raises(NotFound, match="only version 1"):
            manager.infer_runner("mlp", "2")
        assert manager.infer_runner("mlp", "1").name == "mlp"


@pytest.mark.parametrize("stack_bytes", [0, 1 << 16])
async def test_results_match_onnxruntime_run_directly(
    mlp: tuple[bytes, Any], stack_bytes: int
) -> None:
    model, _ = mlp
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).standard_normal((6, 16)).astype(F32)
    (expected,) = session.run(None, {"features": x})
    async with LocalManager(engines(model), stack_bytes=stack_bytes, stacks=2) as manager:
        future = manager.infer_runner("mlp").infer(features=x)
        assert isinstance(future, asyncio.Future)
        outputs = await future
        np.testing.assert_allclose(outputs["scores"], expected, rtol=1e-5, atol=1e-5)
        assert outputs["scores"].flags.owndata or outputs["scores"].base is not None
        negated = await manager.infer_runner("negate").infer(x=np.arange(3, dtype=np.int32))
        assert negated["y"].tolist() == [0, -1, -2]
        if stack_bytes:
            stats = manager.statistics()["__stacks__"]
            assert (stats["idle"], stats["retired"]) == (2, 0)


async def test_outputs_outlive_the_stack_lease(mlp: tuple[bytes, Any]) -> None:
    model, reference = mlp
    async with LocalManager(engines(model), stack_bytes=1 << 16, stacks=1) as manager:
        runner = manager.infer_runner("mlp")
        xs = [np.full((2, 16), i, F32) for i in range(20)]
        results = await asyncio.gather(*(runner.infer(features=x) for x in xs))  # one stack, FIFO
        for x, out in zip(xs, results, strict=True):
            np.testing.assert_allclose(out["scores"], reference(x), rtol=1e-4, atol=1e-3)
        assert manager.statistics()["mlp"]["outputs_in_place"] == 20


async def test_bad_input_comes_through_the_future_naming_the_binding(
    mlp: tuple[bytes, Any],
) -> None:
    async with LocalManager(engines(mlp[0]), stack_bytes=1 << 16) as manager:
        runner = manager.infer_runner("mlp")
        with pytest.raises(
            InvalidArgument, match=r"unexpected shape for input 'features' for model 'mlp'"
        ):
            await runner.infer(features=np.ones((2, 15), F32))
        with pytest.raises(
            InvalidArgument, match=r"unexpected inference input 'feature' for model 'mlp'"
        ):
            await runner.infer(feature=np.ones((2, 16), F32))
        with pytest.raises(
            InvalidArgument, match="data-type is 'FP64', but model 'mlp' expects 'FP32'"
        ):
            await runner.infer(features=np.ones((2, 16)))
        assert manager.statistics()["__stacks__"]["leased"] == 0


async def test_stack_overflow_is_resource_exhausted_and_leaves_nothing_borrowed(
    mlp: tuple[bytes, Any],
) -> None:
    async with LocalManager(engines(mlp[0]), stack_bytes=4096, stacks=1) as manager:
        with pytest.raises(ResourceExhausted, match="cannot allocate 8192 bytes"):
            await manager.infer_runner("mlp").infer(features=np.ones((512, 16), F32))
        stats = manager.statistics()["__stacks__"]
        assert (stats["leased"], stats["idle"], stats["retired"]) == (0, 1, 0)


async def test_cancelled_calls_return_everything(mlp: tuple[bytes, Any]) -> None:
    async with LocalManager(engines(mlp[0]), stack_bytes=1 << 16, stacks=2) as manager:
        runner = manager.infer_runner("mlp")
        futures = [runner.infer(features=np.ones((4, 16), F32)) for _ in range(200)]
        await asyncio.sleep(0)
        for future in futures[::2]:
            future.cancel()
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert sum(isinstance(r, dict) for r in results) >= 100
        stats = manager.statistics()
        assert (stats["__stacks__"]["idle"], stats["__stacks__"]["retired"]) == (2, 0)
        assert stats["mlp"]["contexts"]["idle"] == 2


async def test_threadsafe_flavour_returns_a_concurrent_future(mlp: tuple[bytes, Any]) -> None:
    async with LocalManager(engines(mlp[0])) as manager:
        runner = manager.infer_runner("negate")
        x = np.arange(4, dtype=np.int32)
        result = await asyncio.to_thread(lambda: runner.infer_threadsafe(x=x).result(timeout=10))
        assert result["y"].tolist() == [0, -1, -2, -3]


async def test_not_started_manager_says_so(mlp: tuple[bytes, Any]) -> None:
    manager = LocalManager(engines(mlp[0]))
    with pytest.raises(UsageError, match="not started"):
        await manager.infer_runner("negate").infer(x=np.arange(2, dtype=np.int32))


async def test_a_failed_start_stops_what_started_and_can_be_retried() -> None:
    negate = engines(b"")[1]
    broken = OnnxEngine("broken", b"not an onnx model")
    manager = LocalManager([negate, broken], stack_bytes=4096, stacks=1)
    for _ in range(2):  # the retry fails the same way, not with "already started"
        with pytest.raises(ConfigError, match="'broken' cannot load its model"):
            await manager.start()
        assert not [t for t in threading.enumerate() if t.name.startswith(("negate", "broken"))]
        assert manager.statistics()["__stacks__"]["closed"]
    with pytest.raises(UsageError, match="not started"):
        await manager.infer_runner("negate").infer(x=np.arange(2, dtype=np.int32))
