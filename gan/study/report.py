"""The results of a study, written to its root:

- results.csv: one row per run: every swept setting, the seed, the status, the final and best FID,
  every reported metric of the final evaluation (`evaluator.METRICS`), steps, wall time, steps/s;
- results.md: one row per configuration, mean +- sd over seeds with a 95% confidence interval and
  n, sorted by FID, and the declared analysis (`gan.study.analysis`): each configuration against
  the baseline with Holm-adjusted verdicts, and a factorial ANOVA for several axes;
- mosaic.png: one row per configuration (in the table's order), samples of the first seed's final
  generator from one fixed noise batch;
- fid.png (and [report] curves): FID against steps per configuration, the mean over seeds with a
  min-max band (needs matplotlib: `pip install -e .[plots]`);
- TensorBoard HParams: the study's configuration at the root, each run's values in its logdir, so
  `tensorboard --logdir=<root>` compares the runs in the HParams dashboard.
"""

import csv
import io
import json
import math
import os

import numpy as np

from gan import events, files
from gan import evaluator as evaluator_lib
from gan.study import analysis, hparams, plots
from gan.study.plan import PlannedReference, PlannedRun, plot_file_name
from gan.study.stats import mean_interval
from gan.study.status import REFERENCE_EVAL, checkpoint_step, current_state, read_status


def other_metrics():
    """The reported metrics of every evaluation besides FID (which has columns of its own)."""
    return tuple(name for name in evaluator_lib.metric_names(reported=True, conditional=False)
                 if name != "fid")


def conditional_metrics():
    return evaluator_lib.metric_names(reported=True, conditional=True)


def run_row(study, run, root):
    """The CSV row of one run, from its status file and its TensorBoard events (read once: a
    long run's events are large). row["scalars"] keeps every series for the curve plots."""
    run_dir = os.path.join(root, run.name)
    status = read_status(run_dir)
    state = current_state(run_dir) if os.path.isdir(run_dir) else "not run"
    steps = status.get("step", 0)
    if state in ("running", "interrupted") and isinstance(run, PlannedRun):
        steps = checkpoint_step(run_dir)  # how far it got: its last checkpoint
    row = {"run": run.name, "config": run.config_name, **dict(run.choices), "seed": run.seed,
           "status": state, "reason": status.get("reason", ""), "steps": steps,
           "wall_seconds": round(status["wall_seconds"], 1) if "wall_seconds" in status else "",
           "machine": status.get("machine", "")}
    if isinstance(run, PlannedReference):
        return dict(row, scalars={}, **reference_metrics(run_dir))
    scalars = events.read_scalars(run_dir) if os.path.isdir(run_dir) else {}
    row["scalars"] = scalars
    fid = scalars.get("eval/fid", [])
    row["fid_curve"] = fid
    final_step = fid[-1][0] if fid else None
    row["fid_final"] = fid[-1][1] if fid else ""
    row["fid_best"] = min(v for _, v in fid) if fid else ""
    row["eval_step"] = final_step if fid else ""
    for name in other_metrics() + conditional_metrics():
        series = dict(scalars.get(f"eval/{name}", []))
        row[name] = series.get(final_step, "") if fid else ""
    speed = scalars.get("perf/steps_per_sec", [])
    row["steps_per_sec"] = round(float(np.mean([v for _, v in speed])), 2) if speed else ""
    return row


def reference_metrics(run_dir):
    """A reference's metrics, from gan.evaluate --samples' JSON (blank before it exists)."""
    names = (("fid_final", "fid_best", "eval_step", "fid_curve", "steps_per_sec")
             + other_metrics() + conditional_metrics())
    row = {name: "" for name in names}
    row["fid_curve"] = []
    try:
        with open(os.path.join(run_dir, REFERENCE_EVAL)) as f:
            results = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return row
    if not isinstance(results, dict) or not _is_number(results.get("fid")):
        return row  # not gan.evaluate's JSON: the reference counts as not measured
    row["fid_final"] = row["fid_best"] = results["fid"]
    for name in other_metrics():
        row[name] = results[name] if _is_number(results.get(name)) else ""
    return row


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def csv_columns(study, rows):
    columns = ["run", "config", *[axis.name for axis in study.axes], "seed", "status", "reason",
               "steps", "eval_step", "fid_final", "fid_best", *other_metrics()]
    columns += [m for m in conditional_metrics() if any(row.get(m) != "" for row in rows)]
    return columns + ["wall_seconds", "steps_per_sec", "machine"]


