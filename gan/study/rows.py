"""A study run's row of results: from its run directory (its status file and TensorBoard
events), or from its committed record (`gan.study.records`), the same fields either way."""

import json
import math
import os

import numpy as np

from gan import events
from gan import evaluator as evaluator_lib
from gan.study.plan import PlannedReference, PlannedRun
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
           "machine": status.get("machine", ""), "threads": status.get("threads", "")}
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


