"""The results of a study, written to its output folder (the study file's `output`, else the
root), from its runs' records (`gan.study.records`; a run that finished without one gets it
first) and, for the runs still under way, their directories:

- results.csv: one row per run: every swept setting, the seed, the status, the final and best FID,
  every reported metric of the final evaluation (`evaluator.METRICS`), steps, wall time, steps/s,
  the machine and the threads it trained with;
- results.md: one row per configuration, mean +- sd over seeds with a 95% confidence interval and
  n, sorted by FID, and the declared analysis (`gan.study.analysis`): each configuration against
  the baseline with Holm-adjusted verdicts, and a factorial ANOVA for several axes;
- mosaic.png: one row per configuration (in the table's order), samples of the first seed's final
  generator from one fixed noise batch;
- fid.png (and [report] curves): FID against steps per configuration, the mean over seeds with a
  min-max band (needs matplotlib: `pip install -e .[plots]`);
- seeds.png: each finished run's value of the analysed metric, a column per configuration;
- TensorBoard HParams: the study's configuration at the root, each run's values in its logdir, so
  `tensorboard --logdir=<root>` compares the runs in the HParams dashboard.
"""

import csv
import io
import os

from gan import files
from gan import evaluator as evaluator_lib
from gan.study import analysis, hparams, plan, plots, records, tuning
from gan.study import rows as run_rows
from gan.study.analysis import group_by_config
from gan.study.rows import conditional_metrics, other_metrics
from gan.study.sections import plot_file_name
from gan.study.stats import mean_interval
from gan.study.status import is_finished


def csv_columns(study, rows):
    columns = ["run", "config", *[axis.name for axis in study.axes], "seed", "status", "reason",
               "steps", "eval_step", "fid_final", "fid_best", *other_metrics()]
    columns += [m for m in conditional_metrics() if any(row.get(m) != "" for row in rows)]
    return columns + ["wall_seconds", "steps_per_sec", "machine", "threads"]


