"""Config overrides (and override files) that would make an unusable model fail the load with
INVALID_ARGUMENT or INTERNAL and a message naming the field; never UNKNOWN, never a raw error."""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import AsyncIterator

import grpc
import pytest

from asyncinfer.errors import RpcError
from asyncinfer.inference.repository import ModelRepository

EXAMPLE = pathlib.Path(__file__).parents[4] / "examples" / "model_repository" / "simple"
FILES = {
    "config.pbtxt": (EXAMPLE / "config.pbtxt").read_bytes(),
    "1/model.py": (EXAMPLE / "1" / "model.py").read_bytes(),
}
WARMUP = {
    "INPUT0": {"data_type": "TYPE_INT32", "dims": [2**40], "zero_data": True},
    "INPUT1": {"data_type": "TYPE_INT32", "dims": [16], "zero_data": True},
}

CASES = {
    "no outputs": ('{"output": []}', None, grpc.StatusCode.INVALID_ARGUMENT, "declares no outputs"),
    "NUL in a file name": (
        "{}",
        {**FILES, "a\0b": b"x"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "override file 'a\\x00b': a file name cannot hold a NUL",
    ),
    "250-byte file name": (
        "{}",
        {**FILES, "n" * 260: b"x"},
        grpc.StatusCode.INTERNAL,
        "cannot write override file 'nnn",
    ),
    "a too-deep tree": (
        "{}",
        {**FILES, "/".join(["d"] * 3000): b"x"},
        grpc.StatusCode.INTERNAL,
        "cannot write override file 'd/d/d",
    ),
    "deeply nested JSON": (
        '{"parameters": ' + "[" * 100_000 + "]" * 100_000 + "}",
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        "nests deeper than the JSON parser allows",
    ),
    "NUL in default_model_filename": (
        '{"default_model_filename": "a\\u0000b"}',
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        "default_model_filename '1/a\\x00b' holds a NUL",
    ),
    "300-byte default_model_filename": (
        json.dumps({"default_model_filename": "x" * 300}),
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        "default_model_filename '1/xxx",
    ),
    "an input without a name": (
        json.dumps({"input": [{"name": "", "data_type": "TYPE_INT32", "dims": [16]}]}),
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        "an input has an empty name",
    ),
    "a warmup sample of 4 TiB": (
        json.dumps({"model_warmup": [{"name": "w", "batch_size": 1, "inputs": WARMUP}]}),
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        "inference input 'INPUT0' for model 'simple' has shape [1, 1099511627776]",
    ),
}


@pytest.fixture
async def repo(tmp_path: pathlib.Path) -> AsyncIterator[ModelRepository]:
    shutil.copytree(EXAMPLE, tmp_path / "models" / "simple")
    repository = ModelRepository(tmp_path / "models", control_mode="explicit")
    await repository.start()
    yield repository
    await repository.stop()


@pytest.mark.parametrize("case", list(CASES))
async def test_unusable_override_fails_the_load_naming_the_field(
    repo: ModelRepository, case: str
) -> None:
    override, files, code, text = CASES[case]
    with pytest.raises(RpcError) as info:
        await repo.load("simple", config_override=override, files=files)
    assert info.value.code == code, info.value.message
    assert text in info.value.message
    await repo.load("simple")  # the repository's own model still loads and serves
    assert repo.is_ready("simple")
