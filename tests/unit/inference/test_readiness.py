"""Readiness reflects health: a model whose process instances all broke (and could not start
again) is not ModelReady, and ServerReady follows strict readiness as tritonserver's does."""

from __future__ import annotations

import asyncio
import pathlib
import textwrap
from collections.abc import AsyncIterator

import numpy as np
import pytest

from asyncinfer.errors import Unavailable
from asyncinfer.inference.inprocess import ModelCaller
from asyncinfer.inference.repository import ModelRepository
from asyncinfer.inference.service import InferenceResources

CONFIG = """
name: "{name}"
backend: "python"
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
parameters {{ key: "instance_kind" value {{ string_value: "process" }} }}
"""
# Crashes on -1; once it has crashed, it cannot start again (initialize raises).
MODEL = """
import os, pathlib
from asyncinfer.inference.python_model import Response, Tensor

MARKER = pathlib.Path(__file__).parent / "crashed"

class Model:
    def initialize(self, args):
        if MARKER.exists():
            raise RuntimeError("cannot start again")

    def execute(self, requests):
        values = requests[0].input("IN").as_numpy()
        if values[0] == -1:
            MARKER.touch()
            os._exit(7)
        return [Response([Tensor("OUT", values)])]
"""


@pytest.fixture
async def repo(tmp_path: pathlib.Path) -> AsyncIterator[ModelRepository]:
    (tmp_path / "fragile" / "1").mkdir(parents=True)
    (tmp_path / "fragile" / "config.pbtxt").write_text(CONFIG.format(name="fragile"))
    (tmp_path / "fragile" / "1" / "model.py").write_text(textwrap.dedent(MODEL))
    repository = ModelRepository(tmp_path, control_mode="explicit", load_models=["fragile"])
    await repository.start()
    yield repository
    await repository.stop()


async def test_a_model_whose_instances_all_broke_is_not_ready(repo: ModelRepository) -> None:
    strict = InferenceResources(repo)
    lenient = InferenceResources(repo, strict_readiness=False)
    strict._started = lenient._started = True  # as start() leaves them
    assert repo.is_ready("fragile") and strict.ready() and lenient.ready()
    with pytest.raises(Unavailable, match="exited"):
        await ModelCaller(repo).infer("fragile", {"IN": np.array([-1], np.int32)})
    for _ in range(600):  # bounded: the failed restart marks the instance broken
        if not repo.is_ready("fragile"):
            break
        await asyncio.sleep(0.05)
    assert not repo.is_ready("fragile")
    assert not strict.ready()  # strict readiness: a model asked for is not ready
    assert lenient.ready()  # --strict-readiness=false: the server itself is up
    await repo.unload("fragile")  # no longer asked for: the strict server is ready again
    assert strict.ready()


async def test_a_failed_load_makes_a_strict_server_not_ready(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad" / "1").mkdir(parents=True)
    (tmp_path / "bad" / "config.pbtxt").write_text(CONFIG.format(name="bad"))
    (tmp_path / "bad" / "1" / "model.py").write_text("raise ImportError('no')\n")
    repository = ModelRepository(tmp_path, control_mode="none")
    await repository.start()
    try:
        strict = InferenceResources(repository)
        lenient = InferenceResources(repository, strict_readiness=False)
        strict._started = lenient._started = True
        assert not strict.ready() and lenient.ready()
    finally:
        await repository.stop()
