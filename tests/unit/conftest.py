"""Fixtures of the unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from ..onnx_models import add_model, mlp_model


# The onnx skip lives in the fixtures, not at module level: a module-level importorskip in this
# conftest would skip the whole unit tree on a machine without onnx.
@pytest.fixture
def mlp() -> tuple[bytes, Any]:
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    return mlp_model()


@pytest.fixture
def add_onnx() -> bytes:
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    return add_model()
