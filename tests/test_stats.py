"""A study's statistics against their formulas, computed here from NumPy and the distributions'
own quantiles (scipy.stats.t, f, nct), not from the functions the code calls."""

import math

import numpy as np
import pytest

stats = pytest.importorskip("scipy.stats", reason="the study analysis needs scipy")
pytest.importorskip("statsmodels", reason="the study analysis needs statsmodels")

from gan.study import stats as study_stats  # noqa: E402

A = np.array([50.0, 58.0, 45.0, 52.0])
B = np.array([61.0, 66.0, 70.0, 59.0, 64.0])


def welch_parts(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return a.mean() - b.mean(), math.sqrt(va + vb), df


def test_mean_interval_is_the_t_interval():
    mean, sd, half = study_stats.mean_interval([50.0, 58.0, 45.0])
    assert sd == pytest.approx(np.std([50.0, 58.0, 45.0], ddof=1))
    # t(0.975, 2) = 4.303, the value every statistics table prints.
    assert half == pytest.approx(4.303 * sd / math.sqrt(3), rel=1e-4)
    assert study_stats.mean_interval([3.0])[1:] == (None, None)


def test_welch_difference_interval_and_p_value():
    difference, se, df = welch_parts(A, B)
    got = study_stats.welch(A, B, alpha=0.05)
    half = stats.t.ppf(0.975, df) * se
    assert got[:3] == pytest.approx((difference, difference - half, difference + half))
    assert got[3] == pytest.approx(2 * stats.t.sf(abs(difference) / se, df))
    assert study_stats.welch([1.0, 1.0], [1.0, 1.0])[3] == 1.0


def test_holm_step_down():
    p = [0.01, 0.04, 0.03, 0.005]
    order = np.argsort(p)
    expected = np.empty(4)
    running = 0.0
    for rank, index in enumerate(order):  # Holm 1979: (m - rank) p, made monotone, capped at 1
        running = max(running, min(1.0, (4 - rank) * p[index]))
        expected[index] = running
    assert study_stats.holm(p) == pytest.approx(list(expected))


def test_equivalence_is_the_larger_of_two_one_sided_welch_tests():
    difference, se, df = welch_parts(A, B)
    margin = 20.0
    lower = stats.t.sf((difference + margin) / se, df)  # H0: difference <= -margin
    upper = stats.t.cdf((difference - margin) / se, df)  # H0: difference >= +margin
    assert study_stats.equivalence_p(A, B, margin) == pytest.approx(max(lower, upper))


def test_minimum_detectable_effect_has_the_declared_power():
    sd, n_a, n_b, alpha = 5.8, 3, 3, 0.05
    effect = study_stats.minimum_detectable_effect(sd, n_a, n_b, alpha)
    df = n_a + n_b - 2
    noncentrality = (effect / sd) / math.sqrt(1 / n_a + 1 / n_b)
    critical = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df,
                                                                        noncentrality)
    assert power == pytest.approx(0.8, abs=1e-3)
    # The figure: at n = 3 per arm and sd 5.8 about 18 FID, about 8 at n = 10.
    assert 15 < effect < 20
    assert 7 < study_stats.minimum_detectable_effect(sd, 10, 10, alpha) < 9


def test_pooled_sd():
    groups = [A, B, [7.0]]
    squares = ((A - A.mean()) ** 2).sum() + ((B - B.mean()) ** 2).sum()
    assert study_stats.pooled_sd(groups) == pytest.approx(math.sqrt(squares / (3 + 4)))


def test_verdicts_against_a_declared_baseline():
    rng = np.random.default_rng(0)
    arms = {"base": list(60 + rng.normal(0, 1, 12)), "worse": list(70 + rng.normal(0, 1, 12)),
            "same": list(60.2 + rng.normal(0, 1, 12)), "few": [55.0, 66.0]}
    comparisons = {c.arm: c for c in study_stats.compare(arms, "base", 0.05, 2.0)}
    assert comparisons["worse"].verdict == "worse" and comparisons["worse"].difference > 8
    assert comparisons["same"].verdict == "equivalent within ±2"
    assert comparisons["few"].verdict.startswith("undecided — this n detects about ")
    # Holm over the three comparisons: each adjusted p at least the raw one.
    assert all(c.p_holm >= c.p for c in comparisons.values())
    assert all(c.reference == "base" for c in comparisons.values())
    pairs = study_stats.compare(arms, None)
    assert len(pairs) == 6


