"""The run schema: every setting of a training run, declared once.

A run is a frozen `RunConfig` made of groups (data, model, game, the two optimizers, schedule,
outputs, runtime). Each field is declared with `setting(...)`: its default, help text, valid
choices or range, and whether it is *structural*, i.e. fixes the checkpoint's variables. From those
declarations alone come
  - the absl flags of `gan.train` (`define_flags`; flag name = group prefix + field name),
  - config.json (`to_flat` / `from_flat`, keyed by flag name, so flagfiles and JSON agree),
  - the one-line validation messages (`RunConfig.value_errors`; `combination_errors` adds the
    losses' rules about which settings go together),
  - which settings a resume must keep (`structural`; the check is `build.structural_differences`).
Adding a setting is adding one field; the machinery is `gan.schema`. The penalty weights
(--gp_weight, ...) are made from `penalties.PENALTIES`, so a new penalty needs no edit here.

    config = RunConfig()                                   # the defaults
    config = config.replace(d_loss="hinge", g_loss="hinge", g_learning_rate=1e-4)
    config.game.d_loss, config.g_opt.learning_rate, config.to_flat()["g_learning_rate"]
"""

import dataclasses
from typing import Optional

from gan import data, distribute, latent, losses, networks, normalizations, optimizers, penalties
from gan import schema
from gan.errors import ConfigError
# The schema's vocabulary, for the declarations below (and for callers: config.SEED, ...).
from gan.schema import (AT_LEAST_1, MAX_WIDTH, NON_NEGATIVE, POSITIVE, SEED, SIZE,  # noqa: F401
                        UNIT_CLOSED, UNIT_HALF_OPEN, UNIT_OPEN, Range, setting)

# How the D update treats its batches (see gan.step).
D_UPDATES = ("joint", "split")
FAKE_BATCHNORM_MODES = ("train", "inference")


# --- the groups -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = setting("mnist", "Training dataset.", choices=data.DATASETS, structural=True)
    data_dir: Optional[str] = setting(
        None, "Directory with the dataset's four IDX files (raw or .gz). Default: the bundled "
        "MNIST; for Fashion-MNIST, Debian's /usr/share/datasets/fashion-mnist, then a download "
        "into ~/.cache/gan.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    architecture: str = setting("mlp", "Generator/discriminator pair: " + "; ".join(
        f"{name}: {entry.help}" for name, entry in sorted(networks.ARCHITECTURES.items())) + ".",
        choices=networks.ARCHITECTURES, structural=True)
    latent_dim: int = setting(100, "Size of the noise vector z.", valid=SIZE,
                              structural=True)
    latent_distribution: str = setting("normal", "Law of z: " + " or ".join(
        f"{name} {law.help}" for name, law in latent.DISTRIBUTIONS.items()) + ".",
        choices=latent.DISTRIBUTIONS, structural=True)
    g_hidden: tuple = setting((256, 512, 1024), "MLP generator hidden widths.", structural=True)
    d_hidden: tuple = setting((512, 256), "MLP discriminator hidden widths.", structural=True)
    dcgan_width: int = setting(64, "DCGAN generator's base channel count w (its layers have 4w "
                               "and 2w channels).", valid=Range(1, 4096), structural=True)
    dcgan_d_width: int = setting(0, "DCGAN discriminator's base channel count (w and 2w "
                                 "channels); 0 = --dcgan_width. D costs far less than G at the "
                                 "same width (G's 4w-to-2w transposed convolution dominates), so "
                                 "a wider D is cheap.", valid=Range(0, 4096),
                                 note="0 = --dcgan_width", structural=True)
    g_norm: str = setting("batch", "Generator normalization: batch, layer, spectral (every layer) "
                          "or none.", choices=normalizations.NORMALIZATIONS, structural=True)
    d_norm: str = setting("none", "Discriminator normalization: batch, layer, spectral (every "
                          "layer, Miyato et al. 2018) or none.",
                          choices=normalizations.NORMALIZATIONS, structural=True)
    bn_momentum: Optional[float] = setting(
        None, "BatchNorm moving-average momentum; default: the architecture's own (mlp 0.8, the "
        "Keras tutorial's; dcgan 0.9, Radford et al.'s code).", valid=UNIT_CLOSED, kind=float)
    bn_epsilon: float = setting(1e-3, "BatchNorm epsilon (Keras' 1e-3).", valid=POSITIVE)
    conditional: bool = setting(False, "Class-conditional G and D: G(z, y), D(x, y), with y "
                                "drawn with each real batch.", structural=True)
    g_conditioning: str = setting("concat", "How a conditional G takes y: concat (one-hot y "
                                  "concatenated with z, i.e. a learned label embedding).",
                                  choices=networks.G_CONDITIONINGS, structural=True)
    d_conditioning: str = setting("projection", "How a conditional D takes y: projection "
                                  "(Miyato & Koyama 2018) or concat (one-hot y joined to the "
                                  "input).", choices=networks.D_CONDITIONINGS, structural=True)
    g_ema_decay: float = setting(0.0, "Keep an exponential moving average of G's weights with "
                                 "this decay (e.g. 0.999; Yazici et al. 2019); samples, "
                                 "evaluation and export then use it. 0 = off.",
                                 valid=UNIT_HALF_OPEN)
    g_ema_batchnorm: str = setting(
        "recompute", "With --g_ema_decay: the moving average's BatchNorm statistics. recompute: "
        "before each evaluation, sample grid and checkpoint, the mean batch statistics of the "
        "averaged weights themselves over 50 batches of fresh noise; copy: G's own, which fit G's "
        "weights, not the average's.", choices=("recompute", "copy"))


