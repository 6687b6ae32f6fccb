"""A study report's pictures: the mosaic of samples, the curves over training and the per-seed
values."""

import io

import numpy as np

from gan import files, images


def write_mosaic(path, samples_by_config, order):
    """One row per configuration in `order` that has samples ({config: uint8 [N, H, W, C]});
    returns the configurations drawn."""
    drawn = [name for name in order if samples_by_config.get(name) is not None]
    if drawn:
        grid = np.concatenate([samples_by_config[name] for name in drawn])
        images.write_png(path, images.make_grid(grid, len(drawn), len(grid) // len(drawn)))
    return drawn


def _pyplot():
    """matplotlib's pyplot on its file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return None
    return pyplot


def _save(plt, figure, path):
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    files.write_atomically(path, buffer.getvalue())


def _finish(plt, figure, ax, path, title, xlabel, ylabel):
    """Labels, grid and legend of a line plot, then its PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(plt, figure, path)


def write_curve_plot(path, title, ylabel, curves_by_config, order, max_step=0, log_y=True,
                     xlabel="step"):
    """One line per configuration (the mean over its runs, on the steps they share) with a
    min-max band; curves_by_config is {config: [{step: value} per run]}. Returns False when
    matplotlib is not installed."""
    plt = _pyplot()
    if plt is None:
        return False
    figure, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for config_name in order:
        curves = [c for c in curves_by_config.get(config_name, []) if c]
        if not curves:
            continue
        steps = sorted(s for s in set.intersection(*(set(c) for c in curves))
                       if not max_step or s <= max_step)
        if not steps:
            continue
        values = np.array([[c[s] for s in steps] for c in curves])
        line, = ax.plot(steps, values.mean(axis=0), marker="o" if len(steps) < 30 else None,
                        markersize=3, label=f"{config_name} (n={len(curves)})")
        if len(curves) > 1:
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0),
                            color=line.get_color(), alpha=0.15)
    if log_y:
        ax.set_yscale("log")
    _finish(plt, figure, ax, path, title, xlabel, ylabel)
    return True


def write_strip_plot(path, title, ylabel, values_by_config, order):
    """Every run's value as a dot, one column per configuration (in `order`), with the mean as a
    bar: the per-seed values the analysis compares. Returns False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    figure, ax = plt.subplots(figsize=(max(4, 0.9 * len(order) + 2), 4.5), dpi=100)
    for x, config_name in enumerate(order):
        values = values_by_config.get(config_name, [])
        if not values:
            continue
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
        ax.plot(x + np.asarray(jitter), values, "o", markersize=4, alpha=0.8)
        ax.hlines(np.mean(values), x - 0.25, x + 0.25, color="black")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    _save(plt, figure, path)
    return True



def write_trace_plot(path, title, traces, order):
    """The tuning trace: per arm, the best FID of the trials so far against the trial number.
    Returns False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for arm in order:
        points = traces.get(arm, [])
        if points:
            ax.step(*zip(*points), where="post", marker="o", markersize=3, label=arm)
    _finish(plt, figure, ax, path, title, "trial", "best tuning FID so far")
    return True
