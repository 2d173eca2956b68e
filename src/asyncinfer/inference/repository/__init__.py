"""The model repository: which models exist and are ready, and how each one loads.

``ModelRepository`` (repository.py) holds the models of one repository folder and is the only
way they change (load, unload, poll). A load reads the config (model_config.py), picks a backend
and a scheduler (loader.py), plans an ensemble's steps (ensemble.py) and runs its warmup samples
(warmup.py) before the version serves; config_bounds.py caps what a config may ask for.
"""

from __future__ import annotations

from .config_bounds import ConfigBounds
from .repository import CONTROL_MODES, ControlMode, ModelRecord, ModelRepository, parse_version

__all__ = [
    "CONTROL_MODES",
    "ConfigBounds",
    "ControlMode",
    "ModelRecord",
    "ModelRepository",
    "parse_version",
]
