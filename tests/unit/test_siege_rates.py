from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.client import Constant, Cyclic, Linear, Rate

rates = st.floats(0, 10_000)
spans = st.floats(0.1, 100)


def _integral(rate: Rate, t: float, steps: int = 4000) -> float:
    # Midpoint rule, split where a Linear ramp ends: a step straddling that corner would be
    # off by more than the tolerance for short ramps over long spans.
    corner = getattr(rate, "over", None)
    if isinstance(rate, Linear) and corner is not None and 0 < corner < t:
        return _midpoint(rate, 0.0, corner, steps) + _midpoint(rate, corner, t, steps)
    return _midpoint(rate, 0.0, t, steps)


def _midpoint(rate: Rate, a: float, b: float, steps: int) -> float:
    dt = (b - a) / steps
    return sum(rate.at(a + (i + 0.5) * dt) for i in range(steps)) * dt


@given(
    st.one_of(
        st.builds(Constant, rates),
        st.builds(Linear, rates, rates, spans),
        st.builds(Cyclic, rates, rates, spans),
    ),
    st.floats(0.01, 50),
)
def test_due_is_the_integral_of_the_rate(rate: Rate, t: float) -> None:
    assert rate.due(t) == pytest.approx(_integral(rate, t), rel=1e-3, abs=1e-3)
