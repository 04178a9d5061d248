"""Data flows one way: no module imports from a layer above its own, and no import cycle.

Layers, bottom to top (a module may import its own layer and those below):

0. foundation: harness.errors, harness.elf, harness.kfunc_abi, harness.arch, harness.procs,
   harness.cache (and the package root)
1. harness.btf        -- BTF bytes and types
2. harness.btfids     -- the resolve_btfids drop-in, built on btf
3. harness.kbuild     -- kernel builds, running btfids
4. harness.targets    -- QEMU guests and boards
5. harness.progs      -- compiling, loading and judging BPF programs on a target
6. harness.session    -- build + boot + judge for one request
7. harness.matrix, harness.bisect -- features built on sessions
8. the command line: harness.cli, the verb modules it loads (harness.cli.STAGE_MODULES),
   every __main__ and harness.pytest_plugin

Imports under `if TYPE_CHECKING:` are for annotations only and are not counted; imports
inside functions are (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from harness.cli import STAGE_MODULES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
CLI = frozenset({"harness.cli", "harness.__main__", "harness.pytest_plugin", *STAGE_MODULES})
LAYERS: dict[str, int] = {
    "harness": 0, "harness.errors": 0, "harness.elf": 0, "harness.kfunc_abi": 0,
    "harness.arch": 0, "harness.procs": 0, "harness.cache": 0,
    "harness.btf": 1,
    "harness.btfids": 2,
    "harness.kbuild": 3,
    "harness.targets": 4,
    "harness.progs": 5,
    "harness.session": 6,
    "harness.matrix": 7, "harness.bisect": 7,
}
CLI_LAYER = 8


@dataclass(frozen=True)
class Import:
    source: str   # importing module
    target: str   # imported module
    where: str    # path:line


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer(module: str) -> int:
    if module in CLI or module.endswith(".__main__"):
        return CLI_LAYER
    probe = module
    while probe:
        if probe in LAYERS:
            return LAYERS[probe]
        probe = probe.rpartition(".")[0]
    raise AssertionError(f"{module} has no layer: add it to tests/test_layers.py")


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(known: dict[str, Path]) -> list[Import]:
    """Every harness import of every harness module, resolved to the module imported."""
    out = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                # `from harness import session` imports a module; `from x import name` x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                           for a in node.names]
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target.startswith("harness") and target != name:
                    out.append(Import(name, target, where))
    return out


def upward(found: list[Import]) -> list[str]:
    """The imports that go from a layer to a higher one, as `path:line: what` lines."""
    return [f"{i.where}: {i.source} (layer {layer(i.source)}) imports {i.target} "
            f"(layer {layer(i.target)})"
            for i in found if layer(i.target) > layer(i.source)]


def test_no_import_from_a_higher_layer() -> None:
    bad = upward(imports(modules()))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    known = modules()
    edges: dict[str, dict[str, str]] = {name: {} for name in known}
    for i in imports(known):
        edges[i.source].setdefault(i.target, i.where)
    cycles = _cycles(edges)
    text = ["  " + " -> ".join(f"{m} ({edges[m][n]})"
                               for m, n in zip(c, [*c[1:], c[0]], strict=True))
            for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(text)


def _cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)
    return [_one_cycle(set(g), edges) for g in groups]


def _one_cycle(group: set[str], edges: dict[str, dict[str, str]]) -> list[str]:
    start = min(group)
    path, seen = [start], {start}
    while True:
        nxt = next(n for n in sorted(edges[path[-1]]) if n in group)
        if nxt == start or nxt in seen:
            return path[path.index(nxt):] if nxt in seen and nxt != start else path
        path.append(nxt)
        seen.add(nxt)


def test_the_checker_sees_a_violation() -> None:
    """The walk finds real imports (lazy ones included), flags the upward import this
    project once had (btf.kfuncs -> btfids.elf) and finds a cycle, or it proves nothing."""
    found = imports(modules())
    pairs = {(i.source, i.target) for i in found}
    assert ("harness.btfids.resolve", "harness.btf") in pairs
    assert ("harness.progs.cli", "harness.session") in pairs  # inside a function
    old = Import("harness.btf.kfuncs", "harness.btfids.elf", "harness/btf/kfuncs.py:192")
    assert upward([old]) == ["harness/btf/kfuncs.py:192: harness.btf.kfuncs (layer 1) imports "
                             "harness.btfids.elf (layer 2)"]
    assert _cycles({"a": {"b": "x:1"}, "b": {"a": "y:2"}, "c": {}}) == [["a", "b"]]
