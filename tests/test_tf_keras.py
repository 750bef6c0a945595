"""Runs tests/legacy under tf_keras in a separate interpreter (Keras 2 and 3 must not mix)."""
import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_tf_keras_suite_passes():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    here = os.path.dirname(__file__)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(here, "legacy")],
                            env=env, cwd=os.path.dirname(here), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
