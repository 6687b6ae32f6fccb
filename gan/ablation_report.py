"""The results of an ablation study (`gan.ablate`), written to its root:

- results.csv: one row per run: every swept setting, the seed, the status, the final and best FID,
  the final KID, classifier score, precision, recall and classes covered, steps, wall time, steps/s;
- results.md: one row per configuration, mean +- sd over seeds with a 95% confidence interval and
  n, sorted by FID, and in words which differences lie within seed noise;
- mosaic.png: one row per configuration (in the table's order), samples of the first seed's final
  generator from one fixed noise batch;
- fid.png: FID against steps per configuration, the mean over seeds with a min-max band (needs
  matplotlib: `pip install -e .[plots]`);
- TensorBoard HParams: the study's configuration at the root, each run's values in its logdir, so
  `tensorboard --logdir=<root>` compares the runs in the HParams dashboard.
"""

import csv
import io
import json
import math
import os

import numpy as np
import tensorflow as tf

from gan import ablate, events, images, latent, rundir

# Final metrics per run, as gan.train's evaluations log them (eval/<name>).
METRICS = ("fid", "kid", "classifier_score", "precision", "recall", "classes_covered")
CONDITIONAL_METRICS = ("conditional_accuracy", "intra_fid")
MOSAIC_SAMPLES = 10


# --- statistics ----------------------------------------------------------------------------------

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


# --- collecting ----------------------------------------------------------------------------------

def run_row(study, run, root):
    """The CSV row of one run, from its status file and its TensorBoard events (read once: a
    long run's events are large). row["scalars"] keeps every series for the curve plots."""
    run_dir = os.path.join(root, run.name)
    status = ablate.read_status(run_dir)
    state = ablate.current_state(run_dir) if os.path.isdir(run_dir) else "not run"
    steps = status.get("step", 0)
    if state in ("running", "interrupted") and isinstance(run, ablate.PlannedRun):
        steps = ablate.checkpoint_step(run_dir)  # how far it got: its last checkpoint
    row = {"run": run.name, "config": run.config_name, **dict(run.choices), "seed": run.seed,
           "status": state, "reason": status.get("reason", ""), "steps": steps,
           "wall_seconds": round(status["wall_seconds"], 1) if "wall_seconds" in status else ""}
    if isinstance(run, ablate.PlannedReference):
        return dict(row, scalars={}, **reference_metrics(run_dir))
    scalars = events.read_scalars(run_dir) if os.path.isdir(run_dir) else {}
    row["scalars"] = scalars
    fid = scalars.get("eval/fid", [])
    row["fid_curve"] = fid
    final_step = fid[-1][0] if fid else None
    row["fid_final"] = fid[-1][1] if fid else ""
    row["fid_best"] = min(v for _, v in fid) if fid else ""
    row["eval_step"] = final_step if fid else ""
    for name in METRICS[1:] + CONDITIONAL_METRICS:
        series = dict(scalars.get(f"eval/{name}", []))
        row[name] = series.get(final_step, "") if fid else ""
    speed = scalars.get("perf/steps_per_sec", [])
    row["steps_per_sec"] = round(float(np.mean([v for _, v in speed])), 2) if speed else ""
    return row


def reference_metrics(run_dir):
    """A reference's metrics, from gan.evaluate --samples' JSON (blank before it exists)."""
    names = ("fid_final", "fid_best", "eval_step", "fid_curve", "steps_per_sec") + METRICS[1:] \
        + CONDITIONAL_METRICS
    row = {name: "" for name in names}
    row["fid_curve"] = []
    try:
        with open(os.path.join(run_dir, ablate.REFERENCE_EVAL)) as f:
            results = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return row
    if not isinstance(results, dict) or not _is_number(results.get("fid")):
        return row  # not gan.evaluate's JSON: the reference counts as not measured
    row["fid_final"] = row["fid_best"] = results["fid"]
    for name in METRICS[1:]:
        row[name] = results[name] if _is_number(results.get(name)) else ""
    return row


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def csv_columns(study, rows):
    columns = ["run", "config", *[axis.name for axis in study.axes], "seed", "status", "reason",
               "steps", "eval_step", "fid_final", "fid_best", *METRICS[1:]]
    columns += [m for m in CONDITIONAL_METRICS if any(row.get(m) != "" for row in rows)]
    return columns + ["wall_seconds", "steps_per_sec"]


