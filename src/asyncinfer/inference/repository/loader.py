"""Loading one model from a directory: config, version policy, backend, labels and warmup.

``load_model_dir`` turns ``<dir>/config.pbtxt`` and ``<dir>/<version>/`` into ready
LoadedModel versions, or fails with a message that names the model and says what is wrong.
Features that belong to later work (other backends, sequence schedulers, decoupled models)
fail the load with a "not supported yet" message instead of half-working.
"""

from __future__ import annotations

import pathlib

from ...engines import Engine
from ...errors import InvalidArgument
from ...memory import StackPool
from ...pb.inference.model_config_pb2 import ModelConfig
from ...signature import Signature
from ..backends.base import Backend
from ..backends.engine import EngineBackend, engine_kind
from ..backends.identity import IDENTITY, IdentityBackend
from ..backends.process_instances import ProcessBackend, instance_kind
from ..backends.thread_instances import ThreadBackend
from ..classification import read_labels
from ..inprocess import ModelLookup
from ..model import LoadedModel
from ..model_files import read_confined
from ..scheduling import check_scheduling, make_scheduler
from ..statistics import ModelStats
from .config_bounds import ConfigBounds, check_bounds
from .ensemble import ENSEMBLE, EnsembleBackend
from .model_config import apply_json_override, parse_pbtxt, signature
from .warmup import warm_up

__all__ = ["available_versions", "engine_model", "load_model_dir", "read_config", "select_versions"]

CONFIG_FILE = "config.pbtxt"
DEFAULT_BOUNDS = ConfigBounds()


def read_config(
    name: str, model_dir: pathlib.Path, override: str | None, *, auto_complete: bool = False
) -> ModelConfig:
    """The model's config: config.pbtxt (if any) with the JSON override laid over it; with
    ``auto_complete``, a model may have none (its files supply the config)."""
    path = model_dir / CONFIG_FILE
    if path.is_file():
        config = parse_pbtxt(path.read_text(encoding="utf-8"), model=name)
        config.name = config.name or name  # Triton's default: the directory's name
    elif override is not None or auto_complete:
        config = ModelConfig(name=name)
    else:
        raise InvalidArgument(f"failed to load '{name}', {path} does not exist")
    if override is not None:
        config = apply_json_override(config, override, model=name)
    if config.name != name:
        raise InvalidArgument(
            f"failed to load '{name}', its config names the model '{config.name}'; the name "
            "must match the model's directory"
        )
    return config


def available_versions(model_dir: pathlib.Path) -> list[int]:
    """The numeric version directories of a model, ascending."""
    return sorted(
        int(entry.name) for entry in model_dir.iterdir() if entry.is_dir() and entry.name.isdigit()
    )


def select_versions(config: ModelConfig, available: list[int]) -> list[int]:
    """The versions the config's version policy serves (latest 1 when none is set)."""
    name = config.name
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        chosen = list(available)
    elif choice == "specific":
        missing = [v for v in policy.specific.versions if v not in available]
        if missing:
            raise InvalidArgument(
                f"failed to load '{name}', its version policy names version(s) {missing} "
                f"that are not in the repository (available: {available})"
            )
        chosen = sorted(set(policy.specific.versions))
    else:
        count = policy.latest.num_versions if choice == "latest" else 1
        chosen = available[-max(count, 1) :] if available else []
    if not chosen:
        raise InvalidArgument(f"failed to load '{name}', no version is available")
    return chosen


def _check_supported(config: ModelConfig) -> None:
    name = config.name
    if config.platform == ENSEMBLE:
        _check_ensemble(config)
        return
    backend = config.backend or ("python" if not config.platform else "")
    if backend not in ("python", IDENTITY) and engine_kind(config) is None:
        kind = config.backend or config.platform
        raise InvalidArgument(
            f"failed to load '{name}', backend '{kind}' is not supported yet (this server "
            "runs python, identity, onnxruntime_onnx and tensorrt_plan models)"
        )
    check_scheduling(config)
    if engine_kind(config) is not None and (
        config.model_transaction_policy.decoupled or instance_kind(config) == "process"
    ):
        raise InvalidArgument(
            f"failed to load '{name}', decoupled models and process instances are for python "
            "models; this model runs on an engine backend"
        )
    scheduling = config.WhichOneof("scheduling_choice")
    if config.model_transaction_policy.decoupled and scheduling is not None:
        raise InvalidArgument(
            f"failed to load '{name}', a decoupled model cannot use {scheduling}: its "
            "responses go straight to the stream"
        )
    for kind, tensors in (("input", config.input), ("output", config.output)):
        for tensor in tensors:
            if tensor.HasField("reshape"):
                # Refused at load: ignoring it would fail every request later with INTERNAL.
                raise InvalidArgument(
                    f"failed to load '{name}', {kind} '{tensor.name}': reshape is not "
                    "supported yet (declare dims as the model itself sees them)"
                )


