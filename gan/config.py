"""The run schema: every setting of a training run, declared once.

A run is a frozen `RunConfig` made of groups (data, model, game, the two optimizers, schedule,
outputs, runtime). Each field is declared with `setting(...)`: its default, help text, valid
choices or range, and whether it is *structural*, i.e. fixes the checkpoint's variables. From those
declarations alone come
  - the absl flags of `gan.train` (`define_flags`; flag name = group prefix + field name),
  - config.json (`to_flat` / `from_flat`, keyed by flag name, so flagfiles and JSON agree),
  - the one-line validation messages (`RunConfig.value_errors`; `combination_errors` adds the
    losses' rules about which settings go together),
  - the resume check (`structural_differences`).
Adding a setting is adding one field. The penalty weights (--gp_weight, --r1_weight, ...) are
made from `losses.PENALTIES`, so a new penalty needs no edit here either.

    config = RunConfig()                                   # the defaults
    config = config.replace(d_loss="hinge", g_loss="hinge", g_learning_rate=1e-4)
    config.game.d_loss, config.g_opt.learning_rate, config.to_flat()["g_learning_rate"]
"""

import dataclasses
import numbers
from typing import Optional

from gan import data, distribute, latent, losses, networks, optimizers
from gan.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric range; None leaves a side open."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def contains(self, value):
        if self.low is not None and not (value >= self.low if self.low_inclusive
                                         else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.high_inclusive
                                     else value < self.high)

    def describe(self, kind):
        if self.high is None:
            return f"{kind} {'>=' if self.low_inclusive else '>'} {_number(self.low)}"
        left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
        return f"{kind} in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value):
    return str(value) if isinstance(value, int) else f"{value:g}"


AT_LEAST_1 = Range(1)
# Bounds on the values that become tensor shapes and RNG seeds: far beyond any run that fits in
# memory, so that a typo is one line rather than an allocation failure deep in TensorFlow.
MAX_WIDTH = 65536
SIZE = Range(1, MAX_WIDTH)
SEED = Range(0, 2 ** 63 - 1)  # TensorFlow's RNG seeds are int64
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_inclusive=False)
UNIT_CLOSED = Range(0, 1)
UNIT_HALF_OPEN = Range(0, 1, high_inclusive=False)
UNIT_OPEN = Range(0, 1, low_inclusive=False, high_inclusive=False)


def setting(default, help, *, choices=None, valid=None, structural=False, note=None, kind=None):
    """A field of the schema. `choices`: a tuple, or a registry (a dict, read when the choices are
    needed, so that an entry registered later is a valid choice); `valid` is a Range for
    numbers; `note` adds to the expectation printed when the value is invalid (e.g. "0 turns
    evaluation off"); `kind` is the value's type when the default (None) does not tell it."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "valid": valid, "structural": structural,
        "note": note, "kind": kind})


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
    latent_distribution: str = setting("normal", "Law of z: normal N(0, I) or uniform "
                                       "U(-1, 1)^d.", choices=latent.DISTRIBUTIONS,
                                       structural=True)
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
                          "or none.", choices=networks.NORMALIZATIONS, structural=True)
    d_norm: str = setting("none", "Discriminator normalization: batch, layer, spectral (every "
                          "layer, Miyato et al. 2018) or none.", choices=networks.NORMALIZATIONS,
                          structural=True)
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


def _penalty_weight_fields():
    return [(f"{name}_weight", float, setting(0.0, penalty.help, valid=NON_NEGATIVE))
            for name, penalty in losses.PENALTIES.items()]


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


# The game's fields plus one --<penalty>_weight per entry of losses.PENALTIES.
GameConfig = dataclasses.make_dataclass("GameConfig", _penalty_weight_fields(),
                                        bases=(_GameSettings,), frozen=True)
GameConfig.__doc__ = "The losses, penalties and D update scheme."
GameConfig.__module__ = __name__


def penalty_weights(game):
    """{penalty name: weight} of the penalties that are on."""
    return {name: getattr(game, f"{name}_weight") for name in losses.PENALTIES
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
_NET_OF_PREFIX = {"g_": "Generator", "d_": "Discriminator"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One flat setting: its flag name, where it lives, and its declaration."""
    name: str
    group: str
    field: dataclasses.Field

    @property
    def help(self):
        prefix = GROUPS[self.group][1]
        text = self.field.metadata["help"]
        if not prefix:
            return text
        # "Adam beta1" -> "Generator adam beta1", but "SGD momentum" keeps its acronym.
        first = text[0] if text[1:2].isupper() else text[0].lower()
        return f"{_NET_OF_PREFIX[prefix]} {first}{text[1:]}"

    @property
    def choices(self):
        """The valid values of a string setting (a registry's names, sorted), or None."""
        choices = self.field.metadata["choices"]
        if choices is None:
            return None
        return tuple(sorted(choices)) if isinstance(choices, dict) else tuple(choices)

    @property
    def in_identity_at_default(self):
        """Whether a run's identity (`to_flagfile(identity=True)`) names this setting when it
        has its default value: only the settings that existed when studies began to identify
        runs by their flags do, so that a setting added since, left at its default, leaves
        every finished run of a study finished."""
        return self.name in IDENTITY_BASELINE

    @property
    def structural(self):
        return self.field.metadata["structural"]

    @property
    def default(self):
        return self.field.default

    @property
    def kind(self):
        """bool, int, float, str or tuple (a list of positive integers), from the default."""
        default = self.field.default
        if self.field.metadata["kind"] is not None:
            return self.field.metadata["kind"]
        return str if default is None else type(default)