def write_csv(path, study, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, csv_columns(study, rows), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    images.write_atomically(path, buffer.getvalue().encode())


def group_by_config(rows):
    """{config name: [rows of its runs]}, in the study's order."""
    groups = {}
    for row in rows:
        groups.setdefault(row["config"], []).append(row)
    return groups


def _finished_values(group, name):
    return [row[name] for row in group if row["status"] == "done" and row[name] != ""]


def config_summaries(rows):
    """One summary per configuration, sorted by mean final FID (those without any FID last)."""
    summaries = []
    for config_name, group in group_by_config(rows).items():
        fids = _finished_values(group, "fid_final")
        summary = {"config": config_name, "runs": len(group), "fids": fids,
                   "states": [row["status"] for row in group]}
        for name in ("fid_final", "fid_best") + METRICS[1:] + CONDITIONAL_METRICS + (
                "steps_per_sec",):
            values = _finished_values(group, name)
            summary[name] = mean_interval(values) if values else None
        summaries.append(summary)
    return sorted(summaries, key=lambda s: (s["fid_final"] is None,
                                            s["fid_final"][0] if s["fid_final"] else 0))


# --- results.md -----------------------------------------------------------------------------------

def _mean_sd(summary_value, digits):
    if summary_value is None:
        return "–"
    mean, sd, _ = summary_value
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _interval(summary_value, digits=1):
    if summary_value is None or summary_value[2] is None:
        return "–"
    mean, _, half = summary_value
    return f"[{mean - half:.{digits}f}, {mean + half:.{digits}f}]"


def _states(summary):
    counts = {}
    for state in summary["states"]:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def noise_statements(summaries):
    """Sentences comparing every configuration with the best one, by Welch's 95% interval of the
    difference in mean final FID."""
    measured = [s for s in summaries if s["fid_final"] is not None]
    if not measured:
        return ["No run has a final FID yet."]
    best = next((s for s in measured if len(s["fids"]) >= 2), None)
    if best is None:
        return ["Every configuration has a single finished seed, so seed noise cannot be "
                "estimated: no difference below can be called real."]
    lines = [f"Best mean final FID over at least 2 finished seeds: **{best['config']}**, "
             f"{_mean_sd(best['fid_final'], 1)} (n = {len(best['fids'])}). Each other "
             "configuration against it (difference of means, Welch's 95% confidence interval):"]
    for summary in measured:
        if summary is best:
            continue
        if len(summary["fids"]) < 2:
            lines.append(f"- {summary['config']}: n = {len(summary['fids'])} (FID "
                         f"{summary['fids'][0]:.1f}), no seed-noise estimate.")
            continue
        difference, lo, hi = welch_interval(summary["fids"], best["fids"])
        verdict = ("within seed noise of the best" if lo <= 0 <= hi
                   else "worse than the best beyond seed noise")
        lines.append(f"- {summary['config']}: {difference:+.1f} [{lo:+.1f}, {hi:+.1f}], "
                     f"{verdict}.")
    unmeasured = [s["config"] for s in summaries if s["fid_final"] is None]
    if unmeasured:
        lines.append(f"- No finished run with a FID: {', '.join(unmeasured)}.")
    lines.append("")
    lines.append("With many configurations some intervals exclude zero by chance (about 1 in "
                 "20 at 95%); read a difference as real when it is large against the sd too.")
    return lines


def results_markdown(study, rows, summaries, command):
    conditional = any(s["conditional_accuracy"] is not None for s in summaries)
    axes = "; ".join(f"{axis.name} ∈ {{{', '.join(label for label, _ in axis.choices)}}}"
                     for axis in study.axes) or "none"
    settings = ", ".join(f"{k}={v}" for k, v in study.settings.items()) or "none"
    finished = [row for row in rows if row["status"] == "done"]
    wall = sum(row["wall_seconds"] for row in rows if row["wall_seconds"] != "")
    lines = [f"# Study `{study.name}`", ""]
    if study.description:
        lines += [study.description, ""]
    lines += [
        f"- Command: `{command}`",
        f"- Base flagfile: `{os.path.relpath(study.base)}`; shared settings: {settings}",
        f"- Axes: {axes}; seeds: {', '.join(map(str, study.seeds))}",
        f"- Runs: {len(rows)}, of which {len(finished)} finished; training wall time summed over "
        f"runs: {wall / 60:.1f} min",
        "",
        "Final metrics at each run's last evaluation; mean ± sd over the finished seeds, 95% "
        "confidence interval of the mean FID (Student's t), sorted by mean final FID. "
        "Samples: `mosaic.png` (rows in this order); FID over training: `fid.png`.",
        "",
    ]
    header = ["config", "n", "FID", "FID 95% CI", "best FID", "KID", "score", "precision",
              "recall", "classes"]
    if conditional:
        header += ["cond. acc.", "intra-FID"]
    header += ["steps/s", "runs"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for s in summaries:
        cells = [f"`{s['config']}`", str(len(s["fids"])), _mean_sd(s["fid_final"], 1),
                 _interval(s["fid_final"]), _mean_sd(s["fid_best"], 1), _mean_sd(s["kid"], 2),
                 _mean_sd(s["classifier_score"], 2), _mean_sd(s["precision"], 3),
                 _mean_sd(s["recall"], 3), _mean_sd(s["classes_covered"], 1)]
        if conditional:
            cells += [_mean_sd(s["conditional_accuracy"], 3), _mean_sd(s["intra_fid"], 1)]
        cells += [_mean_sd(s["steps_per_sec"], 1), _states(s)]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [row for row in rows if row["status"] not in ("done", "not run")]
    if failures:
        lines += ["", "Runs that did not finish:"]
        lines += [f"- `{row['run']}`: {row['status']} at step {row['steps']}"
                  + (f": {row['reason']}" if row["reason"] else "") for row in failures]
    lines += ["", "## Within seed noise?", ""] + noise_statements(summaries)
    if study.findings:
        lines += ["", "## Findings", "", "*Written by hand from the numbers above "
                  "(`[report] findings` in the study file); the tables are regenerated.*", "",
                  study.findings]
    return "\n".join(lines) + "\n"


# --- pictures --------------------------------------------------------------------------------------

def write_mosaic(path, root, summaries, runs):
    """One row per configuration: MOSAIC_SAMPLES samples of its first finished seed's generator
    (its moving average when it keeps one) from the same fixed noise; a reference's row is its
    first samples. Returns the configurations drawn, and a line for each finished run that
    could not be drawn (its checkpoints or samples gone or damaged): the mosaic goes on without
    it."""
    by_config = {}
    for run in sorted(runs, key=lambda r: r.seed):
        run_dir = os.path.join(root, run.name)
        if ablate.current_state(run_dir) == "done":
            by_config.setdefault(run.config_name, run_dir)
    drawn, rows, missing = [], [], []
    for summary in summaries:
        run_dir = by_config.get(summary["config"])
        if run_dir is None:
            continue
        reference_samples = os.path.join(run_dir, ablate.REFERENCE_SAMPLES)
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


def write_curve_plot(path, title, ylabel, curves_by_config, order, max_step=0, log_y=True):
    """One line per configuration (the mean over its runs, on the steps they share) with a
    min-max band; curves_by_config is {config: [{step: value} per run]}. Returns False when
    matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    images.write_atomically(path, buffer.getvalue())
    return True


def plot_file_name(tag):
    return tag.split("/")[-1] + ".png"


# --- TensorBoard HParams --------------------------------------------------------------------------

def _hparams(study):
    from tensorboard.plugins.hparams import api as hp
    result = []
    for axis in study.axes:
        values = [axis.hparam_value(label) for label, _ in axis.choices]
        result.append(hp.HParam(axis.name, hp.Discrete(values)))
    result.append(hp.HParam("seed", hp.Discrete(list(study.seeds))))
    return result


def write_hparams_config(root, study):
    """The study's HParams configuration, in an event file at the root. An earlier one of the
    report's own (an event file of HParams summaries alone) is replaced; any other event file
    there is left as it is."""
    from tensorboard.plugins.hparams import api as hp
    folder = root
    for path in events.event_files(folder):
        if events.holds_only(path, "hparams"):
            os.remove(path)
    metrics = [hp.Metric(f"eval/{name}", display_name=name) for name in METRICS
               + CONDITIONAL_METRICS]
    metrics.append(hp.Metric("perf/steps_per_sec", display_name="steps/s"))
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        hp.hparams_config(hparams=_hparams(study), metrics=metrics)
    writer.close()
    return folder


def write_run_hparams(run_dir, run):
    """The run's values of the swept settings, in its own logdir (step 0, which a resumed
    training never purges)."""
    from tensorboard.plugins.hparams import api as hp
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default(step=0):
        hp.hparams({**dict(run.hparams), "seed": run.seed}, trial_id=run.name)
    writer.close()


# --- everything ----------------------------------------------------------------------------------

def write_report(study, root, runs, command):
    """Writes every result file; returns the lines to print."""
    rows = [run_row(study, run, root) for run in runs]
    summaries = config_summaries(rows)
    lines = []
    write_csv(os.path.join(root, "results.csv"), study, rows)
    lines.append(f"wrote {os.path.join(root, 'results.csv')} ({len(rows)} runs)")
    markdown = results_markdown(study, rows, summaries, command)
    images.write_atomically(os.path.join(root, "results.md"), markdown.encode())
    lines.append(f"wrote {os.path.join(root, 'results.md')}")
    drawn, missing = write_mosaic(os.path.join(root, "mosaic.png"), root, summaries, runs)
    if drawn:
        lines.append(f"wrote {os.path.join(root, 'mosaic.png')} (rows: {', '.join(drawn)})")
    lines += missing
    order = [s["config"] for s in summaries]
    finished = [row for row in rows if row["status"] == "done"]
    plots = {"fid.png": (f"{study.name}: FID during training, mean over seeds, band = min-max",
                         "FID (classifier features)",
                         {c: [dict(r["fid_curve"]) for r in finished if r["config"] == c]
                          for c in order}, 0)}
    for tag in study.curves:
        by_config = {c: [dict(r["scalars"].get(tag, [])) for r in finished if r["config"] == c]
                     for c in order}
        plots[plot_file_name(tag)] = (f"{study.name}: {tag}, mean over seeds, band = min-max",
                                      tag, by_config, study.curve_max_step)
    for name, (title, ylabel, by_config, max_step) in plots.items():
        if write_curve_plot(os.path.join(root, name), title, ylabel, by_config, order, max_step):
            lines.append(f"wrote {os.path.join(root, name)}")
        else:
            lines.append(f"{name} skipped: matplotlib is not installed (pip install -e .[plots])")
            break
    write_hparams_config(root, study)
    lines.append(f"wrote the HParams configuration; compare the runs with "
                 f"`tensorboard --logdir={root}` (HPARAMS tab)")
    return lines