def write_csv(path, study, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, csv_columns(study, rows), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    files.write_atomically(path, buffer.getvalue().encode())


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


def _winner_lines(study):
    """Where the settings that winner_of takes come from, and their values: they are in no line
    of the study file."""
    taken = ([("[settings]", study.winner_of)] if study.winner_of else []) + [
        (f"`{axis.name}={label}`", ref) for axis in study.axes for label, ref in axis.winners]
    return [f"- {where} trains the tuned winner of `{ref.arm}` in "
            f"`{os.path.relpath(ref.study)}` (its records/tuning.json)"
            + (f", all but {', '.join(ref.excluded)}" if ref.excluded else "") + ": "
            + ", ".join(f"{name}={tuning.short(value)}"
                        for name, value in sorted(plan.winner_settings(study, ref).items()))
            for where, ref in taken]


def results_markdown(study, rows, summaries, command, tuned=None, tuning_cost=None):
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
        *_winner_lines(study),
        f"- Runs: {len(rows)}, of which {len(finished)} finished; training wall time summed over "
        f"runs: {wall / 60:.1f} min"
        + (f"; tuning: {tuning_cost[1] / 60:.1f} min over {tuning_cost[0]} trial runs"
           if tuning_cost and tuning_cost[0] else ""),
        f"- Machines: {'; '.join(analysis.machines(rows)) or 'not recorded'}",
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
    if tuned:
        lines += ["", "## Tuning", ""] + tuning.summary_lines(study, tuned[0], tuned[1])
    lines += ["", "## Analysis", ""] + analysis.lines(study, rows)
    if study.findings:
        lines += ["", "## Findings", "", "*Written by hand from the numbers above "
                  "(`[report] findings` in the study file); the tables are regenerated.*", "",
                  study.findings]
    return "\n".join(lines) + "\n"


def _curves_in_unit(rows, config, tag, unit, max_step=0):
    """The finished runs' curves of a tag for one configuration (up to max_step, 0: all), {x:
    value} each, with x in the study's unit: steps times the configuration's mean cost per
    step."""
    group = [r for r in rows if r["status"] == "done" and r["config"] == config]
    costs = [analysis.per_step(r, unit) for r in group]
    scale = sum(costs) / len(costs) if costs and all(costs) else None
    if scale is None:
        return []
    series = [r["fid_curve"] if tag == "eval/fid" else r["scalars"].get(tag, []) for r in group]
    return [{step * scale: value for step, value in curve if not max_step or step <= max_step}
            for curve in series]


def write_curves(study, folder, rows, order):
    """fid.png, the study's [report] curves and seeds.png; returns the lines to print. The x-axis
    is the study's unit ([analysis] unit). A curve no finished run has (records converted from a
    table hold no curves) is not drawn, and a picture of it already there is kept."""
    unit = analysis.declared(study).unit
    xlabel = analysis.UNITS[unit][0]
    curves = {"fid.png": (f"{study.name}: FID during training, mean over seeds, band = min-max",
                          "FID (classifier features)",
                          {c: _curves_in_unit(rows, c, "eval/fid", unit) for c in order}, 0)}
    for tag in study.curves:
        curves[plot_file_name(tag)] = (
            f"{study.name}: {tag}, mean over seeds, band = min-max", tag,
            {c: _curves_in_unit(rows, c, tag, unit, study.curve_max_step) for c in order}, 0)
    lines = []
    for name, (title, ylabel, by_config, max_step) in curves.items():
        path = os.path.join(folder, name)
        if not any(curve for runs in by_config.values() for curve in runs):
            lines.append(f"{name} not drawn: no finished run has its curve")
            continue
        if not plots.write_curve_plot(path, title, ylabel, by_config, order, max_step,
                                      xlabel=xlabel):
            return lines + [f"{name} skipped: matplotlib is not installed "
                            "(pip install -e .[plots])"]
        lines.append(f"wrote {path}")
    metric = analysis.declared(study).metric
    path = os.path.join(folder, "seeds.png")
    if plots.write_strip_plot(path, f"{study.name}: {analysis.METRIC_NAMES[metric]} per run",
                              analysis.METRIC_NAMES[metric], analysis.arms(rows, metric), order):
        lines.append(f"wrote {path}")
    return lines


def collect(study, root, runs):
    """(a row per run, {config: the samples of its first finished seed}, lines to print). A run
    with a record of its settings is read from the record; one that finished in its directory
    without one gets its record now; the others are read from their directories."""
    records_dir = records.directory(study, root)
    rows, samples, lines = [], {}, []
    for run in runs:
        record = records.read(records_dir, run)
        if record is None and is_finished(os.path.join(root, run.name), run):
            record, problem = records.capture(study, run, root, records_dir)
            lines += [problem] if problem else []
        rows.append(records.row(record, run) if record else run_rows.run_row(study, run, root))
        if record and record["status"] == "done" and run.config_name not in samples:
            samples[run.config_name] = records.samples(records_dir, run)
    return rows, samples, lines


def build_report(study, root, runs, command, tuning_summary=None):
    """(results.md's text, the rows, their summaries per configuration, the samples and the
    lines to print of collect): the report, written nowhere. A tuned study's runs are its
    winners', with the tuning's summary (`gan.study.tuning`)."""
    rows, samples, lines = collect(study, root, runs)
    analysis.add_budgets(study, rows)
    summaries = config_summaries(rows)
    tuned = (tuning_summary, runs) if tuning_summary else None
    markdown = results_markdown(study, rows, summaries, command, tuned,
                                records.tuning_cost(records.directory(study, root)))
    return markdown, rows, summaries, samples, lines


def write_report(study, root, runs, command, tuning_summary=None):
    """Writes every result file to the study's output folder (its root unless the study file
    names one); returns the lines to print."""
    folder = study.output or root
    os.makedirs(folder, exist_ok=True)
    markdown, rows, summaries, samples, lines = build_report(study, root, runs, command,
                                                             tuning_summary)
    write_csv(os.path.join(folder, "results.csv"), study, rows)
    lines.append(f"wrote {os.path.join(folder, 'results.csv')} ({len(rows)} runs)")
    files.write_atomically(os.path.join(folder, "results.md"), markdown.encode())
    lines.append(f"wrote {os.path.join(folder, 'results.md')}")
    order = [s["config"] for s in summaries]
    drawn = plots.write_mosaic(os.path.join(folder, "mosaic.png"), samples, order)
    if drawn:
        lines.append(f"wrote {os.path.join(folder, 'mosaic.png')} (rows: {', '.join(drawn)})")
    lines += [f"mosaic.png: no row for {name}: its record has no samples"
              for name in order if name in samples and samples[name] is None]
    lines += write_curves(study, folder, rows, order)
    if tuning_summary:
        path = os.path.join(folder, "tuning.png")
        if plots.write_trace_plot(path, f"{study.name}: tuning, best FID against trials",
                                  tuning.traces(tuning_summary), tuning_summary["order"]):
            lines.append(f"wrote {path}")
    if os.path.isdir(root):
        hparams.write_hparams_config(root, study)
        lines.append(f"wrote the HParams configuration; compare the runs with "
                     f"`tensorboard --logdir={root}` (HPARAMS tab)")
    return lines
