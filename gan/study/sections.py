"""The optional sections of a study file, read and checked: [report] (what the report draws and
the findings), [analysis] (the declared comparisons) and [tune] (a tuning budget per arm).

Each reader takes the file's path and its parsed TOML, and raises StudyError with one line that
names the file, the section and what it expects.
"""

import dataclasses
import math
import re

from gan import config as config_lib
from gan.errors import StudyError

# A name that becomes part of a directory or file name: letters, digits and _ . + - only,
# starting with a letter or digit, so that no name can climb out of the root.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")


def table(path, raw, key, what):
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise StudyError(f"{path}: '{key}' must be {what}, found {type(value).__name__} "
                         f"{value!r:.60}")
    return value


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def plot_file_name(tag):
    """Where a study's report plots the curve of a scalar tag: <root>/<its last part>.png."""
    return tag.split("/")[-1] + ".png"


# The report's own pictures: a [report] curve may not be plotted over one of them.
REPORT_PLOTS = ("fid.png", "mosaic.png", "seeds.png", "tuning.png")


def report(path, raw):
    """(curves, curve_max_step, findings) of the [report] table."""
    section = table(path, raw, "report", "a table ([report])")
    curves, max_step = section.get("curves", []), section.get("curve_max_step", 0)
    findings = section.get("findings", "")
    if (not isinstance(curves, list) or not all(isinstance(c, str) for c in curves)
            or not isinstance(max_step, int) or max_step < 0 or not isinstance(findings, str)
            or set(section) - {"curves", "curve_max_step", "findings"}):
        raise StudyError(f"{path}: [report] takes curves = [\"train/g_grad_norm\", ...] (scalar "
                         "tags to plot), curve_max_step = N (>= 0; 0 for the whole run) and "
                         "findings = \"\"\"...\"\"\" (markdown for results.md)")
    plots = list(REPORT_PLOTS)
    for tag in curves:
        plot = plot_file_name(tag)
        if plot in plots or not NAME.match(plot):
            raise StudyError(f"{path}: [report] curve {tag!r} would be plotted to {plot!r}, "
                             f"which is taken or not a plain file name; expected tags ending in "
                             "distinct names other than fid, mosaic, seeds and tuning")
        plots.append(plot)
    return tuple(curves), max_step, findings


