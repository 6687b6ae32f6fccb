"""A study file and the runs it plans.

`load_study(path)` reads and checks a study file (TOML; its format is in `gan.study`), and
`plan(study)` makes every run of it, each with its validated RunConfig, seed-major. A run's
identity is `run_digest`: the digest of the settings that make it what it is, so that a study run
again trains only the runs whose settings changed.
"""

import hashlib
import itertools
import os

from absl import flags

from gan import config as config_lib
from gan.errors import StudyError
from gan.study import sections, summary
from gan.study import winners as winners_lib
from gan.study.model import Axis, PlannedReference, PlannedRun, Study


def _read_toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise StudyError(f"{path}: reading a study file needs Python >= 3.11 (tomllib) or "
                             "`pip install tomli`") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise StudyError(f"--study={path}: no such file") from None
    except OSError as e:
        raise StudyError(f"--study={path}: cannot be read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML: {e}") from None


def _label(value):
    """A value as a piece of a directory name."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(_label(v) for v in value)
    return str(value).replace("/", "-").replace(",", "-").replace("=", "-")


def _as_setting(value):
    return tuple(value) if isinstance(value, list) else value


def _check_names(path, where, values):
    unknown = [name for name in values if name not in config_lib.SETTINGS]
    if unknown:
        raise StudyError(f"{path}: {where}: unknown flag {', '.join(map(repr, unknown))} "
                         "(expected gan.train's flag names, without the dashes)")


# Run directories are named <axis>=<label>,...,seed=<n> and reference=<name>,seed=<n>.
RESERVED_AXES = ("seed", "reference")


MAX_NAME_BYTES = 255  # a directory name's limit on Linux's file systems


def _check_name(path, what, name):
    if not sections.NAME.match(name):
        raise StudyError(f"{path}: {what} {name!r}: expected letters, digits and _ . + - "
                         "only, starting with a letter or digit (it names directories)")


def _winner_of(path, where, table):
    table, declared = winners_lib.declared(path, where, table)
    if declared:
        _check_names(path, f"{where} {winners_lib.WINNER_OF}'s except", declared.excluded)
    return table, declared


def _variant_axis(path, name, spec):
    """(choices, spaces, winners): each variant's fixed flags, the flags it tunes for its own
    arm, and the tuned winner it takes."""
    _check_name(path, "axis", name)
    choices, spaces, winners = [], [], []
    for label, variant in spec.items():
        where = f"axis {name!r}, variant {label!r}"
        variant, winner = _winner_of(path, f"[axes.{name}.{label}]", variant)
        if winner:
            winners.append((_label(label), winner))
        if not variant and not winner:
            raise StudyError(f"{path}: {where} sets no flag; expected flag = value lines under "
                             f"[axes.{name}.{label}]")
        _check_names(path, where, variant)
        tuned = {k: v for k, v in variant.items() if sections.is_param_spec(v)}
        choices.append((_label(label), {k: _as_setting(v) for k, v in variant.items()
                                        if k not in tuned}))
        if tuned:
            spaces.append((_label(label), sections.arm_space(path, f"[axes.{name}.{label}]",
                                                             tuned)))
    labelled = [(label, flags_, dict(spaces).get(label), dict(winners).get(label))
                for label, flags_ in choices]
    for (a, *set_a), (b, *set_b) in itertools.combinations(labelled, 2):
        if set_a == set_b:
            raise StudyError(f"{path}: axis {name!r}: variants {a!r} and {b!r} set the same "
                             "flags to the same values, so their runs would be identical")
    return tuple(choices), tuple(spaces), tuple(winners)


def _check_conflicts(path, settings, axes):
    """No flag is set by two axes, or by an axis and [settings]: one would silently win, and
    runs named after one value would train with another."""
    owner = {name: "[settings]" for name in settings}
    for axis in axes:
        for name in sorted({flag for _, values in axis.choices for flag in values}
                           | {p.name for _, space in axis.spaces for p in space}):
            if name in owner:
                raise StudyError(f"{path}: --{name} is set by both {owner[name]} and axis "
                                 f"{axis.name!r}; expected each flag in one place")
            owner[name] = f"axis {axis.name!r}"


def load_study(path):
    """The Study in a TOML file; StudyError names the file and the problem."""
    raw = _read_toml(path)
    known = {"description", "base", "seeds", "settings", "axes", "references", "report",
             "analysis", "tune", "output"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise StudyError(f"{path}: unknown key {', '.join(map(repr, unknown))}; expected "
                         f"{', '.join(sorted(known))}")
    if not isinstance(raw.get("base"), str):
        raise StudyError(f"{path}: 'base' must name the base flagfile (a path relative to the "
                         "study file)")
    if not isinstance(raw.get("description", ""), str):
        raise StudyError(f"{path}: 'description' must be text")
    base = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), raw["base"]))
    if not os.path.isfile(base):
        raise StudyError(f"{path}: base flagfile {base} not found")
    seeds = _seeds(path, raw)
    settings = sections.table(path, raw, "settings", "a table of flag = value ([settings])")
    settings, winner_of = _winner_of(path, "[settings]", settings)
    _check_names(path, "[settings]", settings)
    axes = _axes(path, raw)
    _check_conflicts(path, settings, axes)
    references = _references(path, raw)
    curves, max_step, findings = sections.report(path, raw)
    analysis = sections.analysis(path, raw)
    tune = sections.tune(path, raw, seeds)
    if tune:
        _check_tuned_flags(path, settings, axes, tune)
    tuning_axis = next((axis for axis in axes if axis.spaces), None)
    if tune and not tune.space and not tuning_axis:
        raise StudyError(f"{path}: [tune]: {sections.NO_SPACE}")
    if tuning_axis and not tune:
        label, space = tuning_axis.spaces[0]
        raise StudyError(f"{path}: [axes.{tuning_axis.name}.{label}] tunes --{space[0].name}, "
                         "but the study has no [tune] section; expected [tune] (the trials and "
                         "their schedule) or a value for the flag")
    name = os.path.splitext(os.path.basename(path))[0]
    return Study(path, name, str(raw.get("description", "")).strip(), base, seeds,
                 {k: _as_setting(v) for k, v in settings.items()}, axes, references, curves,
                 max_step, findings.strip(), analysis, tune, _output(path, raw), winner_of)


def _output(path, raw):
    output = raw.get("output", "")
    if not isinstance(output, str) or output.startswith(("/", "~")):
        raise StudyError(f"{path}: 'output' must be a folder relative to the study file (for "
                         f"the records and results committed with it), found {output!r:.60}")
    return (os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), output))
            if output else "")


def _check_tuned_flags(path, settings, axes, tune):
    """A tuned flag is the tuner's alone: an axis or [settings] value would be overridden."""
    for param in tune.space:
        if param.name in settings:
            raise StudyError(f"{path}: --{param.name} is set by both [settings] and "
                             "[tune.space]; expected each flag in one place")
        for axis in axes:
            if any(param.name in values for _, values in axis.choices) or any(
                    param.name in (p.name for p in space) for _, space in axis.spaces):
                raise StudyError(f"{path}: --{param.name} is set by both axis {axis.name!r} and "
                                 "[tune.space]; expected each flag in one place")


