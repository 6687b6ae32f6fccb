"""The statistics of a study's report: confidence intervals over seeds."""

import math

import numpy as np


def _t_cdf(x, df):
    """P(T <= x) for Student's t with df degrees of freedom, x >= 0: 1/2 plus Simpson's rule
    on the density."""
    if x <= 0:
        return 0.5
    n = 4000  # even
    t = np.linspace(0.0, x, n + 1)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df))
    weights = np.ones(n + 1)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return 0.5 + float(np.sum(weights * density)) * (x / n) / 3


def t_quantile(p, df):
    """The p-quantile (p >= 0.5) of Student's t with df > 0 degrees of freedom (df may be
    fractional, as Welch's is), by bisection on the CDF."""
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_interval(values):
    """(mean, sample sd, half-width of the 95% t confidence interval of the mean); sd and the
    half-width are None for fewer than 2 values."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), None, None
    sd = float(values.std(ddof=1))
    return float(values.mean()), sd, t_quantile(0.975, len(values) - 1) * sd / math.sqrt(
        len(values))


def welch_interval(a, b):
    """(mean(a) - mean(b), and the 95% confidence interval of that difference by Welch's t), for
    samples of at least 2 values each."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return difference, difference, difference
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.975, df) * se
    return difference, difference - half, difference + half
