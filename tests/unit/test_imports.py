"""The package's import structure: no import cycle between asyncinfer's modules, and no import
of an asyncinfer module inside a function or class (the usual way to hide a cycle), so the
folder tree stays a layering that reads as the architecture.

The modules are read with ``ast``, not imported: generated modules (protoc's ``asyncinfer.pb``,
flatc's ``asyncinfer.fb``) are left out, imports under ``if TYPE_CHECKING:`` do not count, and
lazy imports of optional third-party packages (onnxruntime, tensorrt, cuda-python) inside
functions are allowed.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import asyncinfer
import asyncinfer.inference

PACKAGE = pathlib.Path(asyncinfer.__file__).parent
ROOT = "asyncinfer"
GENERATED = {("pb",), ("fb",)}


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1:2] in GENERATED:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str, tree: ast.AST) -> Iterator[tuple[ast.stmt, list[str], bool]]:
    """(node, imported asyncinfer modules, at module level) for every import in ``tree``."""
    package = name if _is_package(name) else name.rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> Iterator[tuple[ast.stmt, list[str], bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                yield child, [a.name for a in child.names if _ours(a.name)], top
            elif isinstance(child, ast.ImportFrom):
                yield child, _from_targets(child, package), top
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            yield from visit(child, top and not nested)

    yield from visit(tree, True)


def _ours(module: str) -> bool:
    return (module == ROOT or module.startswith(ROOT + ".")) and not module.startswith(f"{ROOT}.pb")


def _from_targets(node: ast.ImportFrom, package: str) -> list[str]:
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    if not _ours(module):
        return []
    # `from pkg import sub` imports the submodule pkg.sub when there is one.
    subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
    return [module, *subs]


def _graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs first: each target, and its packages' __init__
    (those that are not already the importer's own, which are mid-import by then)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, set())
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for _, targets, top in _imports(name, ast.parse(path.read_text())):
            if not top:
                continue
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    step = ".".join(parts[:i])
                    if step in MODULES and step not in own and step != name:
                        edges.add(step)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_inside_asyncinfer() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_function_level_import_of_an_asyncinfer_module() -> None:
    hidden = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {targets[0]}"
        for name, path in MODULES.items()
        for node, targets, top in _imports(name, ast.parse(path.read_text()))
        if targets and not top
    ]
    assert hidden == []


def test_the_inference_facade_is_pinned() -> None:
    assert set(asyncinfer.inference.__all__) == {
        "CONTEXTS",
        "SERVER_NAME",
        "Cancellation",
        "ControlMode",
        "ElementValues",
        "InferInput",
        "InferRequest",
        "InferResponse",
        "InferenceResources",
        "LoadedModel",
        "LogSettings",
        "ModelCaller",
        "ModelError",
        "ModelLookup",
        "ModelRepository",
        "ModelStats",
        "OutputTensor",
        "Request",
        "RequestShm",
        "RequestTiming",
        "RequestedOutput",
        "Response",
        "ResponseSender",
        "SharedMemory",
        "ShmSpan",
        "Tensor",
        "TraceSettings",
        "build_server",
        "shm_span",
    }
    for name in asyncinfer.inference.__all__:
        assert hasattr(asyncinfer.inference, name)


def test_no_two_modules_share_a_name_for_different_things() -> None:
    # A module's last name is what a reader sees first; the same one twice must be the same
    # kind of thing. __init__ and the conventional base/_-private helpers aside, every module
    # name appears once in the package.
    # metrics: the server's and the inference service's; reflection: gRPC reflection served
    # (_reflection) and used by clients (client/reflection).
    allowed = {"init__", "base", "metrics", "reflection"}
    seen: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        last = path.stem.lstrip("_")  # a private module's name counts too
        if last not in allowed:
            seen.setdefault(last, []).append(name)
    assert {last: names for last, names in seen.items() if len(names) > 1} == {}
