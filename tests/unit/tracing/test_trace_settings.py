"""Trace settings: tritonserver's --trace-config flags, and TraceSetting's semantics (per model
or global, rate, count, clearing, fixed keys), checked without a server."""

from __future__ import annotations

import pytest

from asyncinfer.errors import ConfigError, FailedPrecondition, InvalidArgument
from asyncinfer.tracing import TraceConfig, TraceSettings


def test_trace_config_reads_tritonservers_flags() -> None:
    config = TraceConfig.parse(
        [
            "mode=opentelemetry",
            "rate=10",
            "level=TIMESTAMPS",
            "level=TENSORS",
            "count=5",
            "opentelemetry,url=http://collector:4318/v1/traces",
            "opentelemetry,resource=service.name=glue",
            "opentelemetry,bsp_schedule_delay=100",
        ]
    )
    assert config.level == ("TIMESTAMPS", "TENSORS") and config.rate == 10 and config.count == 5
    assert config.url == "http://collector:4318/v1/traces"
    assert config.resource == (("service.name", "glue"),)
    assert config.batch == (("bsp_schedule_delay", 100),)
    assert config.enabled and not TraceConfig().enabled


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("triton,file=/tmp/trace.json", "Triton's own trace mode"),
        ("mode=triton", "Triton's own trace mode"),
        ("rate=often", "expected an integer"),
        ("rate=0", "trace_rate must be an integer >= 1"),
        ("level=LOUD", "trace_level must be OFF"),
        ("opentelemetry,resource=novalue", "resource takes KEY=VALUE"),
        ("colour=blue", "unknown setting"),
        ("rate", "expected [MODE,]SETTING=VALUE"),
    ],
)
def test_bad_trace_flags_say_what_was_expected(flag: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text.replace("[", r"\[")):
        TraceConfig.parse([flag])


def test_rate_samples_one_call_in_n_and_count_stops_tracing() -> None:
    settings = TraceSettings(TraceConfig(level=("TIMESTAMPS",), rate=3, count=2))
    decisions = [settings.sample() for _ in range(9)]
    assert decisions == [False, False, True, False, False, True, False, False, False]
    assert settings.get()["trace_count"] == ["0"]


def test_a_callers_sampled_flag_decides_for_its_calls() -> None:
    settings = TraceSettings(TraceConfig(level=("TIMESTAMPS",), rate=1000))
    assert settings.sample(parent_sampled=True)
    assert not settings.sample(parent_sampled=False)
    assert not TraceSettings().sample(parent_sampled=True)  # level OFF traces nothing


def test_model_settings_are_its_own_until_cleared() -> None:
    settings = TraceSettings()
    assert not settings.active
    with pytest.raises(ValueError, match="no exporter"):
        settings.on_enable(_refuse)
        settings.update({"trace_level": ["TIMESTAMPS"]}, "simple")
    settings.on_enable(lambda: None)
    own = settings.update({"trace_level": ["TIMESTAMPS"], "trace_rate": ["1"]}, "simple")
    assert own["trace_level"] == ["TIMESTAMPS"] and own["trace_rate"] == ["1"]
    assert settings.get()["trace_level"] == ["OFF"]  # the server's are unchanged
    assert settings.active and settings.sample("simple") and not settings.sample("other")
    settings.update({"trace_rate": ["7"]})  # the server's rate: the model keeps its own
    assert settings.get("simple")["trace_rate"] == ["1"]
    assert settings.get("other")["trace_rate"] == ["7"]
    cleared = settings.update({"trace_level": [], "trace_rate": []}, "simple")
    assert cleared["trace_level"] == ["OFF"] and cleared["trace_rate"] == ["7"]
    assert not settings.active
    assert settings.update({"trace_rate": []})["trace_rate"] == ["1000"]  # the start value


def _refuse() -> None:
    raise ValueError("no exporter")


def test_bad_changes_are_refused_and_change_nothing() -> None:
    settings = TraceSettings()
    for changes, text in [
        ({"trace_levels": ["OFF"]}, "unknown trace setting 'trace_levels'"),
        ({"trace_rate": ["fast"]}, "trace_rate must be an integer, got 'fast'"),
        ({"trace_count": ["-2"]}, "trace_count must be an integer >= -1"),
        ({"trace_level": ["OFF", "TIMESTAMPS"]}, "trace_level must be OFF, or one or both"),
        ({"trace_mode": ["triton"]}, "trace setting 'trace_mode' cannot be changed"),
        ({"trace_file": ["/tmp/t.json"]}, "trace setting 'trace_file' cannot be changed"),
    ]:
        with pytest.raises(InvalidArgument, match=text):
            settings.update({"trace_rate": ["5"], **changes})
        assert settings.get()["trace_rate"] == ["1000"]
    assert settings.update({"trace_mode": ["opentelemetry"]})["trace_mode"] == ["opentelemetry"]


def test_changes_are_refused_when_several_workers_serve() -> None:
    settings = TraceSettings()
    settings.reset(TraceConfig(), workers=2)
    assert settings.update({})["trace_level"] == ["OFF"]
    with pytest.raises(FailedPrecondition, match="several worker processes"):
        settings.update({"trace_rate": ["1"]})
