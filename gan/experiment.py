"""A run's configuration on disk, and rebuilding its training state from it.

`gan.train` writes the settings of a run to `<logdir>/config.json`; `gan.evaluate`, `gan.sample` and
`gan.export` read it back to rebuild the same networks before restoring a checkpoint, so they need
nothing but the logdir.
"""

import json
import os

import tensorflow as tf
from absl import app, flags

from gan import data, images, networks, optimizers, trainer

# The flags that `define_run_flags` defines belong to the program that calls it, so that its
# --help lists them.
flags.disclaim_key_flags()

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
BEST_CHECKPOINT_SUBDIR = "best_checkpoint"

# Settings that fix the shapes or the set of variables in a checkpoint: a checkpoint can only be
# resumed by a run that agrees on all of them, and on the optimizers' slot variables (see
# `structural_differences`).
STRUCTURAL_KEYS = ("dataset", "architecture", "latent_dim", "g_hidden", "d_hidden", "dcgan_width",
                   "g_optimizer", "d_optimizer")


def network_config(config):
    return networks.NetworkConfig(
        latent_dim=config["latent_dim"],
        image_shape=data.IMAGE_SHAPE,
        g_hidden=tuple(config["g_hidden"]),
        d_hidden=tuple(config["d_hidden"]),
        width=config["dcgan_width"],
        bn_momentum=config["bn_momentum"],
        bn_epsilon=config["bn_epsilon"],
    )


def trainer_config(config):
    return trainer.TrainerConfig(
        batch_size=config["batch_size"],
        latent_dim=config["latent_dim"],
        d_loss=config["d_loss"],
        g_loss=config["g_loss"],
        d_steps=config["d_steps"],
        d_update=config["d_update"],
        d_fake_batchnorm=config["d_fake_batchnorm"],
    )


def make_optimizer(config, prefix):
    return optimizers.make_optimizer(
        config[f"{prefix}_optimizer"], config[f"{prefix}_learning_rate"],
        beta1=config[f"{prefix}_beta1"], beta2=config[f"{prefix}_beta2"],
        momentum=config[f"{prefix}_momentum"], nesterov=config[f"{prefix}_nesterov"],
        epsilon=config[f"{prefix}_epsilon"], rho=config[f"{prefix}_rho"],
        label=f"{prefix}_optimizer")


def make_state(config):
    """Builds networks, optimizers and the GANState for a run config (weights seeded by 'seed')."""
    tf.random.set_seed(config["seed"])
    generator, discriminator = networks.make_networks(config["architecture"],
                                                      network_config(config))
    return trainer.GANState(generator, discriminator, make_optimizer(config, "g"),
                            make_optimizer(config, "d"), seed=config["seed"])


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
    state = make_state(config)
    path = restore(state, logdir, checkpoint)
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(logdir)} holds no checkpoint yet")
    return config, state, path


def save_config(logdir, config):
    os.makedirs(logdir, exist_ok=True)
    images.write_atomically(os.path.join(logdir, CONFIG_FILE),
                            json.dumps(config, indent=2, sort_keys=True).encode())


def load_config(logdir):
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --logdir must be a directory written by "
                                "`python -m gan.train`")
    with open(path) as f:
        return json.load(f)


def optimizer_slot_names(config, prefix):
    """The slot variables the run's `prefix` optimizer keeps per weight, e.g. ('velocity',)."""
    return make_optimizer(config, prefix).slot_names


def structural_differences(old, new):
    """Lines 'key: checkpoint has A, this run has B' for every structural setting that differs.

    A hyper-parameter may change on resume unless it changes the optimizer's slot variables:
    SGD's momentum may go from 0.9 to 0.5, but not from 0 (no velocity slot) to 0.9.
    """
    lines = [f"{key}: checkpoint has {old.get(key)!r}, this run has {new.get(key)!r}"
             for key in STRUCTURAL_KEYS if old.get(key) != new.get(key)]
    for prefix in ("g", "d"):
        if old.get(f"{prefix}_optimizer") != new.get(f"{prefix}_optimizer"):
            continue
        old_slots, new_slots = optimizer_slot_names(old, prefix), optimizer_slot_names(new, prefix)
        if old_slots != new_slots:
            key = f"{prefix}_momentum"
            lines.append(f"{key}: checkpoint has {old.get(key)!r}, this run has {new.get(key)!r}, "
                         f"so the optimizer's slot variables would change from "
                         f"{list(old_slots)} to {list(new_slots)}")
    return lines


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
