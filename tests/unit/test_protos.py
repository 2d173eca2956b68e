"""asyncinfer.protos: users' .proto files compiled at run time into a bounded, shared cache."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import asyncinfer
from asyncinfer.errors import ConfigError
from asyncinfer.protos import ProtoCache, load, load_grpc, write_stubs


def _unique() -> str:
    """A fresh name: protobuf's descriptor pool is process-wide, and every test shares it."""
    return f"t{uuid.uuid4().hex[:12]}"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _service(tmp_path: Path) -> tuple[Path, str]:
    """A service proto importing a file of its own, a well-known type and asyncinfer's tensor."""
    name = _unique()
    _write(
        tmp_path / "protos" / name / "common.proto",
        f'syntax = "proto3";\npackage {name};\nmessage Note {{ string text = 1; }}\n',
    )
    service = _write(
        tmp_path / "protos" / name / "service.proto",
        f"""syntax = "proto3";
package {name};
import "{name}/common.proto";  // a file of the user's own, under the include root
import "google/protobuf/timestamp.proto";
import "asyncinfer/pb/tensor.proto";
service Greeter {{ rpc Greet(Hello) returns (Note); }}
message Hello {{
  Note note = 1;
  google.protobuf.Timestamp at = 2;
  asyncinfer.Tensor tensor = 3;
}}
""",
    )
    return service, name


def test_load_resolves_imports_and_names_modules_by_include_root(tmp_path: Path) -> None:
    service, name = _service(tmp_path)
    cache = ProtoCache(tmp_path / "cache")
    pb2 = load(service, include=[tmp_path / "protos"], cache=cache)
    assert pb2.__name__ == f"{name}.service_pb2"
    assert sys.modules[f"{name}.common_pb2"].Note is type(pb2.Hello().note)
    hello = pb2.Hello(
        note={"text": "hi"}, tensor={"datatype": "FP32", "shape": [1], "raw": b"1234"}
    )
    hello.at.FromSeconds(7)
    assert pb2.Hello.FromString(hello.SerializeToString()) == hello
    method = asyncinfer.rpc_method(pb2, "Greeter", "Greet")
    assert method.full_name == f"{name}.Greeter.Greet"
    assert method.output_type.full_name == f"{name}.Note"


def test_load_grpc_gives_stubs_and_servicers(tmp_path: Path) -> None:
    service, _ = _service(tmp_path)
    grpc_module = load_grpc(service, include=[tmp_path / "protos"], cache=ProtoCache(tmp_path))
    assert hasattr(grpc_module, "GreeterStub") and hasattr(grpc_module, "GreeterServicer")


def test_a_second_load_hits_the_cache_and_changes_to_imports_miss_it(tmp_path: Path) -> None:
    service, name = _service(tmp_path)
    include = [tmp_path / "protos"]
    first = load(service, include=include, cache=ProtoCache(tmp_path / "cache"))
    again = ProtoCache(tmp_path / "cache")  # as another process would see the folder
    assert load(service, include=include, cache=again) is first
    assert again.statistics().hits == 1 and again.statistics().compiles == 0
    # The key covers imported files: a changed import is a new entry (loaded under a new name,
    # since this process already holds the old descriptors).
    moved = tmp_path / "moved"
    other = _unique()
    for file in (tmp_path / "protos" / name).iterdir():
        _write(moved / other / file.name, file.read_text().replace(name, other))
    load(moved / other / "service.proto", include=[moved], cache=again)
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert again.statistics().compiles == 1 and len(entries) == 2
    common = moved / other / "common.proto"
    common.write_text(
        common.read_text().replace("string text = 1;", "string text = 1; int32 n = 2;")
    )
    fresh = ProtoCache(tmp_path / "cache")
    with pytest.raises(ConfigError, match="changed since this process loaded it"):
        load(moved / other / "service.proto", include=[moved], cache=fresh)
    assert fresh.statistics().compiles == 1  # compiled anew; the clash is in this process only


def test_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    broken = _write(
        tmp_path / f"{_unique()}.proto",
        'syntax = "proto3";\nmessage A {\n  int32 a = 1\n  string b = 2;\n}\n',
    )
    with pytest.raises(ConfigError) as caught:
        load(broken, cache=ProtoCache(tmp_path / "cache"))
    assert f'{broken}:4:3: Expected ";"' in str(caught.value)


