"""load_model_dir refuses config features it would otherwise silently ignore."""

from __future__ import annotations

import pathlib

import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.repository.loader import load_model_dir
from asyncinfer.inference.repository.model_config import parse_pbtxt

RESHAPED = """
name: "reshaped"
backend: "python"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] %s } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] %s } ]
"""


@pytest.mark.parametrize(
    ("where", "text"),
    [("input 'IN'", ("reshape: { shape: [ 2, 2 ] }", "")), ("output 'OUT'", ("", "reshape: {}"))],
)
async def test_reshape_is_refused_at_load(
    tmp_path: pathlib.Path, where: str, text: tuple[str, str]
) -> None:
    (tmp_path / "1").mkdir()
    config = parse_pbtxt(RESHAPED % text, model="reshaped")
    with pytest.raises(InvalidArgument, match=f"{where}: reshape is not supported yet"):
        await load_model_dir(config, tmp_path, tmp_path)
