"""The import graph of ``socrec_online``, ``streams`` and ``benchmarks`` (issue #20 item 2): no circle,
even one hidden by an import inside a function, and no ``_private`` name imported from another module.
Read with ``ast`` (nothing is imported), so a lazy import counts like any other; an import under
``if TYPE_CHECKING:`` never runs, so it makes no circle (it still may not import a private name).
The product (``socrec_online``, ``streams``) never imports ``benchmarks``, which is not in the wheel,
except the ``socrec bench`` commands, inside the command function (issue #20 item 4).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("socrec_online", "streams", "benchmarks")
PRODUCT = ("socrec_online", "streams")
CLI = ("streams.cli",)  # the package whose bench commands may import benchmarks


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _known(name: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


def _nodes(tree: ast.AST, typing_only: bool) -> list[ast.AST]:
    """Every node, without the bodies of ``if TYPE_CHECKING:`` unless ``typing_only``."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if not typing_only and isinstance(node, ast.If) and _is_type_checking(node):
            todo += [node.test, *node.orelse]
            continue
        todo += ast.iter_child_nodes(node)
    return out


def _imports(
    mod: str, path: Path, mods: dict[str, Path], typing_only: bool = False
) -> list[tuple[str, str | None]]:
    """(imported module, name imported from it or None) for every import anywhere in the file
    (those under ``if TYPE_CHECKING:`` only when ``typing_only``)."""
    out: list[tuple[str, str | None]] = []
    for node in _nodes(ast.parse(path.read_text(encoding="utf-8")), typing_only):
        if isinstance(node, ast.Import):
            out += [(m, None) for a in node.names if (m := _known(a.name, mods))]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            for a in node.names:
                if f"{base}.{a.name}" in mods:  # ``from package import module``
                    out.append((f"{base}.{a.name}", None))
                elif m := _known(base, mods):
                    out.append((m, a.name))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {dep for dep, _ in _imports(m, p, mods) if dep != m} for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_count_and_type_checking_ones_only_when_asked() -> None:
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\ndef f():\n    import b\n"
    tree = ast.parse(code)
    seen = {n.names[0].name for n in _nodes(tree, False) if isinstance(n, ast.Import)}
    assert seen == {"b"}
    assert {n.names[0].name for n in _nodes(tree, True) if isinstance(n, ast.Import)} == {"a", "b"}


def test_no_import_circle_in_socrec_online_streams_and_benchmarks() -> None:
    graph = _graph()
    assert graph.get("socrec_online.service.engine") and graph.get("benchmarks.reliability")
    assert _cycles(graph) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    mods = _modules()
    private = [
        f"{m} imports {name} from {dep}"
        for m, p in mods.items()
        for dep, name in _imports(m, p, mods, typing_only=True)
        if name is not None and name.startswith("_") and not name.startswith("__") and dep != m
    ]
    assert private == []


def test_the_engine_imports_no_benchmark_cli_or_faust_module() -> None:
    code = (
        "import sys, socrec_online.service.engine\n"
        "bad = [m for m in sys.modules"
        " if m.split('.')[0] in ('faust', 'aiokafka', 'mode', 'streams', 'typer', 'benchmarks')]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _bench_only_functions(tree: ast.Module) -> set[str]:
    """The module-level functions that run only under ``socrec bench``: those registered with
    ``@bench_app.command(...)``, and helpers every caller of which (in this module) is one of them."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    callers: dict[str, set[str]] = {name: set() for name in defs}
    for name, node in defs.items():
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in defs:
                callers[call.func.id].add(name)
    only = {
        name for name, node in defs.items()
        if any(isinstance(d, ast.Call) and ast.unparse(d.func) == "bench_app.command" for d in node.decorator_list)
    }  # fmt: skip
    while True:
        more = {n for n, c in callers.items() if n not in only and c and c <= only}
        if not more:
            return only
        only |= more


def _benchmark_imports(tree: ast.Module) -> list[tuple[int, bool]]:
    """(line, inside a function that runs only under ``socrec bench``) of every import of
    ``benchmarks`` or one of its modules."""
    bench_only = _bench_only_functions(tree)
    out: list[tuple[int, bool]] = []

    def visit(node: ast.AST, in_bench: bool) -> None:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if not node.level else []
        else:
            names = []
        if any(n == "benchmarks" or n.startswith("benchmarks.") for n in names):
            out.append((node.lineno, in_bench))  # type: ignore[attr-defined]
        inside = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in bench_only
        for child in ast.iter_child_nodes(node):
            visit(child, in_bench or inside)

    visit(tree, False)
    return out


def test_the_benchmark_import_finder_tells_what_runs_only_under_socrec_bench() -> None:
    code = (
        "import benchmarks.harness.rig\n"
        "@bench_app.command('quality')\ndef q():\n    from benchmarks.quality import plot\n    _draw()\n"
        "@app.command('evaluate')\ndef e():\n    from benchmarks.quality import plot\n    _table()\n"
        "def _draw():\n    from benchmarks.quality import plot\n"
        "def _table():\n    from benchmarks.quality import plot\n"
        "@bench_app.command('x')\ndef x():\n    _table()\n"
        "import benchmarks_x\n"
    )
    # _draw runs only under a bench command; _table also under ``socrec evaluate``
    assert _benchmark_imports(ast.parse(code)) == [(1, False), (4, True), (8, False), (11, True), (13, False)]


def test_the_product_imports_benchmarks_only_inside_bench_commands() -> None:
    mods = _modules()
    bad = []
    in_commands = 0
    for m, path in sorted(mods.items()):
        if not m.startswith(PRODUCT):
            continue
        for line, in_command in _benchmark_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if in_command and m.startswith(CLI):
                in_commands += 1
            else:
                bad.append(f"{path.relative_to(ROOT)}:{line}")
    # benchmarks/ is not in the wheel: anything else that imports it breaks an installed socrec
    assert bad == [], bad
    assert in_commands > 0  # the check sees the bench commands' imports


def test_building_the_cli_imports_no_benchmark_module() -> None:
    code = (
        "import sys, streams.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
