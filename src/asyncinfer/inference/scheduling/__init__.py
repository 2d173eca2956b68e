"""Scheduling: how a model version's requests reach its backend.

``make_scheduler`` picks a scheduler from the model config: ``dynamic_batching`` -> the
DynamicBatcher (dynamic_batcher.py, Triton's dynamic batcher with its queue policies),
``sequence_batching`` -> the SequenceBatcher (sequence_batcher.py, stateful models), else the
DirectScheduler (direct.py). A config with ``batch_input`` gets its batch inputs added to every
batch whichever scheduler forms it (ragged.py). The config is read here, into plain policies: a
scheduler never sees a protobuf message. Only the data plane (``LoadedModel``) calls a
scheduler.
"""

from __future__ import annotations

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig
from ..backends.base import Backend
from ..statistics import ModelStats
from .direct import DirectScheduler
from .dynamic_batcher import DynamicBatcher
from .queue_policy import BatchingPolicy
from .ragged import RaggedBatching, WithBatchInputs
from .scheduler import Scheduler, SizedRequest
from .sequence_batcher import SequenceBatcher
from .sequence_policy import SequencePolicy

__all__ = [
    "SUPPORTED_SCHEDULING",
    "DirectScheduler",
    "DynamicBatcher",
    "Scheduler",
    "SequenceBatcher",
    "SizedRequest",
    "check_scheduling",
    "make_scheduler",
]

#: The config's scheduling choices this server runs (None: no scheduling block).
SUPPORTED_SCHEDULING: tuple[str | None, ...] = (None, "dynamic_batching", "sequence_batching")


def check_scheduling(config: ModelConfig) -> None:
    """InvalidArgument naming the model when its scheduling choice is not available here, or
    its ragged batching is not right (Triton's texts).

    Called before a backend loads, so that an unsupported config costs nothing.
    """
    choice = config.WhichOneof("scheduling_choice")
    if choice not in SUPPORTED_SCHEDULING:
        raise InvalidArgument(f"failed to load '{config.name}', {choice} is not supported yet")
    RaggedBatching.from_config(config)


def make_scheduler(config: ModelConfig, backend: Backend, stats: ModelStats) -> Scheduler:
    """The scheduler the config asks for; InvalidArgument naming the model when it cannot be."""
    if config.platform == "ensemble" and config.HasField("ensemble_scheduling"):
        # An ensemble only routes between its steps' models, and each of those has its own
        # scheduler (batching, queues, instances): the ensemble itself needs no queue.
        return DirectScheduler(config.max_batch_size, backend, stats)
    check_scheduling(config)
    ragged = RaggedBatching.from_config(config)
    if ragged.batch_inputs:
        backend = WithBatchInputs(backend, ragged)
    choice = config.WhichOneof("scheduling_choice")
    if choice == "dynamic_batching":
        return DynamicBatcher(BatchingPolicy.from_config(config), backend, stats)
    if choice == "sequence_batching":
        return SequenceBatcher(SequencePolicy.from_config(config), backend, stats)
    return DirectScheduler(config.max_batch_size, backend, stats)
