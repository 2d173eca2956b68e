"""ModelRepository: client-chosen names, override folders, version strings, polling, stop."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator

import pytest

from asyncinfer.errors import Internal, InvalidArgument, NotFound, RpcError, Unavailable
from asyncinfer.inference.repository.repository import ModelRepository

EXAMPLE = pathlib.Path(__file__).parents[4] / "examples" / "model_repository_explicit" / "simple"


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A repository holding one python model, 'simple'."""
    shutil.copytree(EXAMPLE, tmp_path / "models" / "simple")
    return tmp_path / "models"


@pytest.fixture
def scratch(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A private temporary folder: override folders (and any escape from them) land here."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
async def repo(root: pathlib.Path) -> AsyncIterator[ModelRepository]:
    repository = ModelRepository(root, control_mode="explicit")
    await repository.start()
    yield repository
    await repository.stop()


def _override_files() -> dict[str, bytes]:
    return {
        "config.pbtxt": (EXAMPLE / "config.pbtxt").read_bytes(),
        "1/model.py": (EXAMPLE / "1" / "model.py").read_bytes(),
    }


def _listing(folder: pathlib.Path) -> list[pathlib.Path]:
    return list(folder.iterdir())


def _override_folders(scratch: pathlib.Path) -> list[pathlib.Path]:
    return [p for top in scratch.iterdir() for p in top.iterdir()]


async def test_a_failed_load_of_an_unknown_name_leaves_no_record(repo: ModelRepository) -> None:
    for _ in range(3):
        with pytest.raises(Internal) as unknown:
            await repo.load("no_such_model")
        assert unknown.value.message == (
            "failed to load 'no_such_model', failed to poll from model repository"
        )
    assert [row[0] for row in repo.index()] == ["simple"]
    with pytest.raises(NotFound, match="'no_such_model' is not found"):
        repo.get("no_such_model")
    assert repo.statistics()["models"] == 0


async def test_a_failed_load_of_a_model_folder_is_listed_with_its_reason(
    repo: ModelRepository, root: pathlib.Path
) -> None:
    (root / "simple" / "config.pbtxt").write_text("not a config {")
    with pytest.raises(InvalidArgument):
        await repo.load("simple")
    [(name, version, state, reason)] = repo.index()
    assert (name, version, state) == ("simple", "", "UNAVAILABLE")
    assert "config.pbtxt of model 'simple' does not parse" in reason


TRAVERSAL = "model name must not contain path traversal characters"
EMPTY = "Model name cannot be empty. Please enter a valid name to deploy."


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", InvalidArgument, EMPTY),
        (" \t", InvalidArgument, EMPTY),
        ("../simple", InvalidArgument, TRAVERSAL),
        ("a/../b", InvalidArgument, TRAVERSAL),
        ("model/", InvalidArgument, TRAVERSAL),
        (" ..", InvalidArgument, TRAVERSAL),
        ("..", InvalidArgument, TRAVERSAL),
        (".", Internal, "failed to load '.', failed to poll from model repository"),
        ("x\0y", Internal, "failed to load 'x\\x00y', failed to poll from model repository"),
    ],
)
async def test_bad_names_are_refused_before_anything_is_created(
    repo: ModelRepository,
    scratch: pathlib.Path,
    name: str,
    error: type[RpcError],
    message: str,
) -> None:
    for files in (None, _override_files()):
        with pytest.raises(error) as refused:
            await repo.load(name, config_override="{}" if files else None, files=files)
        assert refused.value.message == message
    assert _listing(scratch) == []
    assert [row[0] for row in repo.index()] == ["simple"]


async def test_a_name_too_long_for_a_folder_is_an_unknown_name(repo: ModelRepository) -> None:
    with pytest.raises(Internal, match="failed to poll from model repository"):
        await repo.load("é" * 128)


@pytest.mark.parametrize("name", ["model123", "...", "..my_model", ".hidden"])
async def test_well_formed_unknown_names_were_not_polled(repo: ModelRepository, name: str) -> None:
    with pytest.raises(Internal) as unknown:
        await repo.load(name)
    assert unknown.value.message == f"failed to load '{name}', failed to poll from model repository"


async def test_unload_of_any_name_that_is_not_loaded_does_nothing(repo: ModelRepository) -> None:
    for name in ("../etc", "a/../b", "", "model123"):
        await repo.unload(name)  # as in Triton: never the traversal text
    assert [row[0] for row in repo.index()] == ["simple"]


