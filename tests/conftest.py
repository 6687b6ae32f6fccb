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


# Two logical CPU devices in every test process (before TensorFlow starts its runtime), so that
# tf.distribute's MirroredStrategy can run two replicas here; everything else runs on the first
# one, as on a one-device machine.
if os.environ.get("GAN_TEST_CPU_REPLICAS", "2") != "1":
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()
         for _ in range(int(os.environ.get("GAN_TEST_CPU_REPLICAS", "2")))])