def test_factorial_anova_of_a_balanced_two_by_two_design():
    rng = np.random.default_rng(1)
    rows = []
    for a in ("split", "joint"):
        for b in ("train", "inference"):
            for _ in range(3):
                value = 50 + (8 if a == "joint" else 0) + (5 if b == "inference" else 0)
                rows.append({"update": a, "fakes": b, "fid": value + rng.normal(0, 1.5)})
    anova, effects = study_stats.factorial_anova(rows, ["update", "fakes"], "fid")
    values = np.array([r["fid"] for r in rows]).reshape(2, 2, 3)
    grand = values.mean()
    ss_a = 6 * ((values.mean(axis=(1, 2)) - grand) ** 2).sum()
    ss_b = 6 * ((values.mean(axis=(0, 2)) - grand) ** 2).sum()
    cells = values.mean(axis=2)
    ss_error = ((values - cells[..., None]) ** 2).sum()
    ss_ab = 3 * ((cells - grand) ** 2).sum() - ss_a - ss_b
    ms_error = ss_error / 8
    table = {term: (df, f, p) for term, df, f, p in anova}
    for term, ss in (("update", ss_a), ("fakes", ss_b), ("update × fakes", ss_ab)):
        df, f, p = table[term]
        assert df == 1 and f == pytest.approx(ss / ms_error) and p == pytest.approx(
            stats.f.sf(ss / ms_error, 1, 8))
    # The additive model's effects: in a balanced design, the difference of the level means.
    effect = {(factor, level): (value, low, high) for factor, level, value, low, high in effects}
    joint, low, high = effect[("update", "joint")]
    assert joint == pytest.approx(values[1].mean() - values[0].mean())
    assert low < joint < high and 4 < joint < 12
    assert study_stats.factorial_anova(rows[:4], ["update", "fakes"], "fid") is None


def test_paired_comparison_is_the_paired_t_test_of_the_differences():
    """Two generators of the same runs: the t interval, p, two one-sided tests and detectable
    effect of the per-run differences, from the t and noncentral t distributions."""
    raw = np.array([50.0, 58.0, 45.0, 52.0, 61.0])
    averaged = raw - np.array([3.0, 5.0, 2.0, 6.0, 4.0])
    d = averaged - raw
    n, margin = len(d), 10.0
    se, df = d.std(ddof=1) / math.sqrt(n), n - 1
    (got,) = study_stats.compare_paired({"ema": (averaged, raw)}, alpha=0.05, margin=margin)
    half = stats.t.ppf(0.975, df) * se
    assert (got.difference, got.low, got.high) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))
    assert got.p == pytest.approx(2 * stats.t.sf(abs(d.mean()) / se, df))
    lower = stats.t.sf((d.mean() + margin) / se, df)
    upper = stats.t.cdf((d.mean() - margin) / se, df)
    assert got.p_equivalent == pytest.approx(max(lower, upper))
    noncentrality = got.mde / d.std(ddof=1) * math.sqrt(n)
    critical = stats.t.ppf(0.975, df)
    power = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df,
                                                                        noncentrality)
    assert power == pytest.approx(0.8, abs=1e-3)
    # Lower FID by 4 on every run, against run-to-run spread of 6: paired, it is decided.
    assert got.verdict == "better" and got.reference == "ema (raw G)"
    # Unpaired, the same numbers decide nothing: the pairing is what the design buys.
    assert study_stats.compare({"ema": averaged, "raw": raw}, "raw")[0].verdict.startswith(
        "undecided")