def _penalty_weight_fields():
    return [(f"{name}_weight", float, setting(0.0, penalty.help, valid=NON_NEGATIVE))
            for name, penalty in penalties.PENALTIES.items()]


@dataclasses.dataclass(frozen=True)
class _GameSettings:
    d_loss: str = setting("minimax", "Discriminator loss (docs/losses.md gives each formula).",
                          choices=losses.D_LOSSES)
    g_loss: str = setting("non_saturating", "Generator loss: saturating is the minimax game's "
                          "log(1 - D(G(z))), non_saturating is -log D(G(z)); the relativistic "
                          "ones pair with the D loss of the same name.",
                          choices=losses.G_LOSSES)
    label_smoothing: float = setting(0.0, "One-sided label smoothing a: the minimax D's real "
                                     "target is 1 - a (Salimans et al. 2016 use 0.1); 0 = off.",
                                     valid=UNIT_HALF_OPEN)
    penalty_every: int = setting(1, "Apply the penalties every k-th iteration only, with their "
                                 "weights multiplied by k (lazy regularization, Karras et al. "
                                 "2020); 1 = every iteration.", valid=AT_LEAST_1)
    weight_clip: float = setting(0.0, "Clip every D weight into [-c, c] after each D update "
                                 "(WGAN, Arjovsky et al. 2017, use 0.01); 0 = off.",
                                 valid=NON_NEGATIVE)
    allow_unstable: bool = setting(False, "Train a loss/penalty combination that is known to "
                                   "train badly (e.g. a Wasserstein critic with no Lipschitz "
                                   "constraint) instead of refusing it.")
    d_steps: int = setting(1, "Discriminator updates per generator update.", valid=AT_LEAST_1)
    d_update: str = setting("joint", "joint: one D step on the real+fake loss. split: a step on "
                            "the real batch, then a separate step on the fake batch (the seed's "
                            "two train_on_batch calls).", choices=D_UPDATES)
    d_fake_batchnorm: str = setting("train", "BatchNorm mode of G when making D's fake batch: "
                                    "train (batch statistics) or inference (moving averages, as "
                                    "the seed's generator.predict).",
                                    choices=FAKE_BATCHNORM_MODES)

    def active_penalties(self):
        """((name, weight), ...) of the penalties that are on, by name."""
        return tuple(sorted(penalty_weights(self).items()))


# The game's fields plus one --<penalty>_weight per entry of penalties.PENALTIES.
GameConfig = dataclasses.make_dataclass("GameConfig", _penalty_weight_fields(),
                                        bases=(_GameSettings,), frozen=True)
