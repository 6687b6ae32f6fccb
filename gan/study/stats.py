"""The statistics of a study's declared analysis, computed by scipy and statsmodels.

Every arm is compared with the declared baseline (or every pair with every other): the difference
of the mean metric, its Welch confidence interval, a Welch p-value adjusted over the comparisons by
Holm's method, two one-sided tests for equivalence within the declared margin, and the minimum
detectable effect of that comparison (80% power at the declared alpha, from the pooled
within-arm sd). A study with several axes also gets a factorial ANOVA and each level's effect
from the additive model, with intervals.
"""

import dataclasses
import itertools
import math
import re

import numpy as np

from gan.errors import MissingPackage

POWER = 0.8


def _libraries():
    """scipy.stats, once scipy and statsmodels are known to be there; else MissingPackage,
    naming the install command."""
    try:
        from scipy import stats
        import statsmodels
    except ImportError as e:
        raise MissingPackage(f"a study's analysis needs scipy and statsmodels ({e.name} is not "
                             "installed): pip install -e '.[study]'") from None
    del statsmodels
    return stats


def mean_interval(values, confidence=0.95):
    """(mean, sample sd, half-width of the t confidence interval of the mean); sd and the
    half-width are None for fewer than 2 values."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), None, None
    sd = float(values.std(ddof=1))
    quantile = _libraries().t.ppf(0.5 + confidence / 2, len(values) - 1)
    return float(values.mean()), sd, float(quantile * sd / math.sqrt(len(values)))


def welch(a, b, alpha=0.05):
    """(mean(a) - mean(b), the 1 - alpha Welch interval of it, the two-sided Welch p-value), for
    samples of at least 2 values each."""
    result = _libraries().ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(1 - alpha)
    difference = float(np.mean(a) - np.mean(b))
    if not np.isfinite(result.pvalue):  # two constant samples
        same = difference == 0
        return difference, difference, difference, 1.0 if same else 0.0
    return difference, float(interval.low), float(interval.high), float(result.pvalue)


def equivalence_p(a, b, margin):
    """The p-value of two one-sided Welch tests that |mean(a) - mean(b)| < margin (Schuirmann
    1987): small when the difference lies within the margin."""
    from statsmodels.stats.weightstats import ttost_ind
    _libraries()
    p, _, _ = ttost_ind(np.asarray(a, float), np.asarray(b, float), -margin, margin,
                        usevar="unequal")
    return float(p)


def holm(pvalues):
    """Holm's step-down adjustment of a family of p-values (Holm 1979)."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests
    _libraries()
    return [float(p) for p in multipletests(pvalues, method="holm")[1]]


def pooled_sd(groups):
    """The within-group sd pooled over groups of at least 2 values, or None."""
    groups = [np.asarray(g, np.float64) for g in groups if len(g) >= 2]
    if not groups:
        return None
    squares = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
    return math.sqrt(squares / sum(len(g) - 1 for g in groups))


def minimum_detectable_effect(sd, n_a, n_b, alpha=0.05, power=POWER):
    """The difference of means a two-sided Welch-type t test of n_a against n_b values detects
    with the given power at alpha, for a common sd (Cohen's d solved by statsmodels, times sd)."""
    from statsmodels.stats.power import TTestIndPower
    _libraries()
    if sd is None or n_a < 2 or n_b < 2:
        return None
    d = TTestIndPower().solve_power(effect_size=None, nobs1=n_a, ratio=n_b / n_a, alpha=alpha,
                                    power=power, alternative="two-sided")
    return float(d * sd)


@dataclasses.dataclass(frozen=True)
class Comparison:
    arm: str
    reference: str
    n: int
    n_reference: int
    difference: float  # mean(arm) - mean(reference)
    low: float
    high: float
    p: float
    p_holm: float
    p_equivalent: float  # Holm-adjusted over the family too
    mde: float
    verdict: str


def _verdict(difference, p_holm, p_equivalent, alpha, margin, mde, lower_is_better):
    if p_holm < alpha:
        better = difference < 0 if lower_is_better else difference > 0
        return "better" if better else "worse"
    if p_equivalent < alpha:
        return f"equivalent within ±{margin:g}"
    detects = f"about {mde:.1f}" if mde is not None else "nothing (too few values)"
    return f"undecided — this n detects {detects}"


