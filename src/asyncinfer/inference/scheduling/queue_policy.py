"""Dynamic-batching settings read from a model config, and a request's priority and timeout.

``BatchingPolicy.from_config`` checks the ``dynamic_batching`` block once, at load, so that a
bad config fails the load with a message naming the model; ``place`` turns a request's
``priority`` and ``timeout`` parameters into its queue level and deadline, or says with
INVALID_ARGUMENT what is wrong with them.
"""

from __future__ import annotations

import dataclasses

from ...errors import InvalidArgument
from ...pb.inference.model_config_pb2 import ModelConfig, ModelQueuePolicy

__all__ = ["BatchingPolicy", "LevelPolicy", "QueuePlacement"]


@dataclasses.dataclass(frozen=True, slots=True)
class LevelPolicy:
    """The queue policy of one priority level (Triton's ModelQueuePolicy)."""

    max_queue_size: int  # 0: unbounded
    default_timeout_us: int  # 0: requests wait as long as it takes
    allow_timeout_override: bool
    delay_on_timeout: bool  # DELAY: run after the others; REJECT: fail with UNAVAILABLE

    @classmethod
    def from_message(cls, message: ModelQueuePolicy) -> LevelPolicy:
        return cls(
            max_queue_size=message.max_queue_size,
            default_timeout_us=message.default_timeout_microseconds,
            allow_timeout_override=message.allow_timeout_override,
            delay_on_timeout=message.timeout_action == ModelQueuePolicy.DELAY,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePlacement:
    """Where a request queues: its level (0 is the most urgent) and its timeout (0: none)."""

    level: int
    timeout_us: int
    delay_on_timeout: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BatchingPolicy:
    """A model's dynamic_batching block, checked."""

    model: str
    max_batch_size: int
    preferred_batch_sizes: frozenset[int]
    max_queue_delay_us: int
    preserve_ordering: bool
    priority_levels: int  # 0: one level, priorities not used
    default_priority: int
    levels: tuple[LevelPolicy, ...]  # levels[i] serves priority i + 1
    #: Inputs whose shapes may differ within a batch (allow_ragged_batch).
    ragged: frozenset[str] = frozenset()

    @property
    def largest_preferred(self) -> int:
        """The largest preferred batch size (max_batch_size when none is preferred)."""
        return max(self.preferred_batch_sizes, default=self.max_batch_size)

    @classmethod
    def from_config(cls, config: ModelConfig) -> BatchingPolicy:
        """The policy of ``config``; InvalidArgument naming the model when it is inconsistent."""
        name, batching = config.name, config.dynamic_batching
        problem = _config_problem(config)
        if problem:
            raise InvalidArgument(f"failed to load '{name}', dynamic_batching: {problem}")
        default = LevelPolicy.from_message(batching.default_queue_policy)
        count = max(batching.priority_levels, 1)
        levels = tuple(
            LevelPolicy.from_message(batching.priority_queue_policy[level])
            if level in batching.priority_queue_policy
            else default
            for level in range(1, count + 1)
        )
        return cls(
            model=name,
            max_batch_size=config.max_batch_size,
            preferred_batch_sizes=frozenset(batching.preferred_batch_size),
            max_queue_delay_us=batching.max_queue_delay_microseconds,
            preserve_ordering=batching.preserve_ordering,
            priority_levels=batching.priority_levels,
            default_priority=batching.default_priority_level or 1,
            levels=levels,
            ragged=frozenset(t.name for t in config.input if t.allow_ragged_batch),
        )

    def place(self, priority: int, timeout_us: int) -> QueuePlacement:
        """The queue level and timeout of a request with these parameters (0: not given)."""
        if priority == 0:
            priority = self.default_priority
        elif priority > self.priority_levels:
            allowed = (
                f"1 to {self.priority_levels}"
                if self.priority_levels
                else "none (the model has no priority levels; leave priority unset)"
            )
            raise InvalidArgument(
                f"request for model '{self.model}': priority level {priority} is out of range; "
                f"allowed: {allowed}"
            )
        level = priority - 1
        policy = self.levels[level]
        if timeout_us and not policy.allow_timeout_override:
            raise InvalidArgument(
                f"request for model '{self.model}': a timeout override ({timeout_us} us) is not "
                f"allowed at priority level {priority}; its queue policy sets "
                "allow_timeout_override false"
            )
        return QueuePlacement(
            level=level,
            timeout_us=timeout_us or policy.default_timeout_us,
            delay_on_timeout=policy.delay_on_timeout,
        )


def _config_problem(config: ModelConfig) -> str:
    batching = config.dynamic_batching
    if config.max_batch_size <= 0:
        return "the model must batch (max_batch_size > 0) to be batched dynamically"
    too_big = [
        size for size in batching.preferred_batch_size if not 0 < size <= config.max_batch_size
    ]
    if too_big:
        return (
            f"preferred_batch_size {too_big} must be between 1 and max_batch_size "
            f"{config.max_batch_size}"
        )
    levels = batching.priority_levels
    if levels == 0 and (batching.default_priority_level or batching.priority_queue_policy):
        return "default_priority_level and priority_queue_policy need priority_levels > 0"
    if levels and not 1 <= batching.default_priority_level <= levels:
        return f"default_priority_level must be between 1 and priority_levels ({levels})"
    outside = sorted(level for level in batching.priority_queue_policy if not 1 <= level <= levels)
    if outside:
        return f"priority_queue_policy names level(s) {outside} outside 1 to {levels}"
    return ""