async def test_override_name_cannot_escape_the_scratch_folder(
    repo: ModelRepository, scratch: pathlib.Path
) -> None:
    with pytest.raises(InvalidArgument, match="path traversal characters"):
        await repo.load("../../escaped", config_override="{}", files=_override_files())
    assert not any(p.name.startswith("escaped") for p in scratch.parent.rglob("*"))
    assert _listing(scratch) == []


async def test_override_files_load_under_a_symlinked_tmpdir(
    repo: ModelRepository, scratch: pathlib.Path
) -> None:
    link = scratch.parent / "tmp-link"
    link.symlink_to(scratch, target_is_directory=True)
    tempfile.tempdir = str(link)  # the scratch fixture's monkeypatch restores it
    await repo.load("simple", config_override="{}", files=_override_files())
    assert repo.is_ready("simple")


async def test_override_folders_go_when_replaced_unloaded_or_failed(
    repo: ModelRepository, scratch: pathlib.Path
) -> None:
    await repo.load("simple", config_override="{}", files=_override_files())
    first = _override_folders(scratch)
    await repo.load("simple", config_override="{}", files=_override_files())
    second = _override_folders(scratch)
    assert len(first) == len(second) == 1 and first != second
    with pytest.raises(InvalidArgument):
        await repo.load("simple", config_override="{}", files={"config.pbtxt": b"bad {"})
    assert _override_folders(scratch) == second  # the failed load's folder is gone
    await repo.load("simple")  # from the repository folder: the override folder goes
    assert _override_folders(scratch) == []
    await repo.load("simple", config_override="{}", files=_override_files())
    await repo.unload("simple")
    assert _override_folders(scratch) == []


async def test_a_model_given_only_by_override_files_is_listed_while_loaded(
    repo: ModelRepository, scratch: pathlib.Path
) -> None:
    files = _override_files()
    files["config.pbtxt"] = files["config.pbtxt"].replace(b'"simple"', b'"extra"')
    await repo.load("extra", config_override="{}", files=files)
    assert ("extra", "1", "READY", "") in repo.index()
    with pytest.raises(InvalidArgument):
        await repo.load("other", config_override="{}", files=files)  # config names 'extra'
    assert "other" not in [row[0] for row in repo.index()]


async def test_a_malformed_version_string_is_invalid_argument(repo: ModelRepository) -> None:
    await repo.load("simple")
    assert repo.is_ready("simple", "1")
    assert not repo.is_ready("simple", "2")
    with pytest.raises(InvalidArgument, match="failed to get model version from specified"):
        repo.is_ready("simple", "abc")


async def test_polling_goes_on_after_an_unexpected_error(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repository = ModelRepository(root, control_mode="poll", poll_seconds=0.001)
    scans: list[int] = []
    second_scan = asyncio.Event()

    async def poll_once() -> None:
        scans.append(len(scans))
        if len(scans) == 1:
            raise RuntimeError("scan blew up")
        second_scan.set()

    monkeypatch.setattr(repository, "poll_once", poll_once)
    task = asyncio.create_task(repository.poll_forever())
    with caplog.at_level(logging.ERROR, logger="asyncinfer.inference"):
        await asyncio.wait_for(second_scan.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "scan blew up" in caplog.text


async def test_stop_waits_for_a_load_in_progress(repo: ModelRepository) -> None:
    await repo.load("simple")
    record = repo.ready_models()["simple"]
    await record.lock.acquire()  # as a load in progress holds it
    stopping = asyncio.create_task(repo.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done() and repo.is_ready("simple")
    record.lock.release()
    await asyncio.wait_for(stopping, 10)
    assert not repo.is_ready("simple")


async def test_a_request_naming_no_version_gets_the_latest_ready_one(
    root: pathlib.Path, repo: ModelRepository
) -> None:
    for version in ("2", "3"):
        shutil.copytree(root / "simple" / "1", root / "simple" / version)
    await repo.load("simple", config_override='{"version_policy": {"all": {}}}')
    assert repo.get("simple").version == 3
    assert repo.get("simple", "1").version == 1
    specific = '{"version_policy": {"specific": {"versions": [1, 2]}}}'
    await repo.load("simple", config_override=specific)
    assert repo.get("simple").version == 2
    await repo.unload("simple")
    with pytest.raises(Unavailable, match="has no available versions"):
        repo.get("simple")