def compare(arms, reference=None, alpha=0.05, margin=5.0, lower_is_better=True):
    """Comparisons of {arm: values}: each arm against `reference` (a declared arm), or every
    pair when it is None, in order. Arms with fewer than 2 values are left out."""
    measured = {arm: list(values) for arm, values in arms.items() if len(values) >= 2}
    if reference is not None:
        if reference not in measured:
            return []
        pairs = [(arm, reference) for arm in measured if arm != reference]
    else:
        pairs = list(itertools.combinations(measured, 2))
    sd = pooled_sd(measured.values())
    tests = [welch(measured[a], measured[b], alpha) for a, b in pairs]
    p_holm = holm([p for *_, p in tests])
    p_equivalent = holm([equivalence_p(measured[a], measured[b], margin) for a, b in pairs])
    comparisons = []
    for (a, b), (difference, low, high, p), ph, pe in zip(pairs, tests, p_holm, p_equivalent):
        mde = minimum_detectable_effect(sd, len(measured[a]), len(measured[b]), alpha)
        comparisons.append(Comparison(
            a, b, len(measured[a]), len(measured[b]), difference, low, high, p, ph, pe, mde,
            _verdict(difference, ph, pe, alpha, margin, mde, lower_is_better)))
    return comparisons


def compare_paired(pairs, alpha=0.05, margin=5.0, lower_is_better=True):
    """Comparisons of {arm: (values, reference values)}, paired element by element (two
    generators of the same runs): the mean difference with its paired t interval, the paired t
    p-value (Holm over the arms), two one-sided paired tests within the margin, and the
    difference this n detects from the sd of the differences. Arms with fewer than 2 pairs are
    left out."""
    scipy_stats = _libraries()
    from statsmodels.stats.power import TTestPower
    from statsmodels.stats.weightstats import ttost_paired
    measured = {arm: (np.asarray(a, float), np.asarray(b, float))
                for arm, (a, b) in pairs.items() if len(a) == len(b) >= 2}
    tests, equivalent = [], []
    for a, b in measured.values():
        differences = a - b
        if np.all(differences == differences[0]):  # no spread: the t statistic is undefined
            tests.append((float(differences[0]),) * 3 + (1.0 if differences[0] == 0 else 0.0,))
            equivalent.append(0.0 if abs(differences[0]) < margin else 1.0)
            continue
        result = scipy_stats.ttest_rel(a, b)
        interval = result.confidence_interval(1 - alpha)
        tests.append((float(differences.mean()), float(interval.low), float(interval.high),
                      float(result.pvalue)))
        equivalent.append(float(ttost_paired(a, b, -margin, margin)[0]))
    p_holm, p_equivalent = holm([t[3] for t in tests]), holm(equivalent)
    comparisons = []
    for (arm, (a, b)), (difference, low, high, p), ph, pe in zip(measured.items(), tests, p_holm,
                                                                 p_equivalent):
        sd = float(np.std(a - b, ddof=1))
        mde = (float(TTestPower().solve_power(effect_size=None, nobs=len(a), alpha=alpha,
                                              power=POWER)) * sd) if sd > 0 else None
        comparisons.append(Comparison(
            arm, f"{arm} (raw G)", len(a), len(b), difference, low, high, p, ph, pe, mde,
            _verdict(difference, ph, pe, alpha, margin, mde, lower_is_better)))
    return comparisons


def _detectable(se, df, alpha, power=POWER):
    """The difference a two-sided t test with this standard error and df detects with `power`
    (from the noncentral t distribution)."""
    from scipy.optimize import brentq
    t = _libraries().t
    nct = _libraries().nct
    critical = t.ppf(1 - alpha / 2, df)

    def shortfall(delta):
        noncentrality = delta / se
        return nct.sf(critical, df, noncentrality) + nct.cdf(-critical, df, noncentrality) - power
    # At (critical + 4) standard errors the power is above 0.99, and nct stays finite there.
    return float(brentq(shortfall, 0.0, se * (critical + 4)))