def _seeds(path, raw):
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(set(seeds)) != len(seeds)
            or not all(config_lib.SEED.contains(s) for s in seeds)):
        raise StudyError(f"{path}: 'seeds' must be a list of distinct integers in [0, 2^63 - 1], "
                         f"found {seeds!r:.80}")
    return tuple(seeds)


def _axes(path, raw):
    axes = []
    for name, spec in sections.table(path, raw, "axes", "tables of axes ([axes])").items():
        if name in RESERVED_AXES:
            raise StudyError(f"{path}: axis {name!r}: the name is the runner's own ("
                             + ("the seeds are set by seeds = [...])" if name == "seed" else
                                "references are set by [references.<name>])"))
        if isinstance(spec, list):
            _check_names(path, f"axis {name!r}", [name])
            if not spec:
                raise StudyError(f"{path}: axis {name!r} has no values")
            choices = tuple((_label(v), {name: _as_setting(v)}) for v in spec)
            is_flag, spaces, winners = True, (), ()
        elif isinstance(spec, dict) and spec and all(isinstance(v, dict) for v in spec.values()):
            choices, spaces, winners = _variant_axis(path, name, spec)
            is_flag = False
        else:
            raise StudyError(f"{path}: axis {name!r} must be a list of values of the flag "
                             f"--{name}, or tables of named variants ([axes.{name}.<variant>])")
        labels = [label for label, _ in choices]
        if len(set(labels)) != len(labels):
            raise StudyError(f"{path}: axis {name!r} has two choices named alike: {labels}")
        axes.append(Axis(name, choices, is_flag, spaces, winners))
    return tuple(axes)


