"""The house rules of docs/architecture.md, checked on the source: no import cycle, no function with more
than 8 parameters, CLI modules that only parse and call, and each piece of shared knowledge defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "e5kit"
MAX_PARAMS = 8
MAX_CLI_LINES = 120  # a parse-and-call module with a big argparse block; logic belongs in the library


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of e5kit that `name` imports (at any depth of the file, lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)) and _under_type_checking(tree, node):
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "e5kit":
                found.add(t)
    return found


def _under_type_checking(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            if any(child is target for child in ast.walk(node)):
                return True
    return False


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules (package __init__ re-exports count), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for n in sorted(graph):
        if state.get(n) is None and (c := visit(n)):
            return c
    return None


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{path.relative_to(SRC)}:{node.lineno} {node.name}", node))
    return out


def _n_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len([n for n in names if n not in ("self", "cls")])


def test_no_function_has_more_than_8_parameters() -> None:
    long = [f"{where} ({_n_params(fn)})" for where, fn in _functions() if _n_params(fn) > MAX_PARAMS]
    assert not long, f"functions with more than {MAX_PARAMS} parameters (use a settings dataclass): {long}"


@pytest.mark.parametrize("path", sorted((SRC / "cli").glob("*_cmd.py")), ids=lambda p: p.name)
def test_cli_modules_only_parse_and_call(path: Path) -> None:
    """A CLI module is short, and its run functions hold no loops: the work happens in the library."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_CLI_LINES, f"{path.name} has {lines} lines"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("run")):
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While))]
        assert not loops, f"{path.name}:{fn.name} loops over data; move that into the library"


def _defined(name: str) -> list[str]:
    where = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                where.append(str(path.relative_to(SRC)))
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                where.append(str(path.relative_to(SRC)))
    return where


@pytest.mark.parametrize("name", ["Pair", "file_sha256", "EvalHook", "TASK_TYPES", "SOURCES", "passage_text",
                                  "prefix_for_role", "add_prefix", "shorten", "atomic_write_bytes"])
def test_shared_knowledge_is_defined_once(name: str) -> None:
    assert len(_defined(name)) <= 1, f"{name} is defined in {_defined(name)}"


def test_library_has_no_benchmark_harness_outside_bench() -> None:
    """Timing and peak-FLOP measurement live in e5kit/bench, not in the stages users import."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "bench" not in p.relative_to(SRC).parts[0] and "def matmul_peak" in p.read_text(encoding="utf-8")]
    assert not offenders