def compare_blocked(observations, reference, alpha=0.05, margin=5.0, lower_is_better=True,
                    per_comparison=False):
    """Comparisons of each arm against `reference` from [(arm, block, value)], the block (the
    machine a run trained on) a fixed effect: the additive least-squares model value ~ arm + block
    (statsmodels). Each arm's coefficient is its difference from the reference within blocks,
    with its t interval and p (Holm over the arms), two one-sided t tests within the margin, and
    the difference its standard error detects. Arms with fewer than 2 values are left out.

    The model's one residual variance is pooled over every arm it is fitted to. With
    `per_comparison`, each comparison fits it to the reference's and that arm's runs alone, so
    that one erratic arm does not widen every other arm's interval (the variances are then
    assumed equal within a pair only)."""
    import pandas as pd
    frame = pd.DataFrame(observations, columns=["arm", "block", "value"]).astype(
        {"arm": str, "block": str, "value": float})
    counts = frame["arm"].value_counts()
    arms = [arm for arm in dict.fromkeys(frame["arm"]) if counts[arm] >= 2]
    frame = frame[frame["arm"].isin(arms)]
    if reference not in arms or len(arms) < 2:
        return []
    others = [arm for arm in arms if arm != reference]
    if per_comparison:
        fits = {arm: _blocked_fit(frame[frame["arm"].isin([reference, arm])], reference)
                for arm in others}
    else:
        fits = dict.fromkeys(others, _blocked_fit(frame, reference))
    tests = [(arm,) + _coefficient(fit, reference, arm, alpha, margin)
             for arm, fit in fits.items() if fit is not None]
    if not tests:
        return []
    p_holm, p_equivalent = holm([x[4] for x in tests]), holm([x[5] for x in tests])
    return [Comparison(arm, reference, int(counts[arm]), int(counts[reference]), estimate, low,
                       high, p, ph, pe, mde,
                       _verdict(estimate, ph, pe, alpha, margin, mde, lower_is_better))
            for (arm, estimate, low, high, p, _, mde), ph, pe in zip(tests, p_holm, p_equivalent)]


def _blocked_fit(frame, reference):
    """The fitted model value ~ arm + block (no block term with one block), or None when it
    leaves no residual degree of freedom."""
    from statsmodels.formula.api import ols
    blocks = " + C(block)" if frame["block"].nunique() > 1 else ""
    fit = ols(f"value ~ C(arm, Treatment(reference={reference!r})){blocks}", frame).fit()
    return fit if fit.df_resid >= 1 else None


def _coefficient(fit, reference, arm, alpha, margin):
    """(difference, low, high, p, p of equivalence, detectable difference) of `arm`'s
    coefficient in `fit`."""
    t = _libraries().t
    name = f"C(arm, Treatment(reference={reference!r}))[T.{arm}]"
    estimate, se = float(fit.params[name]), float(fit.bse[name])
    low, high = (float(v) for v in fit.conf_int(alpha).loc[name])
    p = float(2 * t.sf(abs(estimate) / se, fit.df_resid))
    p_equivalent = float(max(t.sf((estimate + margin) / se, fit.df_resid),
                             t.cdf((estimate - margin) / se, fit.df_resid)))
    return estimate, low, high, p, p_equivalent, _detectable(se, fit.df_resid, alpha)


def _term(name):
    return f'C(Q("{name}"))'


def factorial_anova(rows, factors, metric):
    """For rows (dicts holding each factor's level and the metric): the ANOVA table of the full
    factorial model (type II sums of squares) as [(term, df, F, p)], and each level's effect
    against its factor's first level in the additive model as [(factor, level, effect, low,
    high)]. None when the design has too few rows to fit."""
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm
    _libraries()
    frame = pd.DataFrame([{**{f: str(row[f]) for f in factors}, "value": float(row[metric])}
                          for row in rows])
    full = "value ~ " + " * ".join(_term(f) for f in factors)
    levels = {f: list(dict.fromkeys(str(row[f]) for row in rows)) for f in factors}
    cells = math.prod(len(v) for v in levels.values())
    if len(frame) <= cells or any(len(v) < 2 for v in levels.values()):
        return None
    table = anova_lm(ols(full, frame).fit(), typ=2)
    anova = [(_pretty(term), int(row["df"]), float(row["F"]), float(row["PR(>F)"]))
             for term, row in table.iterrows() if term != "Residual"]
    additive = ols("value ~ " + " + ".join(
        f'C(Q("{f}"), Treatment(reference="{levels[f][0]}"))' for f in factors), frame).fit()
    intervals = additive.conf_int()
    effects = []
    for name, value in additive.params.items():
        match = re.match(r'C\(Q\("(.+?)"\).*\)\[T\.(.+)\]$', name)
        if match:
            low, high = intervals.loc[name]
            effects.append((match.group(1), match.group(2), float(value), float(low),
                            float(high)))
    return anova, effects


def _pretty(term):
    """C(Q("d_update")):C(Q("seed")) -> d_update × seed."""
    return " × ".join(re.findall(r'Q\("(.+?)"\)', term)) or term
