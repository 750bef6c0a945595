import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py

# tests/legacy holds tf_keras (Keras 2) tests; they need TF_USE_LEGACY_KERAS=1 in their own
# interpreter, so test_tf_keras.py runs them in a subprocess.
collect_ignore = [] if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else ["legacy"]

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Examples per property test: "ci" in the fast set; with --slow, "slow" (200) unless HYPOTHESIS_PROFILE
# names another ("nightly", 50: what .ci/run uses, to stay well within CI's 90 minutes).
settings.register_profile("ci", max_examples=8, deadline=None, print_blob=True)
settings.register_profile("nightly", max_examples=50, deadline=None, print_blob=True, derandomize=True)  # CI: the same examples each run
settings.register_profile("slow", max_examples=200, deadline=None, print_blob=True)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run the property tests with many more examples, and the "
                     "tests marked slow")


def pytest_configure(config):
    default = "slow" if config.getoption("--slow") else "ci"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default) if config.getoption("--slow") else default)
    config.addinivalue_line("markers", "slow: minutes of CPU for little more coverage; runs with --slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