def write_csv(path, study, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, csv_columns(study, rows), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    files.write_atomically(path, buffer.getvalue().encode())


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
        for name in (("fid_final", "fid_best") + other_metrics() + conditional_metrics()
                     + ("steps_per_sec",)):
            values = _finished_values(group, name)
            summary[name] = mean_interval(values) if values else None
        summaries.append(summary)
    return sorted(summaries, key=lambda s: (s["fid_final"] is None,
                                            s["fid_final"][0] if s["fid_final"] else 0))


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


def summary_table(summaries):
    """results.md's table: a row per configuration, a column per reported metric (the
    conditional ones only when some configuration has them)."""
    table = evaluator_lib.METRICS
    metrics = list(other_metrics()) + [
        name for name in conditional_metrics() if any(s[name] is not None for s in summaries)]
    header = (["config", "n", "FID", "FID 95% CI", "best FID"]
              + [table[name].label for name in metrics] + ["steps/s", "runs"])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    digits = table["fid"].digits
    for s in summaries:
        cells = [f"`{s['config']}`", str(len(s["fids"])), _mean_sd(s["fid_final"], digits),
                 _interval(s["fid_final"], digits), _mean_sd(s["fid_best"], digits)]
        cells += [_mean_sd(s[name], table[name].digits) for name in metrics]
        cells += [_mean_sd(s["steps_per_sec"], 1), _states(s)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def results_markdown(study, rows, summaries, command):
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
    lines += summary_table(summaries)
    failures = [row for row in rows if row["status"] not in ("done", "not run")]
    if failures:
        lines += ["", "Runs that did not finish:"]
        lines += [f"- `{row['run']}`: {row['status']} at step {row['steps']}"
                  + (f": {row['reason']}" if row["reason"] else "") for row in failures]
    lines += ["", "## Analysis", ""] + analysis.lines(study, rows)
    if study.findings:
        lines += ["", "## Findings", "", "*Written by hand from the numbers above "
                  "(`[report] findings` in the study file); the tables are regenerated.*", "",
                  study.findings]
    return "\n".join(lines) + "\n"


def write_curves(study, root, rows, order):
    """fid.png and the study's [report] curves; returns the lines to print."""
    finished = [row for row in rows if row["status"] == "done"]
    curves = {"fid.png": (f"{study.name}: FID during training, mean over seeds, band = min-max",
                          "FID (classifier features)",
                          {c: [dict(r["fid_curve"]) for r in finished if r["config"] == c]
                           for c in order}, 0)}
    for tag in study.curves:
        by_config = {c: [dict(r["scalars"].get(tag, [])) for r in finished if r["config"] == c]
                     for c in order}
        curves[plot_file_name(tag)] = (f"{study.name}: {tag}, mean over seeds, band = min-max",
                                       tag, by_config, study.curve_max_step)
    lines = []
    for name, (title, ylabel, by_config, max_step) in curves.items():
        path = os.path.join(root, name)
        if not plots.write_curve_plot(path, title, ylabel, by_config, order, max_step):
            lines.append(f"{name} skipped: matplotlib is not installed (pip install -e .[plots])")
            break
        lines.append(f"wrote {path}")
    else:  # matplotlib is there: every curve was drawn
        metric = analysis.declared(study).metric
        values = analysis.arms(rows, metric)
        path = os.path.join(root, "seeds.png")
        plots.write_strip_plot(path, f"{study.name}: {analysis.METRIC_NAMES[metric]} per run",
                               analysis.METRIC_NAMES[metric], values, order)
        lines.append(f"wrote {path}")
    return lines


def write_report(study, root, runs, command):
    """Writes every result file; returns the lines to print."""
    rows = [run_row(study, run, root) for run in runs]
    summaries = config_summaries(rows)
    lines = []
    write_csv(os.path.join(root, "results.csv"), study, rows)
    lines.append(f"wrote {os.path.join(root, 'results.csv')} ({len(rows)} runs)")
    markdown = results_markdown(study, rows, summaries, command)
    files.write_atomically(os.path.join(root, "results.md"), markdown.encode())
    lines.append(f"wrote {os.path.join(root, 'results.md')}")
    drawn, missing = plots.write_mosaic(os.path.join(root, "mosaic.png"), root, summaries, runs)
    if drawn:
        lines.append(f"wrote {os.path.join(root, 'mosaic.png')} (rows: {', '.join(drawn)})")
    lines += missing
    lines += write_curves(study, root, rows, [s["config"] for s in summaries])
    hparams.write_hparams_config(root, study)
    lines.append(f"wrote the HParams configuration; compare the runs with "
                 f"`tensorboard --logdir={root}` (HPARAMS tab)")
    return lines