def _references(path, raw):
    references = []
    for label, spec in sections.table(path, raw, "references",
                              "tables of references ([references.<name>])").items():
        command = spec.get("command") if isinstance(spec, dict) else None
        if not isinstance(command, str) or "{samples}" not in command:
            raise StudyError(f"{path}: reference {label!r} needs command = \"...\" that writes "
                             "its samples to {samples} (and may use {seed})")
        _check_name(path, "reference", label)
        references.append((_label(label), command))
    return tuple(references)


def _check_run_name(path, name):
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise StudyError(f"{path}: run {name[:60]}...: its directory name has {size} bytes; "
                         f"expected at most {MAX_NAME_BYTES} (shorten the axis names or labels)")


def outside_root(root, runs):
    """(run, where its directory resolves) for the first run whose directory would not lie
    inside `root` once `..` and symbolic links are resolved; None when every one does."""
    real_root = os.path.realpath(root)
    for run in runs:
        real = os.path.realpath(os.path.join(root, run.name))
        if real == real_root or os.path.commonpath([real_root, real]) != real_root:
            return run, real
    return None


def plan(study, _resolving=frozenset()):
    """Every run of the study, each with its validated RunConfig, in the order they run:
    seed-major, so that a study stopped early has every configuration at its first seed."""
    resolving = _resolving | {study.path}
    winner = _winner_settings(study, study.winner_of, resolving) if study.winner_of else {}
    axis_winners = {(axis.name, label): (ref, _winner_settings(study, ref, resolving))
                    for axis in study.axes for label, ref in axis.winners}
    winners_lib.check(study, winner, axis_winners)
    base = _base_config(study, winner)
    if study.tune:
        _check_space(study, base)
    runs = []
    for seed in study.seeds:
        for combination in itertools.product(*(axis.choices for axis in study.axes)):
            overrides, parts, space = {}, [], ()
            for axis, (label, values) in zip(study.axes, combination):
                overrides.update(values)
                overrides.update(axis_winners.get((axis.name, label), (None, {}))[1])
                parts.append(f"{axis.name}={label}")
                space += dict(axis.spaces).get(label, ())
            config_name = ",".join(parts) or "base"
            try:
                # Until the arm is tuned, its own tuned flags hold their ranges' first values.
                config = base.replace(**overrides, seed=seed)
                if space and seed == study.seeds[0]:
                    _check_params(study, config, space, f"{config_name}: [tune]")
                config = config.replace(**{p.name: _as_setting(p.values[0])
                                           for p in space}).validate()
            except config_lib.ConfigError as e:
                raise StudyError(f"{study.path}: {config_name}: {e.lines[0]}") from None
            name = ",".join(parts + [f"seed={seed}"])
            _check_run_name(study.path, name)
            labels = [label for label, _ in combination]
            runs.append(PlannedRun(
                name, config_name, tuple(zip((a.name for a in study.axes), labels)), seed,
                config, tuple((a.name, a.hparam_value(label))
                              for a, label in zip(study.axes, labels)), space))
        for label, command in study.references:
            _check_run_name(study.path, f"reference={label},seed={seed}")
            runs.append(PlannedReference(
                f"reference={label},seed={seed}", f"reference={label}", seed,
                command.replace("{seed}", str(seed)), base.data.dataset))
    sections.check_analysis(study, runs)
    return runs