def test_a_missing_import_names_the_importing_line(tmp_path: Path) -> None:
    name = _unique()
    importer = _write(
        tmp_path / f"{name}.proto",
        f'syntax = "proto3";\npackage {name};\nimport "nowhere/{name}.proto";\n',
    )
    with pytest.raises(ConfigError) as caught:
        load(importer, cache=ProtoCache(tmp_path / "cache"))
    message = str(caught.value)
    assert f"{importer}:3:1" in message and f"nowhere/{name}.proto" in message


def test_two_files_of_one_name_clash_with_a_message_naming_both(tmp_path: Path) -> None:
    name = _unique()
    first = _write(tmp_path / "a" / f"{name}.proto", f'syntax = "proto3";\npackage {name}.a;\n')
    second = _write(tmp_path / "b" / f"{name}.proto", f'syntax = "proto3";\npackage {name}.b;\n')
    cache = ProtoCache(tmp_path / "cache")
    load(first, cache=cache)
    with pytest.raises(ConfigError) as caught:
        load(second, cache=cache)
    assert str(first) in str(caught.value) and str(second) in str(caught.value)


def test_the_same_contents_from_two_places_share_one_module(tmp_path: Path) -> None:
    name = _unique()
    text = f'syntax = "proto3";\npackage {name};\nmessage M {{ int32 x = 1; }}\n'
    first = load(_write(tmp_path / "a" / f"{name}.proto", text), cache=ProtoCache(tmp_path / "c1"))
    second = load(_write(tmp_path / "b" / f"{name}.proto", text), cache=ProtoCache(tmp_path / "c2"))
    assert second is first


def test_a_symbol_defined_twice_is_a_config_error(tmp_path: Path) -> None:
    name = _unique()
    text = f'syntax = "proto3";\npackage {name};\nmessage M {{ int32 x = 1; }}\n'
    cache = ProtoCache(tmp_path / "cache")
    load(_write(tmp_path / f"{name}_one.proto", text), cache=cache)
    with pytest.raises(ConfigError, match=f"{name}_two.proto.*once per process"):
        load(_write(tmp_path / f"{name}_two.proto", text), cache=cache)


def test_the_cache_keeps_at_most_max_entries(tmp_path: Path) -> None:
    cache = ProtoCache(tmp_path / "cache", max_entries=2)
    for _ in range(3):
        name = _unique()
        load(
            _write(tmp_path / f"{name}.proto", f'syntax = "proto3";\npackage {name};\n'),
            cache=cache,
        )
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert cache.statistics().evictions == 1
    with pytest.raises(ConfigError, match="max_entries"):
        ProtoCache(tmp_path, max_entries=0)


def test_processes_compiling_one_file_at_once_agree_on_one_entry(tmp_path: Path) -> None:
    name = _unique()
    proto = _write(tmp_path / f"{name}.proto", f'syntax = "proto3";\npackage {name};\n')
    env = {**os.environ, "ASYNCINFER_PROTO_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "asyncinfer.protos", "compile", str(proto)]
    children = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    printed = {child.communicate(timeout=60)[0].strip() for child in children}
    assert [child.returncode for child in children] == [0, 0, 0, 0]
    assert len(printed) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(printed.pop()).name]


def test_an_unwritable_cache_says_how_to_move_it(tmp_path: Path) -> None:
    blocker = _write(tmp_path / "file", "")
    name = _unique()
    proto = _write(tmp_path / f"{name}.proto", f'syntax = "proto3";\npackage {name};\n')
    with pytest.raises(ConfigError, match="ASYNCINFER_PROTO_CACHE"):
        load(proto, cache=ProtoCache(blocker / "cache"))


def test_write_stubs_writes_typed_stubs_for_a_file_and_its_imports(tmp_path: Path) -> None:
    service, name = _service(tmp_path)
    written = write_stubs([service], tmp_path / "typings", include=[tmp_path / "protos"])
    relative = sorted(p.relative_to(tmp_path / "typings").as_posix() for p in written)
    assert relative == [
        f"{name}/common_pb2.pyi",
        f"{name}/common_pb2_grpc.pyi",
        f"{name}/service_pb2.pyi",
        f"{name}/service_pb2_grpc.pyi",
    ]
    stub = (tmp_path / "typings" / name / "service_pb2.pyi").read_text()
    assert "class Hello(" in stub and "def note(self) -> " in stub
