"""From a run's settings to the objects that train it: the one place where the schema (`gan.config`)
meets the engine.

    state = build.make_state(config)          # networks, optimizers, step, RNG (seeded)
    trainer = step.Trainer(state, config, images, labels, jit_compile=build.jit_compile(config))

It also holds the resume check (`structural_differences`), which needs the optimizers' slots.
"""

import dataclasses

from gan import data, networks, optimizers
from gan import state as state_lib
from gan.config import MIXED_PRECISIONS, STRUCTURAL_SETTINGS


def network_config(config):
    """The networks' view of a run's settings: each field of NetworkConfig named like a model
    setting takes its value, so a new setting the networks read is a field in both; the others
    follow from the data and the runtime."""
    model = config.model
    derived = dict(
        image_shape=data.IMAGE_SHAPE, width=model.dcgan_width,
        d_width=model.dcgan_d_width or model.dcgan_width,
        num_classes=data.NUM_CLASSES if model.conditional else 0,
        compute_dtype=MIXED_PRECISIONS[config.runtime.mixed_precision],
        sync_batchnorm=config.runtime.sync_batchnorm)
    shared = {field.name: getattr(model, field.name)
              for field in dataclasses.fields(networks.NetworkConfig)
              if field.name not in derived}
    return networks.NetworkConfig(**shared, **derived)


def loss_scaling(config):
    """Whether a run keeps dynamic loss scales (float16 mixed precision)."""
    return config.runtime.mixed_precision == "float16"


def jit_compile(config):
    """Whether the training loop is compiled with XLA (--jit_compile, auto = the architecture's
    faster path)."""
    if config.runtime.jit_compile == "auto":
        return networks.get_architecture(config.model.architecture).xla
    return config.runtime.jit_compile == "true"


def make_optimizer(config, prefix):
    """The optimizer of --<prefix>_optimizer (prefix g or d) with that network's settings."""
    settings = vars(getattr(config, f"{prefix}_opt")).copy()
    name, learning_rate = settings.pop("optimizer"), settings.pop("learning_rate")
    return optimizers.make_optimizer(name, learning_rate, label=f"{prefix}_optimizer", **settings)


def make_state(config):
    """Networks, optimizers and the GANState of a run (weights seeded by its seed)."""
    import tensorflow as tf
    tf.random.set_seed(config.schedule.seed)
    architecture, sizes = config.model.architecture, network_config(config)
    generator, discriminator = networks.make_networks(architecture, sizes)
    generator_ema = None
    if config.model.g_ema_decay > 0:
        generator_ema = networks.make_generator(architecture, sizes)
    return state_lib.GANState(generator, discriminator, make_optimizer(config, "g"),
                              make_optimizer(config, "d"), seed=config.schedule.seed,
                              generator_ema=generator_ema, loss_scaling=loss_scaling(config),
                              ema_batchnorm_batch_size=(
                                  config.schedule.batch_size
                                  if config.model.g_ema_batchnorm == "recompute" else 0))


# --- resume compatibility -------------------------------------------------------------------------

def structural_differences(old, new):
    """Lines 'name: checkpoint has A, this run has B' for every structural setting that differs
    between two RunConfigs.

    A hyper-parameter may change on resume unless it changes the optimizer's slot variables:
    SGD's momentum may go from 0.9 to 0.5, but not from 0 (no velocity slot) to 0.9.
    """
    old_flat, new_flat = old.to_flat(), new.to_flat()
    lines = [f"{name}: checkpoint has {_json_repr(old_flat[name])}, this run has "
             f"{_json_repr(new_flat[name])}"
             for name in STRUCTURAL_SETTINGS if old_flat[name] != new_flat[name]]
    if (old.model.g_ema_decay > 0) != (new.model.g_ema_decay > 0):
        lines.append(f"g_ema_decay: checkpoint has {old.model.g_ema_decay!r}, this run has "
                     f"{new.model.g_ema_decay!r}, which would "
                     f"{'drop' if old.model.g_ema_decay > 0 else 'add'} the generator's moving "
                     "average")
    old_scaled, new_scaled = loss_scaling(old), loss_scaling(new)
    if old_scaled != new_scaled:
        lines.append(f"mixed_precision: checkpoint has {old.runtime.mixed_precision!r}, this run "
                     f"has {new.runtime.mixed_precision!r}, which would "
                     f"{'drop' if old_scaled else 'add'} float16's loss scales")
    return lines + _slot_differences(old, new, old_flat, new_flat)


def _slot_differences(old, new, old_flat, new_flat):
    lines = []
    for prefix in ("g", "d"):
        if old_flat[f"{prefix}_optimizer"] != new_flat[f"{prefix}_optimizer"]:
            continue
        old_slots = make_optimizer(old, prefix).slot_names
        new_slots = make_optimizer(new, prefix).slot_names
        if old_slots != new_slots:
            name = f"{prefix}_momentum"
            lines.append(f"{name}: checkpoint has {old_flat[name]!r}, this run has "
                         f"{new_flat[name]!r}, so the optimizer's slot variables would change "
                         f"from {list(old_slots)} to {list(new_slots)}")
    return lines


def _json_repr(value):
    return repr(list(value)) if isinstance(value, tuple) else repr(value)
