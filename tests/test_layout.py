"""The layout's rules (docs/conventions.md), checked on the source: no import circles among the
project's modules, no module imports a test module, the plain-Python
parts (interface facts, parameters, the host library) never reach Amaranth
or cocotb, so the host library installs without the HDL toolchain, and
no function in hw/ is longer than a screenful or two (MAX_FUNCTION_LINES)."""

import ast
import gc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hw", "host", "vm", "tests")
MAX_FUNCTION_LINES = 150


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _parse(path):
    """ast.parse with the garbage collector off: in CPython 3.11 a finalizer
    that runs during compilation (a simulation's testbench coroutine left
    suspended by an earlier test in this process) makes it raise
    "SystemError: AST constructor recursion depth mismatch"."""
    gc.collect()
    gc.disable()
    try:
        return ast.parse(path.read_text())
    finally:
        gc.enable()


def _imports(path, modules):
    """Project modules that `path` imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def _graph():
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _external(path):
    tops = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_circles():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_a_test_module():
    graph = _graph()
    bad = {f"{m} imports {t}" for m, targets in graph.items() for t in targets
           if t.rsplit(".", 1)[-1].startswith("test_")}
    assert not bad, sorted(bad)


@pytest.mark.parametrize("plain", ["hw.spec", "hw.params", "host"])
def test_plain_python_never_reaches_the_hdl_toolchain(plain):
    graph, modules = _graph(), _modules()
    seen, todo = set(), [m for m in modules if m == plain or m.startswith(plain + ".")]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    reached = {m: _external(modules[m]) & {"amaranth", "cocotb", "cocotbext"} for m in seen}
    assert not any(reached.values()), {m: t for m, t in reached.items() if t}


def test_project_name_follows_the_rule():
    """docs/conventions.md: P2P_DAX_ for macros and variables, p2p_dax for
    identifiers, p2pdax only as the command and the group."""
    import re
    import subprocess
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    bad = re.compile(r"P2P(?=DAX)|p2pdax(?=[_-])(?!-bench-)")
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".png", ".pdf") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if bad.search(line):
                found.append(f"{name}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def _long_functions(root, limit):
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(_parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} "
                                 f"({lines} lines)")
    return found


def test_functions_in_hw_are_short():
    """Gateware is composed of blocks, not written as one long elaborate()."""
    long = _long_functions(ROOT / "hw", MAX_FUNCTION_LINES)
    assert not long, "split these into blocks or helpers:\n" + "\n".join(long)


def test_long_function_finder_finds_one(tmp_path):
    (tmp_path / "x.py").write_text("def f():\n" + "    pass\n" * 200)
    found = [line.split()[-3] for line in _long_functions(tmp_path, 150)]
    assert found == ["f"]


def test_every_package_is_installed():
    """pyproject.toml lists every package of hw/ and host/ (an editable
    install finds them anyway; a wheel would not)."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for top in ("hw", "host") for p in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages"
