"""A study report's pictures: the mosaic of samples and the curves over training."""

import io
import os

import numpy as np
import tensorflow as tf

from gan import files, images, latent, rundir
from gan.study.status import REFERENCE_SAMPLES, current_state


MOSAIC_SAMPLES = 10


def write_mosaic(path, root, summaries, runs):
    """One row per configuration: MOSAIC_SAMPLES samples of its first finished seed's generator
    (its moving average when it keeps one) from the same fixed noise; a reference's row is its
    first samples. Returns the configurations drawn, and a line for each finished run that
    could not be drawn (its checkpoints or samples gone or damaged): the mosaic goes on without
    it."""
    by_config = {}
    for run in sorted(runs, key=lambda r: r.seed):
        run_dir = os.path.join(root, run.name)
        if current_state(run_dir) == "done":
            by_config.setdefault(run.config_name, run_dir)
    drawn, rows, missing = [], [], []
    for summary in summaries:
        run_dir = by_config.get(summary["config"])
        if run_dir is None:
            continue
        reference_samples = os.path.join(run_dir, REFERENCE_SAMPLES)
        if os.path.isfile(reference_samples):
            try:
                samples = np.load(reference_samples, allow_pickle=False)[:MOSAIC_SAMPLES]
            except (OSError, ValueError, EOFError) as e:
                missing.append(f"mosaic.png: no row for {summary['config']}: {reference_samples} "
                               f"cannot be read ({str(e).splitlines()[0][:120]})")
                continue
            if samples.dtype != np.uint8 or samples.shape[1:] != (28, 28):
                missing.append(f"mosaic.png: no row for {summary['config']}: {reference_samples} "
                               f"holds {samples.dtype} {samples.shape}, not uint8 [N, 28, 28]")
                continue
            rows.append(samples[..., None])
            drawn.append(summary["config"])
            continue
        try:
            _, state, _ = rundir.load_run(run_dir)
        except (OSError, rundir.RunError) as e:
            missing.append(f"mosaic.png: no row for {summary['config']}: {e}")
            continue
        generator = state.sampling_generator
        noise = latent.fixed(MOSAIC_SAMPLES, generator.latent_dim,
                             generator.latent_distribution, seed=latent.MOSAIC_SEED)
        labels = (tf.constant(np.arange(MOSAIC_SAMPLES, dtype=np.int32) % generator.num_classes)
                  if generator.num_classes else None)
        rows.append(images.to_uint8(generator(noise, training=False, labels=labels).numpy()))
        drawn.append(summary["config"])
    if rows:
        grid = images.make_grid(np.concatenate(rows), len(rows), MOSAIC_SAMPLES)
        images.write_png(path, grid)
    return drawn, missing


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


def write_curve_plot(path, title, ylabel, curves_by_config, order, max_step=0, log_y=True):
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
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(plt, figure, path)
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