def _labels(name: str, model_dir: pathlib.Path, output: str, filename: str) -> list[str]:
    field = f"label_filename of output '{output}'"
    data = read_confined(model_dir, filename, model=name, field=field)
    try:
        return read_labels(data)
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"failed to load '{name}', {field} '{filename}' is not UTF-8: {exc}"
        ) from None


def _check_ensemble(config: ModelConfig) -> None:
    name = config.name
    scheduling = config.WhichOneof("scheduling_choice")
    if scheduling != "ensemble_scheduling":
        raise InvalidArgument(
            f"failed to load '{name}', platform 'ensemble' needs ensemble_scheduling with its "
            f"steps (found {scheduling or 'no scheduling block'})"
        )
    if config.model_transaction_policy.decoupled:
        raise InvalidArgument(f"failed to load '{name}', decoupled ensembles are not supported")


async def _load_backend(
    config: ModelConfig,
    kind: str,
    version: int,
    version_dir: pathlib.Path,
    root: pathlib.Path,
    models: ModelLookup | None,
) -> Backend:
    """The backend for one version: an ensemble's router, an engine's, or a python model's
    threads or processes."""
    if config.platform == ENSEMBLE:
        return EnsembleBackend.load(config, version, models)
    if engine_kind(config) is not None:
        return await EngineBackend.load(config, version, version_dir, root)
    if config.backend == IDENTITY:
        return IdentityBackend(config, version)
    if kind == "process":
        return await ProcessBackend.load(config, version, version_dir, root, models=models)
    return await ThreadBackend.load(config, version, version_dir, root, models=models)


async def load_model_dir(
    config: ModelConfig,
    model_dir: pathlib.Path,
    repository: pathlib.Path,
    models: ModelLookup | None = None,
    bounds: ConfigBounds = DEFAULT_BOUNDS,
) -> dict[int, LoadedModel]:
    """Load every version the policy selects; on failure nothing stays loaded.

    ``models`` is where ensembles find their steps' models and what python models get to
    call other models in process (``args["models"]``). ``bounds`` caps what the config may
    ask for, checked before anything is built.
    """
    check_bounds(config, bounds)
    _check_supported(config)
    kind = instance_kind(config)
    sig = signature(config)
    labels = {
        spec.name: _labels(config.name, model_dir, spec.name, spec.label_filename)
        for spec in sig.outputs.values()
        if spec.label_filename
    }
    loaded: dict[int, LoadedModel] = {}
    try:
        for version in select_versions(config, available_versions(model_dir)):
            backend = await _load_backend(
                config, kind, version, model_dir / str(version), repository, models
            )
            stats = ModelStats()
            try:
                scheduler = make_scheduler(config, backend, stats)
                await scheduler.start()
            except BaseException:
                await backend.unload()
                raise
            model = LoadedModel(config, version, sig, backend, labels, scheduler, stats)
            loaded[version] = model
            await warm_up(model, model_dir)
            stats.clear()
    except BaseException:
        for model in loaded.values():
            await model.unload()
        raise
    return loaded


async def engine_model(
    engine: Engine, *, stacks: StackPool | None = None, queue_timeout: float | None = None
) -> LoadedModel:
    """A data plane over an engine its caller started and owns (with ``stacks``, when given):
    LocalManager's models. Its signature is the engine's bindings (-1: any extent, no batch
    dimension of its own), its scheduler the direct one; it never unloads the engine."""
    config = ModelConfig(name=engine.name)
    backend = EngineBackend(config, 1, engine, stacks, 1, queue_timeout=queue_timeout)
    sig = Signature.of_tensors(
        engine.name,
        ((b.name, b.datatype, b.shape) for b in engine.input_bindings().values()),
        ((b.name, b.datatype, b.shape) for b in engine.output_bindings().values()),
    )
    stats = ModelStats()
    scheduler = make_scheduler(config, backend, stats)
    await scheduler.start()
    return LoadedModel(config, 1, sig, backend, {}, scheduler, stats)
