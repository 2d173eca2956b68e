"""bench/'s private modules for the tests (bench/ holds scripts, not a package)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _harness as harness  # noqa: E402
import _infer_common as infer_common  # noqa: E402
import _peers as peers  # noqa: E402
import _reliability as reliability  # noqa: E402

__all__ = ["BENCH", "harness", "infer_common", "peers", "reliability"]
