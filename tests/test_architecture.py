"""The house rules of docs/architecture.md, checked on the source: no import cycle, no function with more
than 8 parameters, CLI modules that only parse and call, and each piece of shared knowledge defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "e5kit"
MAX_PARAMS = 8
MAX_CLI_LINES = 200  # a parse-and-call module with a big argparse block; logic belongs in the library
MAX_RUN_LINES = 20
MAX_HELPER_LINES = 12


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
    """Modules of e5kit that `name` imports (at any depth of the file: lazy and TYPE_CHECKING imports count,
    a cycle of types is still a cycle of knowledge)."""
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
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "e5kit":
                found.add(t)
    return found


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
    """A CLI module registers arguments and runs short functions that call the library: no run function
    over MAX_RUN_LINES lines, no helper over MAX_HELPER_LINES, no heavy import at module level."""
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_CLI_LINES, f"{path.name} has {len(text.splitlines())} lines"
    tree = ast.parse(text)
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        lines = fn.end_lineno - fn.lineno + 1
        if fn.name == "register":
            continue
        limit = MAX_RUN_LINES if fn.name.startswith("run") else MAX_HELPER_LINES
        assert lines <= limit, f"{path.name}:{fn.name} has {lines} lines; move the work into the library"
    heavy = {"torch", "numpy", "transformers", "e5kit.embedder", "e5kit.index", "e5kit.eval", "e5kit.train"}
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if any(m == h or m.startswith(h + ".") for h in heavy)}, names


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
