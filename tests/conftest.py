import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py

# tests/legacy holds tf_keras (Keras 2) tests; they need TF_USE_LEGACY_KERAS=1 in their own
# interpreter, so test_tf_keras.py runs them in a subprocess.
collect_ignore = [] if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else ["legacy"]
