"""Files a config names stay inside the model's folder, and are regular files of bounded size
(label_filename, default_model_filename, warmup input_data_file)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest

from asyncinfer.errors import ModelLoadFailed
from asyncinfer.inference.model_files import read_confined
from asyncinfer.inference.repository.loader import load_model_dir
from asyncinfer.inference.repository.model_config import apply_json_override, parse_pbtxt

EXAMPLES = pathlib.Path(__file__).parents[4] / "examples" / "model_repository"


@pytest.fixture
def model_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the example `simple` model, and a secret file beside (outside) it."""
    shutil.copytree(EXAMPLES / "simple", tmp_path / "repo" / "simple")
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    return tmp_path / "repo" / "simple"


async def _load(model_dir: pathlib.Path, override: str) -> None:
    config = parse_pbtxt((model_dir / "config.pbtxt").read_text(), model="simple")
    config = apply_json_override(config, override, model="simple")
    models = await load_model_dir(config, model_dir, model_dir.parent)
    for model in models.values():
        await model.unload()


def _labelled(filename: str) -> str:
    return (
        '{"output": [{"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [16], '
        f'"label_filename": "{filename}"}}, '
        '{"name": "OUTPUT1", "data_type": "TYPE_INT32", "dims": [16]}]}'
    )


def _warmup(filename: str) -> str:
    data = {"data_type": "TYPE_INT32", "dims": [16], "input_data_file": filename}
    sample = {"name": "w", "batch_size": 1, "inputs": {"INPUT0": data, "INPUT1": data}}
    return json.dumps({"model_warmup": [sample]})


@pytest.mark.parametrize("filename", ["../../secret.txt", "/etc/passwd"])
async def test_label_file_outside_the_model_folder_fails_the_load(
    model_dir: pathlib.Path, filename: str
) -> None:
    with pytest.raises(ModelLoadFailed, match="label_filename of output 'OUTPUT0'"):
        await _load(model_dir, _labelled(filename))


async def test_symlinked_label_file_pointing_outside_fails_the_load(
    model_dir: pathlib.Path,
) -> None:
    os.symlink(model_dir.parent.parent / "secret.txt", model_dir / "labels.txt")
    with pytest.raises(ModelLoadFailed, match="resolves outside the model's directory"):
        await _load(model_dir, _labelled("labels.txt"))
    os.remove(model_dir / "labels.txt")
    os.symlink("/dev/zero", model_dir / "labels.txt")
    with pytest.raises(ModelLoadFailed, match=r"label_filename .* resolves outside"):
        await _load(model_dir, _labelled("labels.txt"))


async def test_label_file_inside_the_folder_still_loads(model_dir: pathlib.Path) -> None:
    (model_dir / "labels.txt").write_text("\n".join(f"class{i}" for i in range(16)))
    await _load(model_dir, _labelled("labels.txt"))


async def test_fifo_label_and_warmup_files_are_refused_without_blocking(
    model_dir: pathlib.Path,
) -> None:
    os.mkfifo(model_dir / "labels.fifo")
    with pytest.raises(ModelLoadFailed, match=r"'labels\.fifo' is not a regular file"):
        await _load(model_dir, _labelled("labels.fifo"))
    (model_dir / "warmup").mkdir()
    os.mkfifo(model_dir / "warmup" / "in.fifo")
    with pytest.raises(ModelLoadFailed, match=r"input_data_file .* is not a regular file"):
        await _load(model_dir, _warmup("in.fifo"))


async def test_warmup_file_outside_the_model_folder_fails_the_load(
    model_dir: pathlib.Path,
) -> None:
    with pytest.raises(ModelLoadFailed, match="input_data_file of warmup sample 'w'"):
        await _load(model_dir, _warmup("../../../secret.txt"))


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("/bin/true", "must be a path relative"),
        ("../../../secret.txt", "resolves outside"),
        ("model\0.py", "holds a NUL character"),
    ],
)
async def test_default_model_filename_outside_the_folder_fails_the_load(
    model_dir: pathlib.Path, filename: str, problem: str
) -> None:
    override = json.dumps({"default_model_filename": filename})
    with pytest.raises(ModelLoadFailed, match=f"default_model_filename .*{problem}"):
        await _load(model_dir, override)


def test_data_files_are_bounded_in_size(model_dir: pathlib.Path) -> None:
    (model_dir / "big.txt").write_bytes(b"x" * 100)
    with pytest.raises(ModelLoadFailed, match="100 bytes, more than the bound of 10"):
        read_confined(model_dir, "big.txt", model="simple", field="f", max_bytes=10)
    assert read_confined(model_dir, "big.txt", model="simple", field="f") == b"x" * 100
