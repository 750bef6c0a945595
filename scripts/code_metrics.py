"""Structure figures of keras_cprune and tflm_export, read from the source (nothing is imported).

    python scripts/code_metrics.py [--longest N]

Prints the imports from tflm_export into keras_cprune (must be none), the imports against the
pipeline order `TIERS` (must be none), the module import cycles
(every import counts, also one inside a function), the import layers from the bottom up, the
longest functions and the modules over 400 lines. tests/test_architecture.py asserts the first three.
"""
from __future__ import annotations

import argparse
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_cprune", "tflm_export")
# The pipeline, bottom up: a module may import modules of its own tier and of the tiers below it.
TIERS = {
    "keras_cprune": (("errors",), ("config", "io", "plots", "datasets", "zoo"), ("graph",), ("analysis",),
                     ("deploy",), ("pruning",), ("budget",), ("api", "tradeoff_table"), ("training",), ("tuner",), ("cli",)),
    "tflm_export": (("errors",), ("budget", "arena"), ("micro",), ("convert", "convert_subprocess", "recurrent", "boards"),
                    ("firmware",), ("runtime",),
                    ("export",)),
}


def sources(root: str = ROOT):
    """``(module name, path)`` of every module of both packages."""
    for package in PACKAGES:
        for folder, dirs, names in sorted(os.walk(os.path.join(root, package))):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            parts = os.path.relpath(folder, root).split(os.sep)
            for name in sorted(n for n in names if n.endswith(".py")):
                yield ".".join(parts + ([] if name == "__init__.py" else [name[:-3]])), os.path.join(folder, name)


def _imported(node, package: str) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
        target = ".".join(p for p in (base, node.module or "") if p) if node.level else node.module
        return [target] + [f"{target}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def module_imports(root: str = ROOT) -> dict:
    """``{module: {imported project modules}}`` for every module of both packages."""
    graph = {}
    for module, path in sources(root):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        graph[module] = {n for node in ast.walk(tree) for n in _imported(node, package)
                         if n and n.split(".")[0] in PACKAGES}
    return {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}


def crossings(graph: dict) -> dict:
    """Imports of keras_cprune modules by tflm_export modules: ``{module: [targets]}``."""
    found = {m: sorted(t for t in targets if t.startswith("keras_cprune"))
             for m, targets in graph.items() if m.startswith("tflm_export")}
    return {m: t for m, t in found.items() if t}


def _edges(graph: dict) -> dict:
    """Package ``__init__`` modules only re-export: an edge into one is an edge to the whole API."""
    return {m: {t for t in targets if t not in PACKAGES} for m, targets in graph.items() if m not in PACKAGES}


def tier_of(module: str) -> int | None:
    """The index in `TIERS` of ``module``'s top-level part (``keras_cprune.deploy.arena`` -> deploy's);
    None for a package's ``__init__`` (the public API, above every tier)."""
    package, _, rest = module.partition(".")
    head = rest.split(".")[0]
    return next((i for i, tier in enumerate(TIERS.get(package, ())) if head in tier), None) if head else None


def untiered(root: str = ROOT) -> list[str]:
    """Modules whose top-level part `TIERS` does not place."""
    return sorted(m for m, _ in sources(root) if m not in PACKAGES and tier_of(m) is None)


def upward(graph: dict) -> dict:
    """Imports against the pipeline: ``{module: [targets in a higher tier of the same package]}``."""
    found = {}
    for module, targets in _edges(graph).items():
        here = tier_of(module)
        bad = sorted(t for t in targets if t.split(".")[0] == module.split(".")[0] and here is not None
                     and (tier_of(t) or 0) > here)
        if bad:
            found[module] = bad
    return found


def cycles(graph: dict) -> list[list[str]]:
    """Every import cycle a depth-first walk meets, as ``[a, b, ..., a]``."""
    edges, state, stack, found = _edges(graph), {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def layers(graph: dict) -> list[list[str]]:
    """Modules by height: a module sits one layer above the highest module it imports (no cycles)."""
    edges, height = _edges(graph), {}

    def of(module):
        if module not in height:
            height[module] = 1 + max((of(t) for t in edges.get(module, ())), default=-1)
        return height[module]

    for module in edges:
        of(module)
    return [sorted(m for m, h in height.items() if h == level) for level in range(max(height.values()) + 1)]


def _code_lines(function) -> int:
    """Lines of ``function`` from its ``def`` to its end, its docstring not counted."""
    body = function.body
    docstring = body[0] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str) else None
    lines = function.end_lineno - function.lineno + 1
    return lines - (docstring.end_lineno - docstring.lineno + 1 if docstring else 0)


def longest_functions(root: str = ROOT, count: int = 5) -> list[tuple[int, str]]:
    """``(lines, "path:line name")`` of the ``count`` longest functions, docstrings not counted."""
    rows = []
    for _, path in sources(root):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        rows += [(_code_lines(n), f"{os.path.relpath(path, root)}:{n.lineno} {n.name}")
                 for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return sorted(rows, reverse=True)[:count]


def large_modules(root: str = ROOT, limit: int = 400) -> list[tuple[int, str]]:
    sizes = []
    for _, path in sources(root):
        with open(path, encoding="utf-8") as f:
            sizes.append((sum(1 for _ in f), os.path.relpath(path, root)))
    return sorted((s for s in sizes if s[0] > limit), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--longest", type=int, default=5, help="how many of the longest functions (default 5)")
    args = parser.parse_args()
    graph = module_imports()
    print(f"tflm_export -> keras_cprune imports: {crossings(graph) or 'none'}")
    print(f"imports against the pipeline (TIERS): {upward(graph) or 'none'}")
    print(f"modules in no tier: {untiered() or 'none'}")
    found = cycles(graph)
    print(f"module cycles: {len(found)}" + "".join(f"\n  {' -> '.join(c)}" for c in found))
    if not found:  # layers exist only without cycles
        print("import layers, bottom up:")
        for level, modules in enumerate(layers(graph)):
            print(f"  {level}: {', '.join(modules)}")
    print("longest functions (lines without the docstring):")
    for lines, where in longest_functions(count=args.longest):
        print(f"  {lines:4d}  {where}")
    print(f"modules over 400 lines: {large_modules() or 'none'}")


if __name__ == "__main__":
    main()