GameConfig.__doc__ = "The losses, penalties and D update scheme."
GameConfig.__module__ = __name__


def late_penalties():
    """A line for each penalty registered after this module made the weight settings: it would
    have no --<name>_weight, and silently never be applied."""
    return [f"penalty {name!r} was registered after gan.config was imported, so it has no "
            f"--{name}_weight; register it in gan/penalties.py, or before importing gan.config"
            for name in penalties.PENALTIES if f"{name}_weight" not in SETTINGS]


def penalty_weights(game):
    """{penalty name: weight} of the penalties that are on."""
    return {name: getattr(game, f"{name}_weight") for name in penalties.PENALTIES
            if getattr(game, f"{name}_weight") > 0}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    optimizer: str = setting("adam", "Optimizer.", choices=optimizers.OPTIMIZERS,
                             structural=True)
    learning_rate: float = setting(2e-4, "Learning rate.", valid=POSITIVE)
    beta1: float = setting(0.5, "Adam beta1 (Radford et al. 2016's 0.5).", valid=UNIT_HALF_OPEN)
    beta2: float = setting(0.999, "Adam beta2.", valid=UNIT_HALF_OPEN)
    epsilon: float = setting(1e-7, "Adam/RMSprop epsilon.", valid=POSITIVE)
    momentum: float = setting(0.0, "SGD/RMSprop momentum.", valid=UNIT_HALF_OPEN)
    nesterov: bool = setting(False, "SGD Nesterov momentum.")
    rho: float = setting(0.9, "RMSprop decay rate.", valid=UNIT_HALF_OPEN)


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    batch_size: int = setting(64, "Real images per discriminator step (and fakes per step).",
                              valid=Range(1, 2 ** 20))
    num_steps: int = setting(10000, "Training iterations (one iteration = d_steps D updates + "
                             "one G update).", valid=AT_LEAST_1)
    seed: int = setting(0, "Random seed for weights, batches and noise.", valid=SEED)


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    log_every: int = setting(100, "Steps between scalar summaries and console lines; each value "
                             "is the mean over the iterations since the last one.",
                             valid=AT_LEAST_1)
    sample_every: int = setting(200, "Steps between sample grids (PNG and TensorBoard).",
                                valid=AT_LEAST_1)
    checkpoint_every: int = setting(1000, "Steps between checkpoints (one is also written at the "
                                    "end).", valid=AT_LEAST_1)
    keep_checkpoints: int = setting(3, "Rolling checkpoints to keep.", valid=AT_LEAST_1)
    eval_every: int = setting(2000, "Steps between evaluations (FID, KID, classifier score, "
                              "precision/recall, class coverage) against the training set; 0 "
                              "turns them off. The checkpoint with the best FID is kept in "
                              "best_checkpoint/.", valid=NON_NEGATIVE,
                              note="0 turns evaluation off")
    eval_num_samples: int = setting(10000, "Generated samples per evaluation.",
                                    valid=Range(10, 1_000_000))
    grid_size: int = setting(5, "Sample grid is grid_size x grid_size (the seed's 5x5).",
                             valid=Range(1, 100))


