"""The import structure: tflm_export knows nothing of keras_cprune, and no module cycle exists.

Every import counts, also one inside a function: a cycle hidden that way is still a cycle.
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_cprune", "tflm_export")


def module_imports() -> dict:
    """``{module: {imported project modules}}`` for every module of both packages."""
    graph = {}
    for package in PACKAGES:
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if not name.endswith(".py"):
                continue
            module = f"{package}.{name[:-3]}" if name != "__init__.py" else package
            tree = ast.parse(open(os.path.join(ROOT, package, name), encoding="utf-8").read())
            graph[module] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    base = package if node.level else ""
                    target = ".".join(part for part in (base, node.module or "") if part) if node.level else node.module
                    names = [target] + [f"{target}.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                graph[module] |= {n for n in names if n and n.split(".")[0] in PACKAGES}
    return {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}


def test_tflm_export_imports_nothing_from_keras_cprune():
    graph = module_imports()
    crossing = {m: sorted(t for t in targets if t.startswith("keras_cprune"))
                for m, targets in graph.items() if m.startswith("tflm_export")}
    assert not any(crossing.values()), crossing


def test_no_module_cycles():
    graph = module_imports()
    # package __init__ modules only re-export: an edge into them is an edge to the whole package API
    edges = {m: {t for t in targets if t not in PACKAGES} for m, targets in graph.items() if m not in PACKAGES}
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
