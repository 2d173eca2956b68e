from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer.client import Constant, Cyclic, Linear, Rate

rates = st.floats(0, 10_000)
spans = st.floats(0.1, 100)


def _integral(rate: Rate, t: float, steps: int = 4000) -> float:
    dt = t / steps
    return sum(rate.at((i + 0.5) * dt) for i in range(steps)) * dt


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