# --mixed_precision -> the networks' compute dtype.
MIXED_PRECISIONS = {"none": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    steps_per_loop: int = setting(100, "Iterations per compiled call; logging, samples and "
                                  "checkpoints still happen at their exact steps.",
                                  valid=AT_LEAST_1)
    jit_compile: str = setting("auto", "Compile the training loop with XLA: true, false, or auto "
                               "(the architecture's faster path: XLA for mlp, TensorFlow's own "
                               "kernels for the convolutional dcgan, whose XLA CPU convolutions "
                               "are many times slower).", choices=("auto", "true", "false"))
    deterministic: bool = setting(False, "Enable TensorFlow op determinism, so that the same seed "
                                  "gives bitwise-identical weights (slower on some ops).")
    on_nonfinite: str = setting("stop", "When a loss or gradient becomes NaN/inf: stop (keeping "
                                "the last good checkpoint), or roll back to the last checkpoint "
                                "(one is written at step 0 for this) and continue with the "
                                "learning rates multiplied by --rollback_lr_factor.",
                                choices=("stop", "rollback"))
    rollback_lr_factor: float = setting(0.5, "Learning-rate multiplier at each roll-back.",
                                        valid=UNIT_OPEN)
    max_rollbacks: int = setting(10, "Roll-backs allowed in one process before the run stops.",
                                 valid=AT_LEAST_1)
    strategy: str = setting("default", "Where to train, with tf.distribute: default (one device), "
                            "mirrored (this machine's GPUs, or --cpu_replicas logical CPUs), "
                            "multi_worker (several machines, each with its TF_CONFIG; see "
                            "BUILD.md) or tpu (--tpu). --batch_size is the global batch.",
                            choices=distribute.STRATEGIES)
    cpu_replicas: int = setting(0, "Split the CPU into this many logical devices for "
                                "--strategy=mirrored or multi_worker (to try distribution without "
                                "accelerators); 0 = no split.", valid=Range(0, 256),
                                note="0 = no split")
    tpu: Optional[str] = setting(None, "The TPU for --strategy=tpu: its name, grpc://host:port, or "
                                 "local.")
    sync_batchnorm: bool = setting(True, "Under several replicas, BatchNorm uses the statistics of "
                                   "the global batch (all-reduced); --nosync_batchnorm keeps each "
                                   "replica's own, as separate devices would without it.")
    mixed_precision: str = setting("none", "Compute the networks in a 16-bit float: bfloat16 or "
                                   "float16 (with dynamic loss scaling); variables, optimizer "
                                   "state, losses and penalties stay float32. none = float32 "
                                   "throughout.", choices=tuple(MIXED_PRECISIONS))


# Group attribute -> (its dataclass, the prefix of its flags).
GROUPS = {
    "data": (DataConfig, ""),
    "model": (ModelConfig, ""),
    "game": (GameConfig, ""),
    "g_opt": (OptimizerConfig, "g_"),
    "d_opt": (OptimizerConfig, "d_"),
    "schedule": (ScheduleConfig, ""),
    "output": (OutputConfig, ""),
    "runtime": (RuntimeConfig, ""),
}


# The settings that existed when studies began to identify runs by their flags (version 0.2):
# frozen, never to be edited. Any setting added since, penalty weights included, enters a run's
# identity only when it is set to something other than its default (see `to_flagfile`), so that
# adding a setting needs no edit here and changes no study's run digests
# (tests/test_digests.py).
IDENTITY_BASELINE = frozenset("""
    dataset data_dir architecture latent_dim latent_distribution g_hidden d_hidden dcgan_width
    dcgan_d_width g_norm d_norm bn_momentum bn_epsilon conditional g_conditioning d_conditioning
    g_ema_decay d_loss g_loss label_smoothing penalty_every weight_clip allow_unstable d_steps
    d_update d_fake_batchnorm gp_weight r1_weight r2_weight dragan_weight
    g_optimizer g_learning_rate g_beta1 g_beta2 g_epsilon g_momentum g_nesterov g_rho
    d_optimizer d_learning_rate d_beta1 d_beta2 d_epsilon d_momentum d_nesterov d_rho
    batch_size num_steps seed log_every sample_every checkpoint_every keep_checkpoints eval_every
    eval_num_samples grid_size steps_per_loop jit_compile deterministic on_nonfinite
    rollback_lr_factor max_rollbacks strategy cpu_replicas tpu""".split())

def _settings():
    result = {}
    for group, (cls, prefix) in GROUPS.items():
        for field in dataclasses.fields(cls):
            name = prefix + field.name
            result[name] = schema.Setting(name, group, field, prefix,
                                          in_identity_at_default=name in IDENTITY_BASELINE)
    return result


SETTINGS = _settings()
# Where a run trains, not what it trains: a run may move between strategies and keep its identity.
PLACEMENT_SETTINGS = ("strategy", "cpu_replicas", "tpu")
STRUCTURAL_SETTINGS = tuple(name for name, s in SETTINGS.items() if s.structural)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run. An invalid value raises ConfigError at construction;
    `validate()` adds the rules about combinations, which training enforces."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    game: GameConfig = GameConfig()
    g_opt: OptimizerConfig = OptimizerConfig()
    d_opt: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    output: OutputConfig = OutputConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self):
        lines = self.value_errors()
        if lines:
            raise ConfigError(lines)

    def value_errors(self):
        """One line per invalid value: the flag, what was found and what is expected."""
        flat = self.to_flat()
        return late_penalties() + [
            f"--{name}={schema.display(flat[name])}: expected {expected}"
            for name, setting_ in SETTINGS.items()
            for expected in [schema.check(setting_, flat[name])] if expected]

    def combination_errors(self):
        """One line per combination of settings that cannot work, or that is known to train
        badly and not explicitly allowed (--allow_unstable). Checked before training, not when
        a saved config is read back, so runs of older versions still load."""
        game = self.game
        errors, unstable = losses.combination_problems(
            game.d_loss, game.g_loss, penalty_weights(game), game.weight_clip,
            game.label_smoothing, game.d_update)
        if not game.allow_unstable:
            errors += [f"{line} (or pass --allow_unstable to train it anyway)"
                       for line in unstable]
        return errors

    def validate(self):
        """Raises ConfigError with every combination problem (values were checked already)."""
        lines = self.combination_errors()
        if lines:
            raise ConfigError(lines)
        return self

    def to_flat(self):
        """{flag name: value} of every setting (config.json's content)."""
        flat = {}
        for group, (_, prefix) in GROUPS.items():
            for key, value in dataclasses.asdict(getattr(self, group)).items():
                flat[prefix + key] = value
        return flat

    @classmethod
    def from_flat(cls, flat):
        """The config of {flag name: value}; missing settings take their defaults (so an older
        config.json still loads), unknown names raise ConfigError."""
        unknown = sorted(set(flat) - set(SETTINGS))
        if unknown:
            raise ConfigError([f"unknown setting {name!r}" for name in unknown])
        groups = {group: {} for group in GROUPS}
        for name, value in flat.items():
            setting_ = SETTINGS[name]
            if name == "jit_compile" and isinstance(value, bool):
                value = str(value).lower()  # a boolean before "auto" existed (version 0.2)
            if setting_.kind is tuple and isinstance(value, list):
                value = tuple(value)
            groups[setting_.group][setting_.field.name] = value
        return cls(**{group: GROUPS[group][0](**values) for group, values in groups.items()})

    def replace(self, **flat_overrides):
        """A copy with some settings changed, by flag name: replace(g_learning_rate=1e-3)."""
        return RunConfig.from_flat({**self.to_flat(), **flat_overrides})

    def to_flagfile(self, identity=False):
        """The settings as a flagfile that reproduces this run. `identity`: only what makes the
        run what it is (a study's run digest): without the settings of where it trains, and
        without settings added since digests exist while they keep their default, so that a
        finished run of an older version stays finished."""
        flat = self.to_flat()
        if identity:
            flat = {name: value for name, value in flat.items()
                    if name not in PLACEMENT_SETTINGS and (
                        SETTINGS[name].in_identity_at_default
                        or value != SETTINGS[name].default)}
        return schema.flagfile(flat)


def to_json_value(flat):
    """config.json's form: tuples as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}


# --- absl flags -----------------------------------------------------------------------------------

def define_flags(flag_values):
    """Defines one absl flag per setting on `flag_values` (e.g. absl.flags.FLAGS)."""
    schema.define_flags(SETTINGS, flag_values)


def from_flags(flag_values):
    """The validated RunConfig of parsed flags; raises ConfigError listing every problem."""
    return RunConfig.from_flat(schema.flat_of_flags(SETTINGS, flag_values)).validate()


def from_flagfile(path, **overrides):
    """The validated RunConfig of a flagfile (as `gan.train --flagfile=path` reads it), with
    some settings overridden by flag name."""
    flat = schema.read_flagfile(path, SETTINGS, ConfigError)
    return RunConfig.from_flat(flat).replace(**overrides).validate()
