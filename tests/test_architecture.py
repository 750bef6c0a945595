"""The import structure: tflm_export knows nothing of keras_cprune, and no module cycle exists.

Every import counts, also one inside a function: a cycle hidden that way is still a cycle.
The import graph is read by scripts/code_metrics.py, which prints these figures.
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("code_metrics", os.path.join(ROOT, "scripts", "code_metrics.py"))
metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metrics)


def test_tflm_export_imports_nothing_from_keras_cprune():
    crossing = metrics.crossings(metrics.module_imports())
    assert not crossing, crossing


def test_no_module_cycles():
    cycles = metrics.cycles(metrics.module_imports())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_can_fail(tmp_path):
    """A tflm_export module importing keras_cprune inside a function, and a two-module cycle, are found."""
    for package, files in {"keras_cprune": {"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"},
                           "tflm_export": {"c.py": "def g():\n    import keras_cprune.a\n"}}.items():
        os.makedirs(tmp_path / package)
        for name, text in files.items():
            (tmp_path / package / name).write_text(text)
    graph = metrics.module_imports(str(tmp_path))
    assert metrics.crossings(graph) == {"tflm_export.c": ["keras_cprune.a"]}
    assert metrics.cycles(graph) == [["keras_cprune.a", "keras_cprune.b", "keras_cprune.a"]]
