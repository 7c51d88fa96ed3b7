"""The package's folders are its layers: imports point down and run in no circle.

Pure, no sockets: every module of `rtcserver/` is parsed with `ast`, each import
(type-only and function-level ones too) becomes an arrow to the module it names, and
the arrows are held against the numbered layer list in docs/ARCHITECTURE.md. The
checks are small functions tested on made-up graphs first, so that each can fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rtcserver"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
LAYER_LIST = "<!-- layers: tests/test_layers.py reads this list (bottom first) -->"
# A module longer than this says at the top of its docstring why ("Long because ...").
LONG_MODULE = 450

Graph = Mapping[str, set[str]]


# ---------------------------------------------------------------- reading the code


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The rtcserver modules that `name` imports, wherever the import stands."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("rtcserver"):
                continue
            # `from . import calls` names a module; `from .calls import X` a name in one.
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules or {target})
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def read_layers(text: str) -> list[list[str]]:
    """The numbered list under the marker: one entry per layer, bottom first."""
    after = text.split(LAYER_LIST, 1)[1]
    layers: list[list[str]] = []
    for line in after.splitlines()[1:]:
        match = re.match(r"(\d+)\. (.*)", line)
        if match is None:
            break
        assert int(match.group(1)) == len(layers) + 1, f"layers out of order at {line!r}"
        owners = match.group(2).split(":", 1)[0]
        layers.append(re.findall(r"`(rtcserver[\w.]*)`", owners))
    return layers


# ---------------------------------------------------------------- the checks


def layer_of(module: str, layers: list[list[str]]) -> int:
    """The layer whose entry is the longest prefix of `module` (a folder holds all of
    its files; `rtcserver` itself holds only the package's `__init__`)."""
    best, best_length = -1, -1
    for index, owners in enumerate(layers):
        for owner in owners:
            holds = module == owner or (owner != "rtcserver" and module.startswith(owner + "."))
            if holds and len(owner) > best_length:
                best, best_length = index, len(owner)
    if best < 0:
        raise LookupError(f"{module} is in no layer of docs/ARCHITECTURE.md")
    return best


def upward_imports(graph: Graph, layers: list[list[str]]) -> list[str]:
    return sorted(
        f"{module} (layer {layer_of(module, layers) + 1}) imports {target} "
        f"(layer {layer_of(target, layers) + 1})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target, layers) > layer_of(module, layers)
    )


def circles(graph: Graph) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def unexplained_long_modules(modules: Mapping[str, Path]) -> list[str]:
    long = []
    for name, path in modules.items():
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONG_MODULE and "Long because" not in docstring:
            long.append(f"{name}: {lines} lines, and no 'Long because' in its docstring")
    return long


# ---------------------------------------------------------------- the checks can fail

SAMPLE_LAYERS = [["rtcserver", "rtcserver.low"], ["rtcserver.mid"], ["rtcserver.top"]]


def test_checker_finds_an_import_that_goes_up_a_layer() -> None:
    graph = {"rtcserver.low.a": {"rtcserver.mid.b"}, "rtcserver.mid.b": set()}
    assert upward_imports(graph, SAMPLE_LAYERS) == [
        "rtcserver.low.a (layer 1) imports rtcserver.mid.b (layer 2)"
    ]
    assert upward_imports({"rtcserver.top": {"rtcserver.low.a"}}, SAMPLE_LAYERS) == []


def test_checker_finds_a_circle_inside_one_layer_and_across_three_files() -> None:
    graph = {
        "rtcserver.mid.a": {"rtcserver.mid.b"},
        "rtcserver.mid.b": {"rtcserver.mid.c"},
        "rtcserver.mid.c": {"rtcserver.mid.a", "rtcserver.low.x"},
        "rtcserver.low.x": set(),
    }
    assert circles(graph) == [["rtcserver.mid.a", "rtcserver.mid.b", "rtcserver.mid.c"]]
    assert circles({"rtcserver.mid.a": {"rtcserver.low.x"}}) == []


def test_checker_places_a_module_by_its_longest_prefix_and_refuses_an_unlisted_one() -> None:
    assert layer_of("rtcserver", SAMPLE_LAYERS) == 0
    assert layer_of("rtcserver.mid.deep.file", SAMPLE_LAYERS) == 1
    with pytest.raises(LookupError):
        layer_of("rtcserver.elsewhere", SAMPLE_LAYERS)


def test_reader_sees_type_only_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "rtcserver" / "mid"
    package.mkdir(parents=True)
    source = package / "b.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import low\n"
        "from .a import thing\n"
        "if TYPE_CHECKING:\n"
        "    from ..top.c import Other\n"
        "def later():\n"
        "    import rtcserver.low.x\n"
    )
    known = {"rtcserver.low", "rtcserver.low.x", "rtcserver.mid.a", "rtcserver.top.c"}
    assert imports_of("rtcserver.mid.b", source, known) == known


# ---------------------------------------------------------------- the package itself


def test_every_module_is_in_a_layer_and_no_import_goes_up() -> None:
    layers = read_layers(ARCHITECTURE.read_text())
    assert len(layers) >= 9, layers
    graph = import_graph()
    for module in graph:
        layer_of(module, layers)  # raises for a module no layer holds
    assert upward_imports(graph, layers) == []


def test_no_import_circle_anywhere_in_the_package() -> None:
    assert circles(import_graph()) == []


def test_no_module_is_long_without_a_reason_at_its_top() -> None:
    assert unexplained_long_modules(package_modules()) == []


def test_every_layer_says_what_it_is_and_what_it_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in docstring, f"{init.relative_to(ROOT)} does not say"
