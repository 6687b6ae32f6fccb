"""What a gan process does before anything else, once, when the package is first imported:
route stderr through the console filter (`gan._console`), then import TensorFlow without the
Keras import it makes by itself, which gan never uses and which costs every process about a
second (docs/performance.md)."""

import importlib.util
import sys
import types

from gan import _console


def prepare():
    quiet = _console.wanted()
    if quiet:
        _console.install()
    import_tensorflow_without_keras()
    if quiet:
        _console.quiet_python_logging()


def import_tensorflow_without_keras():
    """Imports TensorFlow without the Keras import its own __init__ makes.

    When Keras is installed (TensorFlow's wheel requires it), TensorFlow's __init__ imports
    `keras.src.optimizers` eagerly, to register Keras optimizers for loading Keras SavedModels.
    gan neither writes nor reads those, and the import costs every gan process about a second
    of its start-up (docs/performance.md). TensorFlow catches an ImportError there. So while TensorFlow
    imports, `keras` is a placeholder module without submodules. It carries Keras's real spec,
    so TensorFlow still finds Keras's directory for `tf.keras`. Afterwards the placeholder is
    removed, and `tf.keras` or `import keras` loads the real Keras on first use. A TensorFlow that
    raised on the missing submodule instead would be imported again, without the placeholder.
    """
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        return  # too late, or Keras is wanted anyway
    spec = importlib.util.find_spec("keras")
    if spec is None:
        return  # no Keras: TensorFlow skips the import itself
    placeholder = types.ModuleType("keras")
    placeholder.__spec__ = spec

    def remove_placeholder():
        if sys.modules.get("keras") is placeholder:
            del sys.modules["keras"]

    sys.modules["keras"] = placeholder
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        # A TensorFlow that no longer tolerates the missing submodule: import it as it is.
        remove_placeholder()
        import tensorflow  # noqa: F401
    finally:
        remove_placeholder()
