"""The layers a reader can see (DESIGN.md): core library → studies → CLI/report, and no import cycle.

The import graph is read from the source (every ``import`` statement, at module level or inside a
function: a deferred import is still a dependency), one node per module file. A package's
``__init__`` is its own node; ``from pkg import name`` points at ``pkg.name`` when that is a
module, else at ``pkg``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("krepes_lib", "data_scripts")
STUDIES = "krepes_lib.studies"
TOP = ("krepes_lib.cli",)


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


def _is_package(name: str, mods) -> bool:
    return mods.get(name, Path()).name == "__init__.py"


def _resolve(node: ast.ImportFrom, current: str, mods) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not _is_package(current, mods):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, mods)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import a.b.c` of a non-module attribute: its module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _layer(mod: str) -> str:
    if mod in TOP:
        return "top"
    if mod == STUDIES or mod.startswith(STUDIES + "."):
        return "studies"
    if mod.startswith("data_scripts"):
        return "scripts"
    return "core"


def test_graph_sees_the_project():
    g = import_graph()
    assert "krepes_lib.audit" in g and "krepes_lib.studies.v3" in g and "krepes_lib.data.registry" in g
    assert "krepes_lib.views" in g["krepes_lib.audit"]  # a module-level import is seen
    assert "krepes_lib.interpret" in g["krepes_lib.audit"]  # so is one inside a function


def test_core_never_imports_studies_scripts_or_cli():
    g = import_graph()
    bad = sorted(f"{a} -> {b}" for a, deps in g.items() if _layer(a) == "core"
                 for b in deps if _layer(b) != "core")
    assert not bad, "the core imports a layer above it:\n" + "\n".join(bad)


def test_studies_never_import_the_cli():
    g = import_graph()
    bad = sorted(f"{a} -> {b}" for a, deps in g.items() if _layer(a) in ("studies", "scripts")
                 for b in deps if _layer(b) == "top")
    assert not bad, "\n".join(bad)


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["krepes_lib", "krepes_lib.neural"])
def test_public_api_needs_no_study(module):
    """Importing the public API loads no study module (run in a fresh interpreter)."""
    import subprocess
    import sys

    code = (f"import sys, {module}; bad = [m for m in sys.modules if m.startswith('{STUDIES}')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _notebook_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_notebooks_import_the_library_only():
    """A notebook reads the project through ``krepes_lib`` (core and studies): never the CLI,
    the data scripts or the tests' helpers."""
    mods = _modules()
    bad = []
    for nb in sorted((ROOT / "notebooks" / "src").glob("*.py")):
        for name in _notebook_imports(nb):
            top = name.split(".")[0]
            if top in ("data_scripts", "tests", "tools", "entk_reference", "conftest"):
                bad.append(f"{nb.name}: {name}")
            elif top == "krepes_lib":
                t = name
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if _layer(t) == "top":
                    bad.append(f"{nb.name}: {name}")
    assert not bad, "notebooks importing past the library:\n" + "\n".join(bad)


def test_new_core_modules_are_core():
    """The claims engine, the timer and the profiles are core: any study and the CLI may use them."""
    g = import_graph()
    for m in ("krepes_lib.claims", "krepes_lib.timing", "krepes_lib.profiles", "krepes_lib.recipe", "krepes_lib.views"):
        assert m in g and _layer(m) == "core"
    assert "krepes_lib.claims" in g["krepes_lib.studies.audits"]  # the studies build claims for it


#: Where a ``memory_budget`` number may still be a parameter: the streaming primitives the
#: callers feed with their ``Options.memory_budget`` (kernels, the batch problem, interpret's
#: row counter) and the eNTK's own feature budget (TorchNTK's field, passed on by
#: ``audit_network`` and ``audit_resnet18``; not yet folded into Options).
BUDGET_MECHANISM = {"krepes_lib/kernels.py", "krepes_lib/problem.py", "krepes_lib/interpret/_common.py",
                    "krepes_lib/neural/ntk.py", "krepes_lib/neural/pipeline.py", "krepes_lib/neural/recipes.py",
                    # kernel_matmul / kernel_rmatmul: Kernel.matmul / rmatmul for Dask rows
                    "krepes_lib/distributed.py"}


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_memory_budget_is_read_from_options():
    """Entry points take ``options=`` and read ``options.memory_budget``; only the streaming
    primitives take the number itself."""
    bad = []
    for path in sorted((ROOT / "krepes_lib").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in BUDGET_MECHANISM:
            continue
        for fn in _functions(path):
            args = fn.args.args + fn.args.kwonlyargs
            if any(a.arg == "memory_budget" for a in args):
                bad.append(f"{rel}:{fn.lineno} {fn.name}")
    assert not bad, "memory_budget as a parameter outside Options:\n" + "\n".join(bad)


def test_no_study_hard_codes_the_damping():
    """A study's damping defaults to Options().damping (None), never a copy of its value (an
    operator's δ = 0, "no damping", is not the audit's default and may stay)."""
    from krepes_lib.options import Options

    bad = []
    for path in sorted((ROOT / "krepes_lib" / "studies").rglob("*.py")):
        for fn in _functions(path):
            args = fn.args.args + fn.args.kwonlyargs
            defaults = [None] * (len(fn.args.args) - len(fn.args.defaults)) + list(fn.args.defaults)
            defaults += list(fn.args.kw_defaults)
            for a, d in zip(args, defaults):
                if ("damping" in a.arg and isinstance(d, ast.Constant) and isinstance(d.value, (int, float))
                        and d.value == Options().damping):
                    bad.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}({a.arg}={d.value})")
    assert not bad, "\n".join(bad)