def _base_config(study, winner):
    """The base flagfile's settings, with [settings] and the study's winner on top."""
    try:
        base = config_lib.from_flagfile(study.base)
    except flags.Error as e:
        raise StudyError(f"{study.path}: base flagfile {study.base}: "
                         f"{str(e).splitlines()[0]}") from None
    except config_lib.ConfigError as e:
        line = e.lines[0]
        where = "" if line.startswith(study.base) else f"base flagfile {study.base}: "
        raise StudyError(f"{study.path}: {where}{line}") from None
    try:
        return base.replace(**study.settings, **winner)
    except config_lib.ConfigError as e:
        raise StudyError(f"{study.path}: [settings]: {e.lines[0]}") from None


def winner_settings(study, ref):
    """The flags `ref` (a winner_of of `study`) sets in the study's runs."""
    return _winner_settings(study, ref, frozenset({study.path}))


def _winner_settings(study, ref, resolving):
    """The flags of the winner `ref` names, read from the tuned study's committed
    records/tuning.json (checked against that study's current file, as its own report does)."""
    where = f"{study.path}: {ref.where} {winners_lib.WINNER_OF}"
    if ref.study in resolving:
        raise StudyError(f"{where}: {ref.study} takes a winner from this study in turn; "
                         "expected a study that is tuned on its own")
    if not os.path.isfile(ref.study):
        raise StudyError(f"{where}: study file {ref.study} not found")
    other = load_study(ref.study)
    if not other.tune:
        raise StudyError(f"{where}: {ref.study} has no [tune] section, so none of its arms has "
                         "a winner")
    other_runs = plan(other, resolving)
    tuned = summary.arms(other, other_runs)
    if ref.arm not in tuned:
        raise StudyError(f"{where}: {other.name} has no tuned arm {ref.arm!r}; expected one of "
                         f"{', '.join(tuned) or 'none'}")
    if not other.output:
        raise StudyError(f"{where}: {ref.study} declares no output folder, so its tuning is not "
                         "committed beside it; expected output = \"...\" in that file")
    records_dir = os.path.join(other.output, summary.RECORDS)
    tuned_summary = summary.read_summary(other, records_dir, other_runs)
    if tuned_summary is None:
        raise StudyError(
            f"{where}: {other.name} is not tuned yet: {os.path.join(records_dir, summary.SUMMARY)} "
            "is missing or was written for other settings; expected its tuning first "
            f"(python -m gan.ablate --study={os.path.relpath(ref.study)})")
    settings = tuned_summary["arms"][ref.arm]["winner"]
    missing = [name for name in ref.excluded if name not in settings]
    if missing:
        raise StudyError(f"{where}: except = [...] names --{missing[0]}, which the winner does "
                         f"not set (it sets {', '.join(sorted(settings))})")
    return {name: _as_setting(value) for name, value in settings.items()
            if name not in ref.excluded}


def _check_space(study, base):
    _check_params(study, base, study.tune.space, "[tune.space]")


def _check_params(study, config, space, where):
    """Every end of a tuned range, and every choice, is a value gan.train takes: alone, and
    with the space's other flags at their first values (a loss may need its penalty's weight)."""
    firsts = {p.name: _as_setting(p.values[0]) for p in space}
    for param in space:
        for value in param.values:
            try:
                config.replace(**{param.name: _as_setting(value)})
                config.replace(**{**firsts, param.name: _as_setting(value)}).validate()
            except config_lib.ConfigError as e:
                raise StudyError(f"{study.path}: {where} {param.name} = {value!r}: "
                                 f"{e.lines[0]}") from None


def run_digest(run):
    """What identifies a run's settings: a rerun with other settings trains it again."""
    text = (run.command if isinstance(run, PlannedReference)
            else run.config.to_flagfile(identity=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
