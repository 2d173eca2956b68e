"""Config values that would build unbounded objects or work are capped at load, naming the cap."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from asyncinfer.errors import ConfigError, InvalidArgument
from asyncinfer.inference.repository import ConfigBounds
from asyncinfer.inference.repository.loader import load_model_dir
from asyncinfer.inference.repository.model_config import apply_json_override, parse_pbtxt

EXAMPLES = pathlib.Path(__file__).parents[4] / "examples" / "model_repository"


@pytest.fixture
def model_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    shutil.copytree(EXAMPLES / "simple", tmp_path / "simple")
    return tmp_path / "simple"


async def _load(model_dir: pathlib.Path, override: str, bounds: ConfigBounds) -> None:
    config = parse_pbtxt((model_dir / "config.pbtxt").read_text(), model="simple")
    config = apply_json_override(config, override, model="simple")
    models = await load_model_dir(config, model_dir, model_dir.parent, bounds=bounds)
    for model in models.values():
        await model.unload()


@pytest.mark.parametrize(
    ("override", "field", "cap"),
    [
        ('{"instance_group": [{"count": 1000000}]}', "instance_group count is 1000000", 128),
        ('{"dynamic_batching": {"priority_levels": 300000}}', "priority_levels", 256),
        (
            '{"dynamic_batching": {"default_queue_policy": {"max_queue_size": 4000000000}}}',
            "default_queue_policy.max_queue_size",
            1_000_000,
        ),
        ('{"max_batch_size": 2000000000}', "max_batch_size", 65_536),
        ('{"model_warmup": [{"name": "w", "count": 4000000}]}', "model_warmup count", 10_000),
    ],
)
async def test_values_beyond_their_cap_fail_the_load_naming_it(
    model_dir: pathlib.Path, override: str, field: str, cap: int
) -> None:
    with pytest.raises(InvalidArgument, match=f"{field}.*more than the cap of {cap}"):
        await _load(model_dir, override, ConfigBounds())


async def test_caps_are_configurable(model_dir: pathlib.Path) -> None:
    override = '{"instance_group": [{"count": 3}]}'
    with pytest.raises(InvalidArgument, match=r"cap of 2 \(ConfigBounds.max_instances\)"):
        await _load(model_dir, override, ConfigBounds(max_instances=2))
    await _load(model_dir, override, ConfigBounds(max_instances=3))


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_instances must be an int >= 1"):
        ConfigBounds(max_instances=0)
