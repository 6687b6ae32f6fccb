"""A run directory on disk: its config.json, checkpoints and best-FID checkpoint, and restoring a
training state from them.

`gan.train` writes the run's settings to `<logdir>/config.json`; `gan.evaluate`, `gan.sample` and
`gan.export` read them back to rebuild the same networks before restoring a checkpoint, so they need
nothing but the logdir.
"""

import json
import os

import tensorflow as tf
from absl import app, flags

from gan import config as config_lib
from gan import images

# The flags that `define_run_flags` defines belong to the program that calls it, so that its
# --help lists them.
flags.disclaim_key_flags()

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
BEST_CHECKPOINT_SUBDIR = "best_checkpoint"


def checkpoint_dir(logdir):
    return os.path.join(logdir, CHECKPOINT_SUBDIR)


def define_run_flags():
    """--logdir and --checkpoint, for the programs that read a run back (see `load_run`)."""
    flags.DEFINE_string("logdir", None, "Run directory written by gan.train.")
    flags.DEFINE_string("checkpoint", None, "Checkpoint path prefix, or 'best' for the best-FID "
                        "one; default: the latest.")


def load_run_from_flags():
    """`load_run` of --logdir and --checkpoint; a missing run or checkpoint is the user's mistake,
    so it is reported as a one-line usage error, not a traceback."""
    try:
        return load_run(flags.FLAGS.logdir, flags.FLAGS.checkpoint)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from None


def load_run(logdir, checkpoint=None):
    """(config, state, checkpoint path) of a finished or running training run, restored."""
    config = load_config(logdir)
    state = config_lib.make_state(config)
    path = restore(state, logdir, checkpoint)
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(logdir)} holds no checkpoint yet")
    return config, state, path


def save_config(logdir, config):
    os.makedirs(logdir, exist_ok=True)
    images.write_atomically(os.path.join(logdir, CONFIG_FILE), json.dumps(
        config_lib.to_json_value(config.to_flat()), indent=2, sort_keys=True).encode())


def load_config(logdir):
    """The RunConfig saved in logdir. Settings a config.json lacks (written by an older version)
    take their defaults. Raises FileNotFoundError, or ValueError naming the file."""
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --logdir must be a directory written by "
                                "`python -m gan.train`")
    try:
        with open(path) as f:
            flat = json.load(f)
        if not isinstance(flat, dict):
            raise ValueError(f"expected a JSON object, found {type(flat).__name__}")
        return config_lib.RunConfig.from_flat(flat)
    except (ValueError, TypeError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise ValueError(f"{path} is not a valid run config: {e}") from None


BEST_FILE = "best.json"


def read_best(logdir):
    """{'step', 'fid', 'checkpoint'} of the best-FID checkpoint so far, or None."""
    path = os.path.join(logdir, BEST_CHECKPOINT_SUBDIR, BEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_best(logdir, record):
    images.write_atomically(os.path.join(logdir, BEST_CHECKPOINT_SUBDIR, BEST_FILE),
                            json.dumps(record, indent=2).encode())


def resolve_checkpoint(logdir, checkpoint=None):
    """A checkpoint path prefix: `checkpoint` itself, 'best' for the best-FID one, or (None) the
    latest rolling one; None when the logdir has none."""
    if checkpoint == "best":
        path = tf.train.latest_checkpoint(os.path.join(logdir, BEST_CHECKPOINT_SUBDIR))
        if path is None:
            raise FileNotFoundError(f"{logdir} has no best checkpoint (train with --eval_every > 0)")
        return path
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise FileNotFoundError(f"checkpoint {checkpoint} not found (no {checkpoint}.index)")
        return checkpoint
    return tf.train.latest_checkpoint(checkpoint_dir(logdir))


def restore(state, logdir, checkpoint=None):
    """Restores state from `checkpoint` (see resolve_checkpoint) or the latest in logdir; returns
    the path restored, or None when there is none."""
    path = resolve_checkpoint(logdir, checkpoint)
    if path is None:
        return None
    tf.train.Checkpoint(state=state).restore(path).assert_existing_objects_matched()
    return path
