"""Caps on the sizes a model config may ask for, checked before anything of that size is built.

A config can come from a client (a load request's override), so every count in it that the
server turns into objects, threads, processes or per-request work is capped: instances,
priority levels, queue sizes, the batch size, sequence slots and backlog, warmup runs, tensors
and ensemble steps. A config beyond a cap fails its load with InvalidArgument naming the field
and the cap; the caps are :class:`ConfigBounds` (``ModelRepository(bounds=...)``,
``build_server(config_bounds=...)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from ...errors import ConfigError, InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig

__all__ = ["ConfigBounds", "check_bounds"]


@dataclasses.dataclass(frozen=True)
class ConfigBounds:
    """The largest value a model config may give each capped field."""

    #: Instances of one version, summed over its instance groups.
    max_instances: int = 128
    max_batch_size: int = 65_536
    #: dynamic_batching.priority_levels.
    max_priority_levels: int = 256
    #: max_queue_size of any queue policy (0, unbounded, stays allowed: the bound on
    #: concurrent calls still holds it).
    max_queue_size: int = 1_000_000
    #: sequence_batching.oldest.max_candidate_sequences and the max_sequence_backlog parameter.
    max_sequences: int = 65_536
    #: Warmup executions: the sum of every sample's count.
    max_warmup_runs: int = 10_000
    #: Inputs plus outputs (and batch inputs/outputs) one model declares.
    max_tensors: int = 4_096
    max_ensemble_steps: int = 1_024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ConfigBounds.{field.name} must be an int >= 1, not {value!r}")


def check_bounds(config: ModelConfig, bounds: ConfigBounds) -> None:
    """InvalidArgument naming the first field of ``config`` beyond its cap in ``bounds``."""
    for field, value, cap, bound in _capped(config, bounds):
        if value > cap:
            raise InvalidArgument(
                f"failed to load '{config.name}', {field} is {value}, more than the cap of "
                f"{cap} (ConfigBounds.{bound})"
            )


def _capped(config: ModelConfig, bounds: ConfigBounds) -> Iterator[tuple[str, int, int, str]]:
    """(field, value, cap, bound name) for every capped value of ``config``."""
    yield (
        "the instance_group count",
        sum(max(group.count, 1) for group in config.instance_group),
        bounds.max_instances,
        "max_instances",
    )
    yield "max_batch_size", config.max_batch_size, bounds.max_batch_size, "max_batch_size"
    tensors = len(config.input) + len(config.output)
    tensors += len(config.batch_input) + len(config.batch_output)
    yield "the number of inputs and outputs", tensors, bounds.max_tensors, "max_tensors"
    batching = config.dynamic_batching
    yield (
        "dynamic_batching.priority_levels",
        batching.priority_levels,
        bounds.max_priority_levels,
        "max_priority_levels",
    )
    policies = [("default_queue_policy", batching.default_queue_policy)]
    policies += [
        (f"priority_queue_policy[{key}]", policy)
        for key, policy in batching.priority_queue_policy.items()
    ]
    for where, policy in policies:
        yield (
            f"dynamic_batching.{where}.max_queue_size",
            policy.max_queue_size,
            bounds.max_queue_size,
            "max_queue_size",
        )
    yield (
        "dynamic_batching.priority_queue_policy entries",
        len(batching.priority_queue_policy),
        bounds.max_priority_levels,
        "max_priority_levels",
    )
    yield from _sequence_caps(config, bounds)
    yield (
        "the model_warmup count",
        sum(max(sample.count, 1) for sample in config.model_warmup),
        bounds.max_warmup_runs,
        "max_warmup_runs",
    )
    yield (
        "the number of ensemble_scheduling steps",
        len(config.ensemble_scheduling.step),
        bounds.max_ensemble_steps,
        "max_ensemble_steps",
    )


def _sequence_caps(
    config: ModelConfig, bounds: ConfigBounds
) -> Iterator[tuple[str, int, int, str]]:
    yield (
        "sequence_batching.oldest.max_candidate_sequences",
        config.sequence_batching.oldest.max_candidate_sequences,
        bounds.max_sequences,
        "max_sequences",
    )
    backlog = config.parameters.get("max_sequence_backlog")
    text = backlog.string_value.strip() if backlog is not None else ""
    if text.isdigit():  # anything else is refused by the sequence policy
        value = int(text) if len(text) < 30 else 10**30  # int() of 5,000 digits raises
        yield "parameter max_sequence_backlog", value, bounds.max_sequences, "max_sequences"
