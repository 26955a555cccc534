"""The imports between tickbook's parts, read from the source (AST, so deferred imports inside
functions count as much as the ones at the top).

    python -m testkit.imports            # every arrow between parts, with where it is made
    python -m testkit.imports --check    # only the arrows docs/architecture.md does not allow; exit 1 if any

A part is a top-level folder of the checkout (engine, offload, hdl, tickbook, testkit, tests,
benchmarks, k8s). tests/test_architecture.py runs the same check, so an arrow that points the
wrong way fails CI.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("tickbook", "engine", "offload", "hdl", "testkit", "tests", "benchmarks", "k8s")

# Which parts each part may import (besides itself). docs/architecture.md draws the same picture.
ALLOWED = {
    "engine": set(),  # the matcher knows nothing of transport, command line or RTL
    "offload": {"engine"},
    "hdl": {"engine", "offload"},
    "tickbook": {"engine", "offload", "hdl"},
    "k8s": set(),
    "testkit": {"engine", "offload", "hdl"},
    "tests": set(PARTS) - {"tests"},
    "benchmarks": set(PARTS) - {"benchmarks", "tests"},
}

# What the engine's hot path may import besides the standard library: numpy and Numba (llvmlite
# is Numba's code generator, for the intrinsics in book.py).
HOT_PATH = ("records", "fifo", "book", "state", "accounts", "risk", "matcher")
HOT_PATH_LIBS = {"numpy", "numba", "llvmlite"}


@dataclass(frozen=True)
class Import:
    source: Path       # the importing file, relative to the checkout
    line: int
    module: str        # the dotted name imported, absolute

    @property
    def part(self) -> str:
        # hdl/tb holds the cocotb tests beside their RTL, as hardware projects do: they are tests
        if self.source.parts[:2] == ("hdl", "tb"):
            return "tests"
        return self.source.parts[0]

    @property
    def target(self) -> str:
        return self.module.split(".")[0]


def _module_of(path: Path, root: Path = REPO) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = REPO) -> list[Import]:
    """Every import statement in one file, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_of(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    rel = path.relative_to(root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append(Import(rel, node.lineno, name))
    return found


def python_files(root: Path = REPO) -> list[Path]:
    files = []
    for part in PARTS:
        files += sorted(p for p in (root / part).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def all_imports(root: Path = REPO) -> list[Import]:
    return [imp for f in python_files(root) for imp in imports_of(f, root)]


def between_parts(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target in PARTS and i.target != i.part]


def violations(imports: list[Import]) -> list[str]:
    """One line per import that breaks docs/architecture.md."""
    bad = []
    for i in between_parts(imports):
        if i.target not in ALLOWED[i.part]:
            bad.append(f"{i.source}:{i.line}: {i.part} may not import {i.target} ({i.module})")
    for i in imports:
        if i.part == "engine" and i.source.stem in HOT_PATH and i.source.parent.name == "engine":
            if i.target not in HOT_PATH_LIBS | {"engine"} | sys.stdlib_module_names:
                bad.append(f"{i.source}:{i.line}: the matcher's hot path imports {i.module}")
    return bad


def engine_cycles(imports: list[Import]) -> list[list[str]]:
    """Import cycles among the engine's modules (deferred imports included)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.part == "engine" and i.target == "engine":
            src = ".".join(i.source.with_suffix("").parts).removesuffix(".__init__")
            dst = i.module
            # `from engine import x` names a module when engine/x.py exists
            if dst == "engine":
                continue
            graph.setdefault(src, set()).add(dst)
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    imports = all_imports()
    if "--check" in argv:
        bad = violations(imports) + [" -> ".join(c) + ": import cycle" for c in engine_cycles(imports)]
        print("\n".join(bad) if bad else "every arrow is allowed (docs/architecture.md)")
        return 1 if bad else 0
    arrows: dict[tuple[str, str], list[Import]] = {}
    for i in between_parts(imports):
        arrows.setdefault((i.part, i.target), []).append(i)
    for (src, dst), where in sorted(arrows.items()):
        ok = "" if dst in ALLOWED[src] else "   NOT ALLOWED"
        print(f"{src} -> {dst}: {len(where)} import(s){ok}")
        for i in where:
            print(f"    {i.source}:{i.line} {i.module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
