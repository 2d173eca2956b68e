from __future__ import annotations

import logging

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinfer import errors


@given(st.sampled_from([c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]), st.text())
def test_every_status_maps_back_to_one_class(code: grpc.StatusCode, message: str) -> None:
    error = errors.from_status(code, message)
    assert error.code is code
    assert error.message == message
    assert type(errors.from_status(error.code, message)) is type(error)


def test_each_rpc_error_class_has_its_own_code() -> None:
    codes = [cls.code for cls in errors.RpcError.__subclasses__()]
    assert len(codes) == len(set(codes)) == len(grpc.StatusCode) - 1


def test_internal_error_logs_traceback_once_and_hides_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise ValueError("password=hunter2")
    except ValueError as exc:
        with caplog.at_level(logging.ERROR):
            client_error = errors.internal_error(exc, "/svc/Method")
    assert isinstance(client_error, errors.Unknown)
    assert "hunter2" not in client_error.message
    error_id = client_error.message.split("id=")[1].rstrip(")")
    records = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None


def test_local_errors_are_not_rpc_errors() -> None:
    assert not issubclass(errors.ConfigError, errors.RpcError)
    assert not issubclass(errors.UsageError, errors.RpcError)
