"""Importing gan: TensorFlow without its eager Keras import, and tf.keras intact."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO

REPORT = """
import json, sys
{imports}
import tensorflow as tf
keras_at_start = "keras" in sys.modules
from tensorflow.keras import optimizers  # tf.keras's submodules resolve through tf.__path__
print(json.dumps({{"keras_at_start": keras_at_start, "tf_path": list(tf.__path__),
                  "sgd": optimizers.SGD(learning_rate=0.5).learning_rate.numpy().item()}}))
"""


def report(imports):
    out = subprocess.run([sys.executable, "-c", REPORT.format(imports=imports)], cwd=REPO,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gan_imports_tensorflow_without_keras_and_tf_keras_still_loads():
    pytest.importorskip("keras", reason="Keras is not installed, so there is no import to skip")
    plain = report("")
    through_gan = report("import gan")
    assert plain["keras_at_start"]  # TensorFlow's own import loads Keras...
    assert not through_gan["keras_at_start"]  # ...and gan's does not
    # The placeholder's spec left TensorFlow the same package path, so tf.keras works as before.
    assert through_gan["tf_path"] == plain["tf_path"]
    assert None not in through_gan["tf_path"]
    assert through_gan["sgd"] == plain["sgd"] == 0.5


FAKE_TENSORFLOW = """
try:
    import keras.src.optimizers
except ImportError:
    {on_error}
"""


@pytest.mark.parametrize("tolerant", [True, False])
def test_a_tensorflow_that_needs_keras_still_imports(tmp_path, tolerant):
    """A stand-in TensorFlow, as TensorFlow 2.21 does (catching the ImportError) and as one that
    did not: the first skips Keras, the second imports it, and both import."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(
        FAKE_TENSORFLOW.format(on_error="pass" if tolerant else "raise"))
    for package in ("keras", "keras/src"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "keras" / "src" / "optimizers.py").write_text("")
    script = ("import json, sys, gan; print(json.dumps(sorted(name for name in sys.modules "
              "if name.startswith(('keras', 'tensorflow')))))")
    path = f"{tmp_path}{os.pathsep}{REPO}"  # the stand-ins first
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=path))
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    expected = ["tensorflow"] if tolerant else [
        "keras", "keras.src", "keras.src.optimizers", "tensorflow"]
    assert loaded == expected
