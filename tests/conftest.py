import os

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(params=["eager", "xla"])
def mode(request):
    """Runs a test body eagerly and under tf.function(jit_compile=True)."""
    return request.param


def run_in(mode, fn, *args):
    if mode == "eager":
        return fn(*args)
    return tf.function(fn, jit_compile=True)(*args)
