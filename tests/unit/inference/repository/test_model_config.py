"""config.pbtxt parsing, JSON overrides and signature validation."""

from __future__ import annotations

import pytest

from asyncinfer.errors import InvalidArgument
from asyncinfer.inference.repository.model_config import apply_json_override, parse_pbtxt, signature

SIMPLE = """
name: "simple"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] label_filename: "labels.txt" } ]
version_policy: { latest: { num_versions: 2 } }
"""


def test_parse_and_signature() -> None:
    config = parse_pbtxt(SIMPLE, model="simple")
    sig = signature(config)
    assert sig.max_batch_size == 8
    assert sig.inputs["INPUT0"].datatype.wire == "INT32"
    assert sig.inputs["INPUT0"].shape(8) == (-1, 16)
    assert sig.outputs["OUTPUT0"].datatype.wire == "BYTES"
    assert sig.outputs["OUTPUT0"].label_filename == "labels.txt"
    assert config.version_policy.latest.num_versions == 2


def test_missing_name_comes_from_directory() -> None:
    assert parse_pbtxt('backend: "python"', model="dir_name").name == "dir_name"


def test_unparsable_pbtxt_names_the_model() -> None:
    with pytest.raises(InvalidArgument, match=r"config\.pbtxt of model 'm' does not parse"):
        parse_pbtxt("max_batch_size: eight", model="m")


def test_json_override_replaces_top_level_fields_only() -> None:
    config = parse_pbtxt(SIMPLE, model="simple")
    merged = apply_json_override(config, '{"max_batch_size": "16"}', model="simple")
    assert merged.max_batch_size == 16
    assert [i.name for i in merged.input] == ["INPUT0"]
    assert config.max_batch_size == 8  # the original is untouched


@pytest.mark.parametrize("override", ["{not json", "[1]", '{"no_such_field": 1}'])
def test_bad_override_fails_to_load(override: str) -> None:
    config = parse_pbtxt(SIMPLE, model="simple")
    with pytest.raises(InvalidArgument, match="failed to load 'simple'"):
        apply_json_override(config, override, model="simple")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('output [ { name: "O" data_type: TYPE_INVALID dims: [1] } ]', "no valid data_type"),
        ('output [ { name: "O" data_type: TYPE_FP32 dims: [0] } ]', "must be positive or -1"),
        ("max_batch_size: 0", "declares no outputs"),
        (
            'max_batch_size: -1 output [ { name: "O" data_type: TYPE_FP32 dims: [1] } ]',
            "max_batch_size must be >= 0",
        ),
    ],
)
def test_invalid_signatures(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        signature(parse_pbtxt(text, model="m"))