def two_arm_least_squares(observations, arm):
    """NumPy's least squares of value ~ 1 + [arm] + [machine B] over [(arm, machine, value)]
    with machines A and B: (the arm's coefficient, its standard error, residual df)."""
    design = np.array([[1.0, a == arm, machine == "B"] for a, machine, _ in observations])
    values = np.array([value for *_, value in observations])
    beta, rss, *_ = np.linalg.lstsq(design, values, rcond=None)
    df = len(values) - 3
    return beta[1], math.sqrt(rss[0] / df * np.linalg.inv(design.T @ design)[1, 1]), df


def test_blocked_comparison_is_the_least_squares_contrast_within_machines():
    """Runs of two machines whose FIDs differ by 40: with the machine a block, the arm's
    difference is the coefficient of the additive model (computed here by NumPy's least squares),
    and a 4-FID gain is decided that the unblocked Welch test cannot see."""
    rng = np.random.default_rng(0)
    observations = []
    for machine, offset in (("A", 0.0), ("B", 40.0)):
        for _ in range(5):
            noise = rng.normal(0.0, 1.0, 2)
            observations += [("base", machine, 50.0 + offset + noise[0]),
                             ("arm", machine, 46.0 + offset + noise[1])]
    (got,) = study_stats.compare_blocked(observations, "base", alpha=0.05, margin=2.0)
    difference, se, df = two_arm_least_squares(observations, "arm")
    half = stats.t.ppf(0.975, df) * se
    assert (got.difference, got.low, got.high) == pytest.approx(
        (difference, difference - half, difference + half))
    assert got.p == pytest.approx(2 * stats.t.sf(abs(difference) / se, df))
    critical = stats.t.ppf(0.975, df)
    power = stats.nct.sf(critical, df, got.mde / se) + stats.nct.cdf(-critical, df, got.mde / se)
    assert power == pytest.approx(0.8, abs=1e-3)
    assert got.verdict == "better" and (got.n, got.n_reference) == (10, 10)
    arms = {"base": [v for a, _, v in observations if a == "base"],
            "arm": [v for a, _, v in observations if a == "arm"]}
    assert study_stats.compare(arms, "base")[0].verdict.startswith("undecided")


def test_per_comparison_fits_each_arm_with_the_baseline_alone():
    """An erratic arm (sd 40) beside a steady one (sd 1, 3 FID better than the baseline): the
    pooled model lends the erratic arm's variance to the steady arm's interval and decides
    nothing; fitted per comparison, the steady arm's difference is the two-arm model's (NumPy's
    least squares on its and the baseline's runs alone) and is decided."""
    rng = np.random.default_rng(1)
    observations = []
    for machine, offset in (("A", 0.0), ("B", 20.0)):
        for _ in range(5):
            observations += [("base", machine, 30.0 + offset + rng.normal(0.0, 1.0)),
                             ("steady", machine, 27.0 + offset + rng.normal(0.0, 1.0)),
                             ("erratic", machine, 60.0 + offset + rng.normal(0.0, 40.0))]
    pooled = {c.arm: c for c in study_stats.compare_blocked(observations, "base", margin=2.0)}
    split = {c.arm: c for c in study_stats.compare_blocked(observations, "base", margin=2.0,
                                                           per_comparison=True)}
    assert pooled["steady"].verdict.startswith("undecided")
    assert split["steady"].verdict == "better"
    difference, se, df = two_arm_least_squares(
        [o for o in observations if o[0] in ("base", "steady")], "steady")
    half = stats.t.ppf(0.975, df) * se
    got = split["steady"]
    assert (got.difference, got.low, got.high) == pytest.approx(
        (difference, difference - half, difference + half))
    assert got.p == pytest.approx(2 * stats.t.sf(abs(difference) / se, df))
    # Holm over both comparisons, each with its own model's p (statsmodels' multipletests).
    from statsmodels.stats.multitest import multipletests
    adjusted = multipletests([split["steady"].p, split["erratic"].p], method="holm")[1]
    assert (got.p_holm, split["erratic"].p_holm) == pytest.approx(tuple(adjusted))
    # The estimates themselves agree: the design is balanced within machines.
    assert pooled["steady"].difference == pytest.approx(got.difference)
