"""Fixtures of the unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from ..onnx_models import mlp_model

pytest.importorskip("onnx", reason="the onnx package is not installed")


@pytest.fixture
def mlp() -> tuple[bytes, Any]:
    return mlp_model()
