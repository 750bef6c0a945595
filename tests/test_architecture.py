"""The import structure: tflm_export knows nothing of keras_cprune, each package's subpackages import
only down the pipeline (`code_metrics.TIERS`), and no module cycle exists.

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


def test_imports_run_down_the_pipeline():
    assert not metrics.untiered(), f"modules in no tier of code_metrics.TIERS: {metrics.untiered()}"
    against = metrics.upward(metrics.module_imports())
    assert not against, against


def test_no_module_cycles():
    cycles = metrics.cycles(metrics.module_imports())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_can_fail(tmp_path):
    """A tflm_export module importing keras_cprune inside a function, an import up the pipeline, modules in no
    tier and a two-module cycle are found."""
    for package, files in {"keras_cprune": {"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n",
                                            "graph/__init__.py": "", "graph/reader.py": "from ..api import prune\n",
                                            "api.py": "from keras_cprune.graph.reader import read_graph\n"},
                           "tflm_export": {"c.py": "def g():\n    import keras_cprune.a\n"}}.items():
        for name, text in files.items():
            os.makedirs((tmp_path / package / name).parent, exist_ok=True)
            (tmp_path / package / name).write_text(text)
    graph = metrics.module_imports(str(tmp_path))
    assert metrics.crossings(graph) == {"tflm_export.c": ["keras_cprune.a"]}
    assert metrics.upward(graph) == {"keras_cprune.graph.reader": ["keras_cprune.api"]}
    assert metrics.untiered(str(tmp_path)) == ["keras_cprune.a", "keras_cprune.b", "tflm_export.c"]
    assert ["keras_cprune.a", "keras_cprune.b", "keras_cprune.a"] in metrics.cycles(graph)
