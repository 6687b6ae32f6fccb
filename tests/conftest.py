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


def pytest_addoption(parser):
    parser.addoption("--learning", action="store_true",
                     help="Also run the tier of real trainings that must learn "
                          "(tests/test_learning.py; several minutes, outside the default suite).")


def pytest_configure(config):
    config.addinivalue_line("markers", "learning: a real training that must measurably learn; "
                                       "runs with --learning")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--learning"):
        return
    skip = pytest.mark.skip(reason="a learning-tier training: run with --learning")
    for item in items:
        if "learning" in item.keywords:
            item.add_marker(skip)