ALL_PAIRS = "all_pairs"
# The baseline of a study of G's moving average: each configuration's averaged G against its
# raw G, both scored in the same runs (eval/fid and eval/raw/fid), paired by run.
RAW_GENERATOR = "raw_generator"
# fid_budget: a run's FID at the last declared budget (its last evaluation within it).
ANALYSIS_METRICS = ("fid_final", "fid_best", "fid_budget")
# What a budget counts, and so the x-axis of the curves: iterations, real images D has seen,
# training seconds (evaluation excluded) or FLOPs (gan.flops).
UNITS = ("steps", "images", "seconds", "flops")


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What a study's verdicts compare, declared before it runs: every configuration against the
    `baseline` (a configuration's name; default: the study's first) or all pairs, on `metric`
    (a run's final or best FID), at level `alpha`, calling a difference within +-`margin`
    equivalent."""
    baseline: str = ""
    metric: str = "fid_final"
    alpha: float = 0.05
    margin: float = 5.0
    mix_machines: bool = False  # compare runs trained on different machines anyway
    # Compare within machines: the machine a run trained on is a block of the linear model.
    block_machines: bool = False
    # With block_machines, the model's residual variance: "pooled" over every configuration, or
    # "per_comparison" (fitted to the baseline's and that configuration's runs alone).
    variance: str = "pooled"
    budgets: tuple = ()  # the budgets (in `unit`) at which the report gives each run's FID
    unit: str = "steps"


ANALYSIS_KEYS = {"baseline", "metric", "alpha", "margin", "mix_machines", "block_machines",
                 "variance", "budgets", "unit"}
VARIANCES = ("pooled", "per_comparison")


def analysis(path, raw):
    section = table(path, raw, "analysis", "a table ([analysis])")
    expected = (f"{path}: [analysis] takes baseline = \"<configuration>\" (or \"{ALL_PAIRS}\", "
                f"or \"{RAW_GENERATOR}\"), "
                f"metric = one of {', '.join(ANALYSIS_METRICS)}, alpha in (0, 0.5], "
                "margin > 0 (in the metric's units), mix_machines = true or false, "
                "block_machines = true or false, variance = one of "
                f"{', '.join(VARIANCES)} (with block_machines), budgets = "
                f"[increasing numbers > 0] and unit = one of {', '.join(UNITS)}")
    unknown = set(section) - ANALYSIS_KEYS
    budgets, unit = section.get("budgets", []), section.get("unit", "steps")
    if (not isinstance(budgets, list) or not all(_is_number(b) and b > 0 for b in budgets)
            or budgets != sorted(set(budgets)) or unit not in UNITS):
        raise StudyError(expected)
    if section.get("metric") == "fid_budget" and not budgets:
        raise StudyError(f"{path}: [analysis] metric = \"fid_budget\" compares the FID at the "
                         "last of the budgets; expected budgets = [...]")
    mix, block = section.get("mix_machines", False), section.get("block_machines", False)
    variance = section.get("variance", "pooled")
    baseline, metric = section.get("baseline", ""), section.get("metric", "fid_final")
    alpha, margin = section.get("alpha", 0.05), section.get("margin", 5.0)
    numbers = _is_number(alpha) and _is_number(margin)
    if (unknown or not isinstance(baseline, str) or metric not in ANALYSIS_METRICS
            or not numbers or not 0 < alpha <= 0.5 or not margin > 0 or not isinstance(mix, bool)
            or not isinstance(block, bool) or variance not in VARIANCES):
        raise StudyError(expected)
    if "variance" in section and not block:
        raise StudyError(f"{path}: [analysis] variance is the residual variance of the "
                         "within-machines model; expected block_machines = true beside it")
    if block and (mix or baseline in (ALL_PAIRS, RAW_GENERATOR)):
        raise StudyError(f"{path}: [analysis] block_machines compares each configuration with "
                         "a baseline configuration within machines; expected baseline = "
                         "\"<configuration>\" and no mix_machines")
    return Analysis(baseline, metric, float(alpha), float(margin), mix, block_machines=block,
                    variance=variance, budgets=tuple(budgets), unit=unit)


def check_analysis(study, runs):
    """The [analysis] declaration fits the planned runs: its baseline is one of their
    configurations, and its budgets in steps are evaluations of every run."""
    _check_baseline(study, runs)
    _check_budgets(study, runs)


def _check_budgets(study, runs):
    """A budget in steps is an evaluation of every run: a multiple of its eval_every, within its
    num_steps."""
    analysis = study.analysis
    if not analysis or analysis.unit != "steps":
        return
    for run in runs:
        schedule = getattr(run, "config", None) and run.config.schedule
        for budget in analysis.budgets if schedule else ():
            every = run.config.output.eval_every
            if budget != int(budget) or not every or budget % every or budget > schedule.num_steps:
                raise StudyError(f"{study.path}: [analysis] budget {budget:g} steps: run "
                                 f"{run.name} evaluates every {every} steps up to "
                                 f"{schedule.num_steps}; expected budgets that are multiples of "
                                 "eval_every within num_steps")


def _check_baseline(study, runs):
    baseline = study.analysis.baseline if study.analysis else ""
    names = list(dict.fromkeys(run.config_name for run in runs))
    if baseline not in ("", ALL_PAIRS, RAW_GENERATOR, *names):
        raise StudyError(f"{study.path}: [analysis] baseline {baseline!r} is not a configuration "
                         f"of the study; expected one of {', '.join(names[:6])}"
                         + (", ..." if len(names) > 6 else "")
                         + f", {ALL_PAIRS!r} or {RAW_GENERATOR!r}")
    without = next((run for run in runs if baseline == RAW_GENERATOR
                    and getattr(run, "config", None) and not run.config.model.g_ema_decay), None)
    if without:
        raise StudyError(f"{study.path}: [analysis] baseline {RAW_GENERATOR!r} compares each "
                         f"run's moving average of G with G; {without.config_name} keeps none "
                         "(expected g_ema_decay > 0 in every configuration)")


# How a [tune.space] entry draws a flag's value: {log_uniform = [low, high]} (learning rates),
# {uniform = [low, high]} (penalty weights), {int = [low, high]} (D steps) or
# {choices = [a, b, ...]} (beta1, a loss).
PARAM_KINDS = ("log_uniform", "uniform", "int", "choices")
SAMPLERS = ("tpe", "random")
PRUNERS = ("successive_halving", "hyperband")
# Settings a trial's budget, seed and evaluation own: not tunable.
UNTUNABLE = ("num_steps", "seed", "eval_every", "eval_num_samples")


@dataclasses.dataclass(frozen=True)
class Param:
    name: str  # a gan.train flag
    kind: str  # one of PARAM_KINDS
    values: tuple  # (low, high), or the choices


@dataclasses.dataclass(frozen=True)
class Tune:
    """A tuning budget per arm: `trials` Optuna trials per configuration, each trained on the
    `seeds` (none of them a seed of the final runs) and scored by its FID on `eval_num_samples`
    samples, pruned by successive halving: a trial is evaluated at `min_steps`, then at each
    `reduction_factor` times more steps up to `steps`, and only the best 1/`reduction_factor` of
    the trials at a rung train on to the next."""
    space: tuple  # Params
    trials: int
    seeds: tuple
    steps: int  # None: the final runs' num_steps
    min_steps: int  # None: steps (no pruning)
    reduction_factor: int
    sampler: str
    sampler_seed: int
    eval_num_samples: int
    pruner: str = "successive_halving"  # or "hyperband": several halving brackets at once

    def budget(self, num_steps):
        """A trial's full budget, given the final runs' num_steps."""
        return self.steps or num_steps

    def rungs(self, num_steps):
        """The step budgets at which a trial is evaluated: min_steps * rf^k below its budget,
        then the budget."""
        steps = self.budget(num_steps)
        rungs, budget = [], self.min_steps or steps
        while budget < steps:
            rungs.append(budget)
            budget *= self.reduction_factor
        return tuple(rungs + [steps])


TUNE_KEYS = {"trials", "seeds", "steps", "min_steps", "reduction_factor", "sampler",
             "sampler_seed", "eval_num_samples", "pruner", "space"}


def _whole(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def tune(path, raw, study_seeds):
    """The [tune] section as a Tune, or None when the study has none."""
    if "tune" not in raw:
        return None
    section = table(path, raw, "tune", "a table ([tune])")
    where = f"{path}: [tune]"
    unknown = sorted(set(section) - TUNE_KEYS)
    if unknown:
        raise StudyError(f"{where}: unknown key {', '.join(map(repr, unknown))}; expected "
                         f"{', '.join(sorted(TUNE_KEYS))}")
    trials, steps = section.get("trials", 8), section.get("steps")
    min_steps = section.get("min_steps")
    factor, samples = section.get("reduction_factor", 2), section.get("eval_num_samples", 2000)
    sampler, sampler_seed = section.get("sampler", "tpe"), section.get("sampler_seed", 0)
    pruner = section.get("pruner", "successive_halving")
    seeds = section.get("seeds", [1000])
    checks = [
        (_whole(trials, 1), "trials = N (>= 1) per configuration"),
        (steps is None or _whole(steps, 1),
         "steps = N (>= 1): a trial's full budget (default: the study's num_steps)"),
        (min_steps is None or (_whole(min_steps, 1) and (steps is None or min_steps <= steps)),
         "min_steps = N in [1, steps]: the first rung's budget"),
        (_whole(factor, 2), "reduction_factor = N (>= 2): 1/N of the trials go on at each rung"),
        (_whole(samples, 2), "eval_num_samples = N (>= 2): the tuning FID's samples"),
        (sampler in SAMPLERS, f"sampler = one of {', '.join(map(repr, SAMPLERS))}"),
        (_whole(sampler_seed, 0), "sampler_seed = N (>= 0)"),
        (pruner in PRUNERS, f"pruner = one of {', '.join(map(repr, PRUNERS))}"),
        (isinstance(seeds, list) and seeds and all(_whole(s, 0) for s in seeds)
         and len(set(seeds)) == len(seeds), "seeds = [distinct integers >= 0]"),
    ]
    for ok, expected in checks:
        if not ok:
            raise StudyError(f"{where}: expected {expected}")
    shared = sorted(set(seeds) & set(study_seeds))
    if shared:
        raise StudyError(f"{where}: seeds {shared} are also the study's seeds; expected tuning "
                         "seeds that the final runs do not use (their runs must be fresh)")
    space = _space(path, table(section, section, "space", "tables of flags ([tune.space])"))
    return Tune(space, trials, tuple(seeds), steps, min_steps, factor, sampler, sampler_seed,
                samples, pruner)


def is_param_spec(value):
    """Whether a flag's value in a study file is a range to tune ({log_uniform = [...]}, ...)
    rather than a value."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in PARAM_KINDS


NO_SPACE = ("no [tune.space] and no axis variant tunes a flag; expected flag = {log_uniform = "
            "[low, high]}, {uniform = [...]}, {int = [...]} or {choices = [...]} lines")


def _space(path, section, table_name="[tune.space]"):
    params = []
    for name, spec in section.items():
        where = f"{path}: {table_name} {name}"
        if name not in config_lib.SETTINGS:
            raise StudyError(f"{where}: unknown flag (expected gan.train's flag names, without "
                             "the dashes)")
        if name in UNTUNABLE:
            raise StudyError(f"{where}: the tuning schedule sets it; expected another flag")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in PARAM_KINDS:
            raise StudyError(f"{where}: expected one of {{log_uniform = [low, high]}}, "
                             "{uniform = [low, high]}, {int = [low, high]}, {choices = [...]}")
        kind, values = next(iter(spec.items()))
        if kind == "choices":
            ok = isinstance(values, list) and len(values) >= 2 and len(set(map(repr, values))) \
                == len(values)
        else:
            kind_ok = _whole if kind == "int" else (lambda v, low: _is_number(v))
            ok = (isinstance(values, list) and len(values) == 2
                  and all(kind_ok(v, -2**62) for v in values) and values[0] < values[1]
                  and (kind != "log_uniform" or values[0] > 0))
        if not ok:
            raise StudyError(f"{where}: {kind} = {values!r:.60}: expected "
                             + ("two or more distinct values" if kind == "choices" else
                                "[low, high] with low < high" + (" and low > 0"
                                                                 if kind == "log_uniform" else "")))
        params.append(Param(name, kind, tuple(values)))
    return tuple(params)


def arm_space(path, where, specs):
    """The Params of the flags an axis variant tunes for its own arm (say, a penalty's weight)."""
    return _space(path, specs, where)