def _settings():
    result = {}
    for group, (cls, prefix) in GROUPS.items():
        for field in dataclasses.fields(cls):
            result[prefix + field.name] = Setting(prefix + field.name, group, field)
    return result


SETTINGS = _settings()
# Where a run trains, not what it trains: a run may move between strategies and keep its identity.
PLACEMENT_SETTINGS = ("strategy", "cpu_replicas", "tpu")
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
STRUCTURAL_SETTINGS = tuple(name for name, s in SETTINGS.items() if s.structural)


def _display(value):
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _check(setting_, value):
    """The expectation a value fails, or None when it is valid."""
    meta, kind = setting_.field.metadata, setting_.kind
    if kind is tuple:
        ok = (isinstance(value, (tuple, list)) and len(value) > 0
              and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH
                      for v in value))
        return None if ok else (f"a comma-separated list of integers in [1, {MAX_WIDTH}], e.g. "
                                "256,512")
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind is str:
        if value is None and setting_.default is None:
            return None
        if not isinstance(value, str):
            return "a string"
        if setting_.choices and value not in setting_.choices:
            return f"one of {', '.join(setting_.choices)}"
        return None
    if value is None and setting_.default is None:
        return None
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        return "an integer"
    if kind is float and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return "a number"
    valid = meta["valid"]
    if valid is not None and not valid.contains(value):
        expected = valid.describe("an integer" if kind is int else "a value")
        return f"{expected} ({meta['note']})" if meta["note"] else expected
    return None


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
        return [f"--{name}={_display(flat[name])}: expected {expected}"
                for name, setting_ in SETTINGS.items()
                for expected in [_check(setting_, flat[name])] if expected]

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
        lines = []
        for name, value in self.to_flat().items():
            if value is None:
                continue
            if identity and (name in PLACEMENT_SETTINGS or (
                    not SETTINGS[name].in_identity_at_default
                    and value == SETTINGS[name].default)):
                continue
            if isinstance(value, bool):
                lines.append(f"--{name}" if value else f"--no{name}")
            else:
                lines.append(f"--{name}={_display(value)}")
        return "\n".join(lines) + "\n"


def to_json_value(flat):
    """config.json's form: tuples as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}


# --- absl flags -----------------------------------------------------------------------------------

def define_flags(flag_values):
    """Defines one absl flag per setting on `flag_values` (e.g. absl.flags.FLAGS)."""
    from absl import flags
    for name, setting_ in SETTINGS.items():
        kind, default, meta = setting_.kind, setting_.default, setting_.field.metadata
        common = dict(name=name, help=setting_.help, flag_values=flag_values)
        if kind is bool:
            flags.DEFINE_boolean(default=default, **common)
        elif kind is tuple:
            flags.DEFINE_list(default=[str(v) for v in default], **common)
        elif kind is int:
            flags.DEFINE_integer(default=default, **common)
        elif kind is float:
            flags.DEFINE_float(default=default, **common)
        elif setting_.choices:
            flags.DEFINE_enum(default=default, enum_values=list(setting_.choices), **common)
        else:
            flags.DEFINE_string(default=default, **common)


def _parse_list(values):
    """A DEFINE_list value as a tuple of ints, or as the raw strings when one is not a number
    (validation then names the flag)."""
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        return tuple(values)


def from_flags(flag_values):
    """The validated RunConfig of parsed flags; raises ConfigError listing every problem."""
    flat = {}
    for name, setting_ in SETTINGS.items():
        value = flag_values[name].value
        flat[name] = _parse_list(value) if setting_.kind is tuple else value
    return RunConfig.from_flat(flat).validate()


BOM = "\ufeff"


def stray_arguments(arguments):
    """The line for words of a command line or flagfile that are not flags (absl passes a
    flagfile's lines that do not start with a dash on as arguments)."""
    first = arguments[0]
    if first.startswith(BOM):
        return (f"{first[1:]!r} starts with a byte-order mark (U+FEFF), as a flagfile saved as "
                "'UTF-8 with BOM' does; expected the flagfile in plain UTF-8")
    shown = " ".join(repr(a) for a in arguments[:3]) + (" ..." if len(arguments) > 3 else "")
    return f"unexpected arguments: {shown} (flags are written --name=value, one per line)"


def from_flagfile(path, **overrides):
    """The validated RunConfig of a flagfile (as `gan.train --flagfile=path` reads it), with
    some settings overridden by flag name."""
    from absl import flags
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    remaining = flag_values(["gan", f"--flagfile={path}"])
    if len(remaining) > 1:  # as gan.train refuses them
        raise ConfigError([f"{path}: {stray_arguments(remaining[1:])}"])
    return from_flags(flag_values).replace(**overrides).validate()
