"""Triton datatypes for the inference service: the table lives in :mod:`asyncinfer.datatypes`.

Kept so that ``asyncinfer.inference.datatypes`` imports keep working; new code imports
``asyncinfer.datatypes``.
"""

from __future__ import annotations

from ..datatypes import BYTES, DATATYPES, Datatype, from_config, from_numpy, from_wire

__all__ = ["BYTES", "DATATYPES", "Datatype", "from_config", "from_numpy", "from_wire"]
