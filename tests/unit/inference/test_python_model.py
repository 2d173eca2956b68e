"""The data plane's way of building a model's Request gives what ``Request(...)`` gives."""

from __future__ import annotations

import numpy as np

from asyncinfer.inference.python_model import Request
from asyncinfer.inference.scheduling import SizedRequest


def test_a_planned_request_is_the_request_init_makes() -> None:
    arrays = {"A": np.arange(4, dtype=np.int32), "B": np.ma.masked_array([1.0, 2.0])}
    parameters = {"priority": 1}
    made = Request(arrays, requested_output_names=("OUT",), parameters=parameters, id="7")
    planned = SizedRequest.planned(arrays, 1, ("OUT",), parameters, "7", 12.5)
    for request in (made, planned):
        assert [t.name for t in request.inputs()] == ["A", "B"]
        assert request.input("A").as_numpy() is arrays["A"]  # type: ignore[union-attr]
        # np.asarray's answer for anything but a plain ndarray: no subclass reaches the model
        assert type(request.input("B").as_numpy()) is np.ndarray  # type: ignore[union-attr]
        assert request.requested_output_names == ("OUT",)
        assert request.parameters == parameters and request.parameters is not parameters
        assert request.id == "7" and not request.cancelled()
    assert (planned.batch_size, planned.deadline) == (1, 12.5)
    assert SizedRequest.planned({}, 1, (), {}, "", None).parameters == {}
